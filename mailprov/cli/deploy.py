"""``mailprov deploy plan|apply|rollback``: render and install server config."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import Renamed, json_option
from mailprov.cli.output import emit

#: Test hook (the only one): ``deploy apply`` SIGKILLs itself right after the step of that
#: name completes (a step name as passed to ``apply(on_step=...)``, e.g. ``switched`` or
#: ``file:postfix/main.cf``). The kill tests in tests/integration/render use it to stop a real
#: process between every two steps; it does nothing when unset.
KILL_AT_VARIABLE = "MAILPROV_TEST_KILL_AT"

target_option = click.option(
    "--target",
    type=click.Path(file_okay=False, path_type=Path),
    help="Install under DIR (DIR/postfix, DIR/dovecot, DIR/systemd, DIR/opendkim, DIR/web) "
    "instead of the configured folders.",
)


@click.group()
def deploy() -> None:
    """Render Postfix, Dovecot, OpenDKIM, systemd and web-server files, check them, install them."""


def _kill_at(step: str) -> None:
    """Die like a power cut at the step named by the test hook (see ``KILL_AT_VARIABLE``)."""
    if step == os.environ.get(KILL_AT_VARIABLE):
        os.kill(os.getpid(), signal.SIGKILL)


def _lines(changes: Any, *, diff: bool) -> str:
    out = []
    for change in changes:
        mark = " (edited by hand)" if change.edited else ""
        out.append(f"{change.status:9} {change.file.path}{mark}")
        if diff and change.diff:
            out.append(change.diff.rstrip("\n"))
    return "\n".join(out)


@deploy.command("plan")
@target_option
@click.option(
    "--diff", "show_diff", is_flag=True, help="Show a unified diff for each changed file."
)
@click.option(
    "--no-check", is_flag=True, help="Skip the Postfix/Dovecot checks (render and diff only)."
)
@json_option
def deploy_plan(target: Path | None, show_diff: bool, no_check: bool) -> None:
    """Show what 'deploy apply' would change, and check it with the servers; change nothing."""
    from mailprov.services.deploy import plan, validate
    from mailprov.system.run import SubprocessRunner

    app = app_context()
    settings = app.settings
    planned = plan(settings, target=target, store=app.store)
    if not no_check:
        validate(settings, SubprocessRunner(), full=False, store=app.store)
    data = {
        "changed": bool(planned.changed or planned.removed),
        "checked": not no_check,
        "files": [c.to_json(with_diff=show_diff) for c in planned.changes],
        "removed": planned.removed,
    }
    lines = _lines(planned.changes, diff=show_diff)
    lines += "".join(f"\nremoved   {p}" for p in planned.removed)
    summary = f"{len(planned.changed)} of {len(planned.changes)} file(s) would change"
    summary += "; not checked (--no-check)" if no_check else "; Postfix and Dovecot checks passed"
    emit(click.get_current_context(), data, lines + "\n" + summary)


@deploy.command("apply")
@target_option
@click.option(
    "--reload", "do_reload", is_flag=True, help="Reload Postfix/Dovecot if their files changed."
)
@click.option(
    "--overwrite-edits",
    "force",
    cls=Renamed,
    old=("--force",),
    is_flag=True,
    help="Overwrite files that were edited by hand.",
)
@json_option
def deploy_apply(target: Path | None, do_reload: bool, force: bool) -> None:
    """Check the rendered files with Postfix and Dovecot, then switch to them all at once.

    The files are installed as a new generation under the state folder; the installed paths
    are symlinks through one 'current' link, which is replaced in one step.
    """
    from mailprov.services.deploy import apply
    from mailprov.system.run import SubprocessRunner

    app = app_context()
    result = apply(
        app.settings,
        runner=SubprocessRunner(),
        target=target,
        force=force,
        reload=do_reload,
        store=app.store,
        on_step=_kill_at,
    )
    data = {
        "changed": result.changed,
        "written": result.written,
        "removed": result.removed,
        "reloaded": result.reloaded,
        "state_dir": str(result.plan.state_dir) if result.plan else None,
        "generation": result.generation,
    }
    human = "\n".join(
        [f"wrote {p}" for p in result.written] + [f"removed {p}" for p in result.removed]
    )
    human = human or "nothing to change"
    if result.generation:
        human += f"\nactive generation: {result.generation}"
    if result.reloaded:
        human += "\nreloaded " + ", ".join(result.reloaded)
    emit(click.get_current_context(), data, human)


@deploy.command("rollback")
@target_option
@click.option("--reload", "do_reload", is_flag=True, help="Reload Postfix/Dovecot afterwards.")
@json_option
def deploy_rollback(target: Path | None, do_reload: bool) -> None:
    """Switch back to the generation before the active one (run again to undo)."""
    from mailprov.services.deploy import rollback
    from mailprov.system.run import SubprocessRunner

    result = rollback(
        app_context().settings, runner=SubprocessRunner(), target=target, reload=do_reload
    )
    data = {
        "changed": result.changed,
        "written": result.written,
        "removed": result.removed,
        "reloaded": result.reloaded,
        "generation": result.generation,
    }
    lines = [f"restored {p}" for p in result.written] + [f"removed {p}" for p in result.removed]
    emit(click.get_current_context(), data, "\n".join(lines) or "nothing to roll back")


@deploy.command("render")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the files into (DIR/postfix, DIR/dovecot, DIR/systemd).",
)
@json_option
def deploy_render(out: Path) -> None:
    """Write the rendered files into DIR for review; no checks, no manifest, no reload.

    The files name each other by their paths under DIR. Use 'deploy plan --target DIR'
    to have Postfix and Dovecot check them, and 'deploy apply' to install.
    """
    from mailprov.services.deploy import render_to

    app = app_context()
    written = render_to(app.settings, out, app.store)
    emit(
        click.get_current_context(),
        {"changed": bool(written), "written": written},
        "\n".join(f"wrote {p}" for p in written) or "all files already up to date",
    )
