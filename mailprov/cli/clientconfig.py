"""``mailprov client-config ADDRESS``."""

from __future__ import annotations

from pathlib import Path

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import Renamed, complete_mailboxes, json_option
from mailprov.cli.output import emit


@click.command("client-config")
@click.argument("address", shell_complete=complete_mailboxes)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "thunderbird", "autodiscover", "mobileconfig"]),
    default="text",
    show_default=True,
    help="Settings sheet, Thunderbird, Outlook autodiscover or Apple .mobileconfig.",
)
@click.option(
    "--out",
    "output",
    cls=Renamed,
    old=("--output", "-o"),
    type=click.Path(dir_okay=False, writable=True),
    help="Write the document to this file instead of standard output.",
)
@json_option
def client_config(address: str, fmt: str, output: str | None) -> None:
    """Mail client settings for mailbox ADDRESS (IMAP, POP3, SMTP; never a password)."""
    from mailprov.services.clientconfig import client_settings, document
    from mailprov.system.files import atomic_write

    app = app_context()
    cs = client_settings(app.store, app.settings, address, now=app.actor().now)
    text = document(cs, fmt)
    ctx = click.get_current_context()
    if output:
        atomic_write(Path(output), text, mode=0o644)
        emit(
            ctx,
            {
                "changed": True,
                "address": cs.address,
                "format": fmt,
                "output": output,
                "settings": cs.to_json(),
            },
            f"wrote {output}",
        )
        return
    if app.json:
        emit(
            ctx,
            {
                "changed": False,
                "address": cs.address,
                "format": fmt,
                "settings": cs.to_json(),
                "document": text,
            },
        )
        return
    click.echo(text, nl=False)
