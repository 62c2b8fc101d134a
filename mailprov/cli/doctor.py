"""``mailprov doctor``: store, rendered config, Maildirs, certificate, ports, queue, rspamd, DNS."""

from __future__ import annotations

from pathlib import Path

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import json_option

MARKS = {"error": "ERROR", "warning": "warn ", "info": "info "}


@click.command()
@click.option(
    "--target",
    type=click.Path(file_okay=False, path_type=Path),
    help="The folder 'deploy apply --target DIR' installed into (default: the configured dirs).",
)
@click.option(
    "--no-dns", is_flag=True, help="Skip the DNS checks (they query [dns] check_nameserver)."
)
@json_option
def doctor(target: Path | None, no_dns: bool) -> None:
    """Check that the store, the rendered config, the Maildirs, the certificate, the ports, the
    Postfix queue and DNS agree; with [rspamd] enabled, also that rspamd's config passes
    rspamadm configtest and that rspamd and its Redis answer. On a site of several hosts
    also this host's role, whether each backend answers, mailboxes whose home is not a
    listed backend, unfinished moves and, with [store] read_hosts, the replicas' lag. Each
    finding has a stable ID and says what to do; the exit status is non-zero (79) only
    when there are errors."""
    from mailprov.cli.dns import check_plan
    from mailprov.cli.output import dump_json
    from mailprov.errors import DoctorFoundErrors
    from mailprov.services.doctor import diagnose
    from mailprov.system.run import SubprocessRunner

    app = app_context()
    plan = None if no_dns else check_plan(app.settings, None, None, None)
    report = diagnose(
        app.store,
        app.settings,
        runner=SubprocessRunner(),
        now=app.actor().now,
        target=target,
        dns_plan=plan,
    )
    data = report.to_json()
    if report.errors:
        if not app.json:
            _print(report)
        raise DoctorFoundErrors(
            f"doctor found {len(report.errors)} error(s): "
            + ", ".join(sorted({f.id for f in report.errors})),
            doctor=data,
        )
    if app.json:
        click.echo(dump_json({"changed": False, **data}))
    else:
        _print(report)


def _print(report: object) -> None:
    for f in report.findings:  # type: ignore[attr-defined]
        subject = f" [{f.subject}]" if f.subject else ""
        click.echo(f"{MARKS[f.severity]} {f.id}{subject}: {f.message}")
        if f.action and f.severity != "info":
            click.echo(f"       -> {f.action}")
