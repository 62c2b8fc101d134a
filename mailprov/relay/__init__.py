"""The local SMTP relay for test rigs (aiosmtpd): capture, deliver or forward.

``server`` starts it (never hangs: explicit hostname, binds before it reports
ready), ``handlers`` hold the three modes, ``storage`` the on-disk mailboxes,
``faults`` the fault rules, ``api`` the HTTP JSON API and ``auth`` the AUTH
back-ends. Only ``mailprov.cli.relay`` and ``mailprov.testing`` talk to people.
"""
