"""``mailprov check delivery``: a real message through submission and IMAP, timed."""

from __future__ import annotations

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import complete_mailboxes, json_option
from mailprov.cli.output import emit


@click.group()
def check() -> None:
    """End-to-end checks against the running mail servers."""


@check.command("delivery")
@click.argument("address", shell_complete=complete_mailboxes)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the mailbox's password from the first line of standard input.",
)
@json_option
def check_delivery(address: str, password_stdin: bool) -> None:
    """Send a tagged message to ADDRESS through submission (STARTTLS + AUTH as ADDRESS), wait
    until it shows up over IMAPS, report the round trip, and delete it.

    Connects to [check] host on the configured [ports] submission and imaps, and
    verifies the certificate with [check] ca_file (default: [tls] cert_file).
    """
    import sys

    from mailprov.errors import MissingOption
    from mailprov.model import Secret
    from mailprov.services.checks import check_delivery as run_check

    app = app_context()
    if password_stdin:
        line = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
        if not line:
            raise MissingOption("no password was given on standard input")
        password = Secret(line)
    elif app.interactive:
        password = Secret(click.prompt(f"Password for {address}", hide_input=True))
    else:
        raise MissingOption(
            "the mailbox's password is needed and there is no terminal to ask on",
            hint="pass --password-stdin and give the password on stdin",
        )
    result = run_check(app.settings, address, password)
    emit(
        click.get_current_context(),
        {"changed": False, **result.to_json()},
        f"delivered to {result.address} in {result.round_trip_ms:.0f} ms "
        f"(submission {result.submit_ms:.0f} ms) via {result.host}; test message "
        + ("deleted" if result.deleted else "NOT deleted"),
    )
