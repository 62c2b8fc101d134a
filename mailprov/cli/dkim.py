"""``mailprov dkim keygen|list|rotate|activate|retire|render``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from mailprov.cli.context import app_context
from mailprov.cli.dns import check_plan, nameserver_options
from mailprov.cli.options import Renamed, complete_domains, json_option
from mailprov.cli.output import emit, table

if TYPE_CHECKING:
    from mailprov.services.dkim import DkimKey

ALGORITHMS = click.Choice(["rsa-2048", "ed25519"])


@click.group()
def dkim() -> None:
    """DKIM keys: make, publish, activate, retire (rotation), and the signer's config."""


def _publish_text(key: DkimKey) -> str:
    """The record as a zone-file line: a TXT value over 255 bytes is split into strings."""
    from mailprov.rules.dnsrecords import quote_txt

    return f"publish: {key.dns_name} IN TXT {quote_txt(key.record or '')}"


@dkim.command("keygen")
@click.argument("domain", shell_complete=complete_domains)
@click.option("--selector", help="Selector name (default: dkim.selector_prefix + date + r|e).")
@click.option(
    "--algorithm", type=ALGORITHMS, help="Key type (default: the first of dkim.algorithms)."
)
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
@json_option
def dkim_keygen(domain: str, selector: str | None, algorithm: str | None, dry_run: bool) -> None:
    """Make a new DKIM key for DOMAIN (status 'next'); the private key is never printed."""
    from mailprov.services.dkim import keygen

    app = app_context()
    key = keygen(
        app.store,
        app.settings,
        domain,
        actor=app.actor(),
        selector=selector,
        algorithm=algorithm,
        dry_run=dry_run,
    )
    if dry_run:
        emit(
            click.get_current_context(),
            {"changed": False, "dry_run": True, "key": key.to_json()},
            f"would make {key.algorithm} key {key.selector} for {key.domain} ({key.key_file})",
        )
        return
    emit(
        click.get_current_context(),
        {"changed": True, "key": key.to_json()},
        f"made {key.algorithm} key {key.selector} for {key.domain} ({key.key_file})\n"
        f"{_publish_text(key)}\n"
        f"then: mailprov dkim activate {key.domain} {key.selector}",
    )


@dkim.command("list")
@click.argument("domain", required=False)
@json_option
def dkim_list(domain: str | None) -> None:
    """List the DKIM selectors of DOMAIN (or of every domain), with their records."""
    from mailprov.services.accounts import domain_names
    from mailprov.services.dkim import list_keys

    app = app_context()
    names = [domain] if domain else domain_names(app.store)
    keys = [k for name in names for k in list_keys(app.store, app.settings, name)]
    table(
        click.get_current_context(),
        {"keys": [k.to_json() for k in keys]},
        ["domain", "selector", "algorithm", "status", "signing", "created", "record"],
        [
            [
                k.domain,
                k.selector,
                k.algorithm,
                k.status,
                "yes" if k.signing else "no",
                k.to_json()["created_at"],
                (k.record or "")[:40],
            ]
            for k in keys
        ],
    )


@dkim.command("rotate")
@click.argument("domain", shell_complete=complete_domains)
@click.option(
    "--algorithm",
    "algorithms",
    type=ALGORITHMS,
    multiple=True,
    help="Only this algorithm (repeatable; default: every one of dkim.algorithms).",
)
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
@json_option
def dkim_rotate(domain: str, algorithms: tuple[str, ...], dry_run: bool) -> None:
    """Make the next key of DOMAIN for each algorithm and show the record to publish.

    A key already waiting is shown again, not replaced. Publish its record, wait
    for DNS, then 'mailprov dkim activate DOMAIN SELECTOR'.
    """
    from mailprov.services.dkim import rotate

    app = app_context()
    made = rotate(
        app.store,
        app.settings,
        domain,
        actor=app.actor(),
        algorithms=algorithms or None,
        dry_run=dry_run,
    )
    verb = "would make" if dry_run else "made"
    lines = [
        f"{verb if new else 'waiting'}: {k.selector} ({k.algorithm})"
        + (f"\n  {_publish_text(k)}" if k.record else "")
        for k, new in made
    ]
    emit(
        click.get_current_context(),
        {
            "changed": not dry_run and any(new for _, new in made),
            "dry_run": dry_run,
            "keys": [k.to_json() | {"made": new} for k, new in made],
        },
        "\n".join(lines),
    )


def _signer_update(app: Any) -> dict[str, object]:
    from mailprov.services.signer import apply

    return apply(app.store, app.settings).to_json()


