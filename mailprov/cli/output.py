"""Printing results: one JSON document with --json, a table or a line otherwise."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from mailprov.cli.context import AppContext


def dump_json(data: Any) -> str:
    """JSON the way mailprov prints it: stable key order, UTF-8 kept readable."""
    return json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False, default=str)


def emit(ctx: click.Context, data: Any, human: str | None = None) -> None:
    """Print a result: ``data`` as JSON with --json, else ``human`` (if any) on stdout."""
    app = ctx.find_object(AppContext)
    rehearsal = app is not None and app.rehearsal
    if rehearsal and isinstance(data, dict):
        # A rehearsal keeps nothing, so a password or token it made up is not shown.
        data = {k: v for k, v in data.items() if k not in {"password", "passwords", "token"}}
        data["dry_run"] = True
    if app is not None and app.json:
        click.echo(dump_json(data))
    elif human:
        click.echo(f"(dry run: nothing was kept) {human}" if rehearsal else human)


def table(
    ctx: click.Context, data: Any, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Print rows as a table on a terminal (plain tab-separated text when piped)."""
    app = ctx.find_object(AppContext)
    if app is not None and app.json:
        click.echo(dump_json(data))
        return
    if not rows:
        click.echo("(none)", err=True)
        return
    if not sys.stdout.isatty():
        for row in rows:
            click.echo("\t".join("" if v is None else str(v) for v in row))
        return
    from rich.console import Console  # lazy: rich is slow to import
    from rich.table import Table

    out = Table(*columns, box=None, header_style="bold")
    for row in rows:
        out.add_row(*("" if v is None else str(v) for v in row))
    Console().print(out)


def yes_no(value: bool) -> str:
    """'yes' or 'no'."""
    return "yes" if value else "no"
