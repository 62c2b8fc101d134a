"""``mailprov mailbox move ADDRESS --to BACKEND``: a mailbox's mail to a new home backend."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import complete_mailboxes, dry_run_option, json_option
from mailprov.cli.output import emit
from mailprov.system.children import kill_self

# services.move is imported inside the command: it pulls in SQLAlchemy, and
# 'mailprov --help' imports every command module.

#: The crash tests' hook (the same variable as ``mailbox import``'s, see cli/mailbox.py):
#: ``move:STAGE`` kills this process with SIGKILL once STAGE is done
#: (tests/integration/test_move.py).
KILL_AT_ENV = "MAILPROV_TEST_KILL_AT"

WHAT = {
    "copy": "copying the mail from {source} to {target} (doveadm backup)",
    "switch": "switching the home to {target} in the store",
    "tail": "copying what reached {source} meanwhile (doveadm sync)",
    "finish": "marking the move finished",
}


@click.command("move")
@click.argument("address", shell_complete=complete_mailboxes)
@click.option("--to", "to", required=True, metavar="BACKEND", help="The new home backend.")
@click.option(
    "--target",
    type=click.Path(file_okay=False, path_type=Path),
    help="The folder 'deploy apply --target DIR' installed into: its dovecot/dovecot.conf has "
    "the doveadm password (default: [deploy] dovecot_dir).",
)
@dry_run_option
@json_option
def move(address: str, to: str, target: Path | None) -> None:
    """Move mailbox ADDRESS's mail to backend BACKEND and make it its home.

    The new home pulls the mail from the old one over Dovecot's doveadm protocol, the
    home is switched in the store in one transaction, then what reached the old home
    meanwhile is copied too. Interrupted before the switch, the mailbox stays on its
    old home with all its mail; after it, running the same command again finishes the
    move. Stage lines go to stderr on a terminal.
    """
    from mailprov.render import Layout
    from mailprov.services.move import move_mailbox, plan_move
    from mailprov.system.run import SubprocessRunner

    app = app_context()
    planned = plan_move(app.store, app.settings.cluster, address, to)
    data = {"changed": True, **planned.to_json()}
    verb = "would move" if app.rehearsal else "moved"
    human = f"{verb} {planned.address} from {planned.source} to {planned.target}"
    if app.rehearsal:
        emit(click.get_current_context(), data, human + f" ({', '.join(planned.stages)})")
        return
    conf = Layout.for_target(app.settings, target).dovecot_dir / "dovecot.conf"
    started = time.monotonic()
    move_mailbox(
        app.store,
        app.settings,
        app.actor(),
        planned,
        runner=SubprocessRunner(),
        dovecot_conf=conf,
        on_stage=_stage_lines(planned.source, planned.target, quiet=app.json),
    )
    data["seconds"] = round(time.monotonic() - started, 3)
    emit(click.get_current_context(), data, human)


def _stage_lines(source: str, target: str, *, quiet: bool) -> Callable[[str, str], None]:
    """The stage hook: a line per stage on a terminal, and the crash tests' kill."""
    hooked = os.environ.get(KILL_AT_ENV, "")
    kill_after = hooked.removeprefix("move:") if hooked.startswith("move:") else ""
    show = sys.stderr.isatty() and not quiet

    def hook(stage: str, event: str) -> None:
        if show and event == "start":
            click.echo(f"{stage}: {WHAT[stage].format(source=source, target=target)}…", err=True)
        if event == "done" and stage == kill_after:
            kill_self()

    return hook
