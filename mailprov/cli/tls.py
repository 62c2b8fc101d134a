"""``mailprov tls self-signed``: a certificate for tests and first runs."""

from __future__ import annotations

import time
from pathlib import Path

import click

from mailprov.cli.options import json_option
from mailprov.cli.output import emit


@click.group()
def tls() -> None:
    """TLS certificates for the mail servers."""


@tls.command("self-signed")
@click.option("--host", required=True, metavar="NAME", help="Host name the certificate is for.")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for cert.pem and key.pem (the key is created 0600; never overwritten).",
)
@click.option(
    "--ip",
    "ips",
    multiple=True,
    default=["127.0.0.1"],
    show_default=True,
    help="IP address to include (repeatable).",
)
@click.option("--days", type=click.IntRange(1, 825), default=365, show_default=True)
@click.option(
    "--keep-existing",
    is_flag=True,
    help="If DIR already holds key.pem and cert.pem, keep them and report changed: false.",
)
@json_option
def tls_self_signed(
    host: str, out: Path, ips: tuple[str, ...], days: int, keep_existing: bool
) -> None:
    """Make a self-signed key and certificate; point tls.cert_file/key_file at them."""
    from mailprov.system.tls import self_signed

    made = self_signed(
        host, out, ips=list(ips), now=int(time.time()), days=days, keep_existing=keep_existing
    )
    emit(
        click.get_current_context(),
        {
            "changed": made.created,
            "cert_file": str(made.cert_file),
            "key_file": str(made.key_file),
            "names": made.names,
            "not_after": made.not_after,
        },
        f"certificate: {made.cert_file}\nkey:         {made.key_file} (0600)\n"
        f"names:       {', '.join(made.names)}\nvalid until: {made.not_after}",
    )
