"""mailprov: provisioning for Postfix + Dovecot mail service, and a local relay for test rigs."""

__version__ = "0.1.0"
