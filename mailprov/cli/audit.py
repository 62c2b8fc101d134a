"""``mailprov audit list|verify``."""

from __future__ import annotations

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import json_option
from mailprov.cli.output import emit, table


def _parse_since(value: str | None) -> int | None:
    """``--since``: ISO date/time (UTC unless it says otherwise) or a span like 2h, 7d."""
    if value is None:
        return None
    import re
    import time
    from datetime import UTC, datetime

    span = re.fullmatch(r"(\d+)\s*([smhd])", value.strip())
    if span:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[span.group(2)]
        return int(time.time()) - int(span.group(1)) * unit
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"'{value}' is neither an ISO date/time nor a span like 2h or 7d", param_hint="--since"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


@click.group()
def audit() -> None:
    """The append-only, hash-chained audit log."""


@audit.command("list")
@click.option("--since", metavar="WHEN", help="ISO date/time (UTC) or a span such as 2h or 7d.")
@click.option("--target", metavar="ADDR", help="Only records about this target.")
@click.option("--action", metavar="PREFIX", help="Only actions starting with this, e.g. mailbox.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the newest N records.")
@json_option
def audit_list(
    since: str | None, target: str | None, action: str | None, limit: int | None
) -> None:
    """List audit records, oldest first."""
    from mailprov.model import iso
    from mailprov.services.audit import list_records

    found = list_records(
        app_context().store, since=_parse_since(since), target=target, action=action, limit=limit
    )
    table(
        click.get_current_context(),
        {"records": [r.to_json() for r in found]},
        ["id", "at", "actor", "action", "target"],
        [[r.id, iso(r.at), r.actor, r.action, r.target] for r in found],
    )


@audit.command("verify")
@json_option
def audit_verify() -> None:
    """Check the hash chain; exit non-zero at the first record changed or removed."""
    from mailprov.services.audit import verify_chain

    report = verify_chain(app_context().store)
    emit(
        click.get_current_context(),
        {"ok": True, "records": report.count},
        f"audit chain ok ({report.count} records)",
    )
