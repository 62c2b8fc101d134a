"""``mailprov apply STATE`` and ``mailprov export``: the site as one declared state."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import json_option
from mailprov.cli.output import emit

if TYPE_CHECKING:
    from mailprov.rules.state import Change, Plan

FORMATS = click.Choice(["toml", "json"])
_MARK = {"create": "+", "update": "~", "delete": "-"}


def _read_text(name: str) -> str:
    from mailprov.errors import StateInvalid

    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise StateInvalid(f"cannot read the state file {name}: {reason}") from None


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    return repr(value) if isinstance(value, str) else str(value).lower()


def _line(change: Change, *, diff: bool) -> str:
    head = f"{_MARK[change.action]} {change.kind} {change.key}"
    if change.action == "update" and not diff:
        return (
            head
            + ": "
            + ", ".join(
                f"{k} {_shown(b)} -> {_shown(a)}" for k, (b, a) in change.attributes.items()
            )
        )
    if not diff:
        return head
    rows = [head]
    for attr, (before, after) in change.attributes.items():
        if change.action == "create":
            rows.append(f"    {attr}: {_shown(after)}")
        elif change.action == "delete":
            rows.append(f"    {attr}: {_shown(before)}")
        else:
            rows.append(f"    {attr}: {_shown(before)} -> {_shown(after)}")
    return "\n".join(rows)


def plan_text(planned: Plan, *, diff: bool, check: bool) -> str:
    """The plan as a person reads it: one line per object (``--diff``: one per attribute)."""
    lines = [_line(c, diff=diff) for c in planned.changes]
    count = planned.summary()
    summary = (
        f"{count['create']} to create, {count['update']} to update, {count['delete']} to delete"
        if planned.changed
        else "no changes: the store is as the state declares"
    )
    if planned.changed:
        summary += f" ({'--check: nothing was changed' if check else 'done'})"
    return "\n".join([*lines, summary])


@click.command("apply")
@click.argument("state_file", metavar="STATE")
@click.option(
    "--check",
    "--dry-run",
    "check",
    is_flag=True,
    help="Print the plan (create/update/delete, before -> after) and change nothing.",
)
@click.option("--diff", "show_diff", is_flag=True, help="Show every attribute, one per line.")
@click.option(
    "--prune",
    is_flag=True,
    help="Also delete domains, mailboxes and aliases the state does not declare (each listed).",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when nothing changed (or would), 2 when something did; errors keep theirs.",
)
@click.option("--format", "fmt", type=FORMATS, help="The state's format (default: by its name).")
@click.option(
    "--deploy",
    "do_deploy",
    is_flag=True,
    help="Then render and install the server config through 'deploy apply' (same checks; "
    "not with --check).",
)
@click.option(
    "--target",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --deploy: install under DIR instead of the configured folders.",
)
@click.option("--reload", "do_reload", is_flag=True, help="With --deploy: reload what changed.")
@json_option
def apply(
    state_file: str,
    check: bool,
    show_diff: bool,
    prune: bool,
    detailed_exitcode: bool,
    fmt: str | None,
    do_deploy: bool,
    target: Path | None,
    do_reload: bool,
) -> int:
    """Make the site what STATE (a TOML or JSON state file; - for stdin) declares.

    Objects the state does not declare are kept unless --prune. A declared object's given
    attributes are made true; omitted ones are left alone (a new mailbox gets the
    defaults). All store changes happen in one transaction; a second run changes nothing.
    """
    from mailprov.services import state

    app = app_context()
    read = state.read(_read_text(state_file), source=state_file, fmt=fmt)
    data: dict[str, Any] = {"check": check, "prune": prune}
    if check:
        planned = state.plan(app.store, app.settings, read, prune=prune)
        changed = planned.changed
        human = plan_text(planned, diff=show_diff, check=True)
    else:
        done = state.apply(app.store, app.settings, read, actor=app.actor(), prune=prune)
        planned, changed = done.plan, done.plan.changed
        human = plan_text(planned, diff=show_diff, check=False)
        if done.generated:
            data["passwords"] = {a: s.reveal() for a, s in sorted(done.generated.items())}
            human += "".join(
                f"\npassword for {a} (shown once, store it now): {p}"
                for a, p in data["passwords"].items()
            )
        data["dkim"] = [k.to_json() for k in done.dkim]
        if do_deploy:
            deployed = _deploy(target, do_reload)
            data["deploy"] = deployed
            changed = changed or bool(deployed["changed"])
            human += "\ndeploy: " + (
                f"installed generation {deployed['generation']}"
                if deployed["changed"]
                else "nothing to change"
            )
    if app.json:  # 10k objects: build the document only when it is printed
        data = {"changed": changed, **data, "plan": planned.to_json()}
    emit(click.get_current_context(), data, human)
    return 2 if detailed_exitcode and changed else 0


def _deploy(target: Path | None, do_reload: bool) -> dict[str, Any]:
    from mailprov.services.deploy import apply as deploy_apply
    from mailprov.system.run import SubprocessRunner

    app = app_context()
    result = deploy_apply(
        app.settings, runner=SubprocessRunner(), target=target, reload=do_reload, store=app.store
    )
    return {
        "changed": result.changed,
        "written": result.written,
        "removed": result.removed,
        "reloaded": result.reloaded,
        "generation": result.generation,
    }


@click.command("export")
@click.option("--format", "fmt", type=FORMATS, help="toml (default) or json (also with --json).")
@click.option(
    "--with-hashes",
    is_flag=True,
    help="Include password hashes (then the output is a secret: prefer --out).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to a new FILE, created 0600, instead of standard output.",
)
@json_option
def export(fmt: str | None, with_hashes: bool, out: Path | None) -> None:
    """Print the site's domains, mailboxes and aliases as a state file for 'mailprov apply'.

    'mailprov export | mailprov apply --check -' shows no change.
    """
    from mailprov.services import state

    app = app_context()
    kind = fmt or ("json" if app.json else "toml")
    doc = state.export(app.store, app.settings, with_hashes=with_hashes)
    chunks = state.export_lines(doc, kind)
    if out is not None:
        from mailprov.system.secrets import write_secret

        write_secret(out, "".join(chunks).encode("utf-8"))
        emit(
            click.get_current_context(),
            {"changed": True, "written": str(out), "mailboxes": len(doc["mailboxes"])},
            f"wrote {out} ({len(doc['mailboxes'])} mailboxes)",
        )
        return
    stream = sys.stdout
    buffer: list[str] = []
    for chunk in chunks:
        buffer.append(chunk)
        if len(buffer) >= 4096:
            stream.write("".join(buffer))
            buffer.clear()
    stream.write("".join(buffer))
    stream.flush()
