"""``mailprov sweep``: the periodic expiry sweep (the systemd timer runs it)."""

from __future__ import annotations

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import json_option
from mailprov.cli.output import emit


@click.command()
@json_option
def sweep() -> None:
    """Run the periodic sweep: expired temporary passwords, stale provisioning requests,
    password-age reminders ([passwords] reminder_days, once per password) and the owners'
    ended sessions."""
    from mailprov.services.sweep import sweep as run_sweep

    app = app_context()
    results = run_sweep(app.store, app.settings, now=app.actor().now)
    lines = []
    for result in results:
        lines.append(f"{result.name}: {len(result.items)}")
        lines += ["  " + " ".join(f"{k}={v}" for k, v in item.items()) for item in result.items]
    emit(
        click.get_current_context(),
        {"changed": any(r.changed for r in results), "steps": [r.to_json() for r in results]},
        "\n".join(lines),
    )