@dkim.command("activate")
@click.argument("domain", shell_complete=complete_domains)
@click.argument("selector")
@click.option(
    "--skip-dns-check",
    "force",
    cls=Renamed,
    old=("--force",),
    is_flag=True,
    help="Switch even if DNS does not show the record yet.",
)
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
@nameserver_options
@json_option
def dkim_activate(
    domain: str,
    selector: str,
    force: bool,
    dry_run: bool,
    nameserver: str | None,
    timeout: float | None,
    retries: int | None,
) -> None:
    """Sign DOMAIN's mail with SELECTOR, once DNS shows its record; the signer is updated.

    The key it replaces stays published until 'dkim retire' (dkim.retire_after_days).
    """
    from mailprov.rules.dnsrecords import Record
    from mailprov.services.dkim import activate

    app = app_context()
    settings = app.settings

    def lookup(key: DkimKey) -> Any:
        plan = check_plan(settings, nameserver, timeout, retries)
        return plan.check_record(
            Record(key.dns_name, "TXT", key.record or "", "dns.dkim.selector", settings.dns.ttl)
        )

    key, changed = activate(
        app.store,
        settings,
        domain,
        selector,
        actor=app.actor(),
        lookup=None if force else lookup,
        force=force,
        dry_run=dry_run,
    )
    if dry_run:
        emit(
            click.get_current_context(),
            {"changed": False, "dry_run": True, "would_change": changed, "key": key.to_json()},
            f"DNS shows the record; {key.selector} would sign mail for {key.domain}"
            if changed
            else f"{key.selector} already signs mail for {key.domain}",
        )
        return
    signer = _signer_update(app)
    emit(
        click.get_current_context(),
        {"changed": changed, "key": key.to_json(), "signer": signer},
        f"{key.selector} signs mail for {key.domain}" + ("" if changed else " (already)"),
    )


@dkim.command("retire")
@click.argument("domain", shell_complete=complete_domains)
@click.argument("selector")
@click.option(
    "--skip-checks",
    "force",
    cls=Renamed,
    old=("--force",),
    is_flag=True,
    help="Retire even within the waiting period, or a key that still signs.",
)
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
@json_option
def dkim_retire(domain: str, selector: str, force: bool, dry_run: bool) -> None:
    """Retire SELECTOR of DOMAIN: out of the signer and DNS; its private key is deleted."""
    from mailprov.services.dkim import retire

    app = app_context()
    key, changed = retire(
        app.store, app.settings, domain, selector, actor=app.actor(), force=force, dry_run=dry_run
    )
    if dry_run:
        emit(
            click.get_current_context(),
            {"changed": False, "dry_run": True, "would_change": changed, "key": key.to_json()},
            f"{key.selector} of {key.domain} would be retired" if changed else "already retired",
        )
        return
    signer = _signer_update(app)
    emit(
        click.get_current_context(),
        {"changed": changed, "key": key.to_json(), "signer": signer},
        f"retired {key.selector} of {key.domain}; remove {key.dns_name} from DNS"
        if changed
        else f"{key.selector} was already retired",
    )


@dkim.command("render")
@click.option(
    "--out",
    "directory",
    cls=Renamed,
    old=("--dir",),
    type=click.Path(file_okay=False),
    help="Write here (default: dkim.opendkim_dir).",
)
@click.option("--dry-run", is_flag=True, help="Show which files would change; write nothing.")
@click.option("--diff", "show_diff", is_flag=True, help="With --dry-run: show a unified diff.")
@json_option
def dkim_render(directory: str | None, dry_run: bool, show_diff: bool) -> None:
    """Write OpenDKIM's config, KeyTable, SigningTable and TrustedHosts (changed files only)."""
    import difflib
    from pathlib import Path

    from mailprov.services.signer import apply, plan

    app = app_context()
    target = Path(directory).resolve() if directory else None
    ctx = click.get_current_context()
    if dry_run or show_diff:
        folder, files, changed = plan(app.store, app.settings, target)
        diffs = []
        for name in changed:
            path = folder / name
            old = path.read_text("utf-8").splitlines(keepends=True) if path.exists() else []
            new = files[name].splitlines(keepends=True)
            diffs.append("".join(difflib.unified_diff(old, new, str(path), str(path))))
        human = (
            "\n".join(diffs)
            if show_diff
            else "\n".join(f"would write {folder / n}" for n in changed)
        )
        data = {"changed": False, "would_change": changed, "directory": str(folder)}
        if show_diff:
            data["diff"] = "\n".join(diffs)
        emit(ctx, data, human or "up to date")
        return
    update = apply(app.store, app.settings, target)
    emit(
        ctx,
        {"changed": bool(update.changed), **update.to_json()},
        "\n".join(f"wrote {update.directory / n}" for n in update.changed) or "up to date",
    )
