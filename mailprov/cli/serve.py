"""``mailprov serve``: the owner's HTTP API (and portal) on [web] listen."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import json_option


@click.command()
@click.option("--listen", metavar="HOST:PORT", help="Where to listen (default [web] listen).")
@click.option("--openapi", is_flag=True, help="Print the API's OpenAPI 3.1 document and exit.")
@json_option
def serve(listen: str | None, openapi: bool) -> None:
    """Serve the owner's HTTP API and portal until SIGTERM or Ctrl-C; print one 'ready' line.

    The API lives under /api/v1 and describes itself at /api/v1/openapi.json; the
    portal's pages (English and Russian) are at / (apply, /status, /signin, /account).
    Plain HTTP belongs on loopback behind a reverse proxy with TLS ('deploy' renders
    an nginx snippet); [web] tls = true serves HTTPS with the [tls] certificate.
    """
    import asyncio

    from mailprov.web.server import make_services
    from mailprov.web.server import serve as run

    if openapi:
        from mailprov.web.api import API
        from mailprov.web.app import _load_operations
        from mailprov.web.errors import status_of

        _load_operations()
        click.echo(json.dumps(API.document(status_of), indent=2, ensure_ascii=False))
        return
    app = app_context()
    services = make_services(app.settings, app.store)
    if app.settings.web.test_issuer:
        click.echo(
            "warning: [web] test_issuer is set: the portal offers a TEST identity provider "
            "that confirms anyone (demos and test rigs only)",
            err=True,
        )

    def ready(url: str) -> None:
        info: dict[str, Any] = {"ready": True, "url": url, "openapi": f"{url}/api/v1/openapi.json"}
        if app.json:  # one line, so a supervisor or test can read it with readline()
            click.echo(json.dumps(info, ensure_ascii=False))
        else:
            click.echo(f"mailprov serve ready: {url} (API: {url}/api/v1/openapi.json)")
        sys.stdout.flush()

    asyncio.run(run(services, listen=listen or app.settings.web.listen, ready=ready))
