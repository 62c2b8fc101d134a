"""``mailprov serve``: the HTTP interface of the owner's side, beside ``cli/``.

It calls the same services as the CLI. :mod:`mailprov.web.api` declares the
operations (and so the OpenAPI document), :mod:`mailprov.web.app` gates and
dispatches them, :mod:`mailprov.web.server` runs the listener.
"""
