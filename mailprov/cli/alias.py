"""``mailprov alias add|list|remove``."""

from __future__ import annotations

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import complete_aliases, dry_run_option, json_option
from mailprov.cli.output import emit, table


@click.group()
def alias() -> None:
    """Aliases and forwarding: one address delivering to others (``@domain`` = catch-all)."""


@alias.command("add")
@click.argument("source")
@click.argument("destinations", nargs=-1, required=True)
@dry_run_option
@json_option
def alias_add(source: str, destinations: tuple[str, ...]) -> None:
    """Make SOURCE deliver to DESTINATIONS (adds to an existing alias).

    SOURCE may be @DOMAIN, a catch-all for addresses of DOMAIN that are neither
    mailboxes nor aliases. A destination outside the domains served here forwards.
    """
    from mailprov.services.accounts import add_alias

    app = app_context()
    change = add_alias(app.store, source, list(destinations), actor=app.actor())
    made = change.alias
    emit(
        click.get_current_context(),
        {"changed": change.changed, "added": list(change.added), "alias": made.to_json()},
        f"{made.address} -> {', '.join(made.destinations)}"
        + ("" if change.changed else " (unchanged)"),
    )


@alias.command("list")
@click.option("--domain", metavar="DOMAIN", help="Only aliases of this domain.")
@json_option
def alias_list(domain: str | None) -> None:
    """List aliases and their destinations."""
    from mailprov.services.accounts import list_aliases

    found = list_aliases(app_context().store, domain=domain)
    table(
        click.get_current_context(),
        {"aliases": [a.to_json() for a in found]},
        ["alias", "destinations"],
        [[a.address, ", ".join(a.destinations)] for a in found],
    )


@alias.command("remove")
@click.argument("source", shell_complete=complete_aliases)
@click.option(
    "--destination",
    "destinations",
    multiple=True,
    metavar="ADDR",
    help="Remove only this destination (repeatable); the alias goes when none is left.",
)
@click.option(
    "--missing-ok",
    is_flag=True,
    help="Succeed (changed: false) if SOURCE, or a --destination of it, is already absent.",
)
@dry_run_option
@json_option
def alias_remove(source: str, destinations: tuple[str, ...], missing_ok: bool) -> None:
    """Remove alias SOURCE, or some of its destinations."""
    from mailprov.services.accounts import remove_alias_change

    app = app_context()
    changed, left = remove_alias_change(
        app.store, source, destinations, actor=app.actor(), missing_ok=missing_ok
    )
    if left:
        human = f"{source} -> {', '.join(left.destinations)}"
    else:
        human = f"removed alias {source}" if changed else f"alias {source} does not exist"
    emit(
        click.get_current_context(),
        {"changed": changed, "alias": source, "remaining": left.to_json() if left else None},
        human + ("" if changed else " (unchanged)"),
    )
