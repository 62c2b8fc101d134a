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
@click.option(
    "--configure",
    is_flag=True,
    help="Also set [tls] cert_file and key_file in the site config to these files "
    "(its comments are kept; the result is validated before it is written).",
)
@json_option
def tls_self_signed(
    host: str, out: Path, ips: tuple[str, ...], days: int, keep_existing: bool, configure: bool
) -> None:
    """Make a self-signed key and certificate for tests and first runs.

    The mail servers use them once [tls] cert_file/key_file name them: pass
    --configure, or edit the config, then run 'deploy apply'.
    """
    from mailprov.cli.context import app_context
    from mailprov.errors import MissingOption
    from mailprov.services.site import set_config_values
    from mailprov.system.tls import self_signed

    config_file = None
    if configure:
        config_file = app_context().settings.config_file
        if config_file is None:
            raise MissingOption(
                "--configure needs a site config file to change",
                hint="pass --config FILE (or run in the site folder), or leave out --configure",
            )
    made = self_signed(
        host, out, ips=list(ips), now=int(time.time()), days=days, keep_existing=keep_existing
    )
    configured = config_file is not None and set_config_values(
        config_file,
        "tls",
        {"cert_file": str(made.cert_file.resolve()), "key_file": str(made.key_file.resolve())},
    )
    human = (
        f"certificate: {made.cert_file}\nkey:         {made.key_file} (0600)\n"
        f"names:       {', '.join(made.names)}\nvalid until: {made.not_after}"
    )
    if config_file is not None:
        human += f"\n[tls] in {config_file}: " + ("updated" if configured else "already set")
    emit(
        click.get_current_context(),
        {
            "changed": made.created or configured,
            "cert_file": str(made.cert_file),
            "key_file": str(made.key_file),
            "names": made.names,
            "not_after": made.not_after,
            "config_file": str(config_file) if config_file else None,
            "configured": configured,
        },
        human,
    )
