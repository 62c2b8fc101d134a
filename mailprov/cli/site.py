"""``mailprov init``, ``mailprov config show``, ``mailprov db upgrade``."""

from __future__ import annotations

from pathlib import Path

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import json_option
from mailprov.cli.output import emit, table


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Site folder: mailprov.toml and (by default) mailprov.sqlite go here.",
)
@click.option("--domain", metavar="DOMAIN", help="Add this first domain to the store.")
@click.option("--store", "store_url", metavar="URL", help="Store URL (default: SQLite in --dir).")
@click.option("--hostname", metavar="FQDN", help="This mail host's name (default: mail.DOMAIN).")
@json_option
def init(directory: Path, domain: str | None, store_url: str | None, hostname: str | None) -> None:
    """Create a site: DIR/mailprov.toml, the store (schema at the newest), a first domain.

    Safe to run again: an existing config is kept and the schema is upgraded.
    """
    from mailprov.services.site import init_site
    from mailprov.store import redact_url

    app = app_context()
    result = init_site(
        directory, actor=app.actor(), domain=domain, store_url=store_url, hostname=hostname
    )
    changed = result.config_written or result.upgrade.changed or result.domain_added
    state = "written" if result.config_written else "kept"
    if result.config_group:
        state += f", readable by group {result.config_group}"
    lines = [
        f"config: {result.config_file} ({state})",
        f"store:  {redact_url(result.store_url)} (schema {result.upgrade.after})",
    ]
    if result.domain:
        lines.append(f"domain: {result.domain} ({'added' if result.domain_added else 'exists'})")
    emit(
        click.get_current_context(),
        {
            "changed": changed,
            "config_file": str(result.config_file),
            "config_written": result.config_written,
            "config_group": result.config_group,
            "store": redact_url(result.store_url),
            "schema": result.upgrade.after,
            "domain": result.domain,
            "domain_added": result.domain_added,
        },
        "\n".join(lines),
    )


@click.group()
def config() -> None:
    """Inspect the site configuration."""


@config.command("show")
@click.option("--origin", is_flag=True, help="Show where each value came from.")
@json_option
def config_show(origin: bool) -> None:
    """Show every setting in effect (and with --origin, its source)."""
    from mailprov.settings import as_dict
    from mailprov.store import redact_url

    settings = app_context().settings
    data = as_dict(settings)
    if data["store"]["url"]:
        data["store"]["url"] = redact_url(data["store"]["url"])
    rows = []
    for section, values in data.items():
        for key, value in values.items():
            shown = str(value).lower() if isinstance(value, bool) else value
            row = [f"{section}.{key}", shown]
            if origin:
                row.append(settings.origins.get(f"{section}.{key}", "default"))
            rows.append(row)
    payload: dict[str, object] = {
        "config_file": str(settings.config_file) if settings.config_file else None,
        "settings": data,
    }
    if origin:
        payload["origins"] = dict(settings.origins)
    ctx = click.get_current_context()
    if not app_context().json:
        click.echo(f"# config file: {settings.config_file or '(none found; defaults)'}", err=True)
    columns = ["setting", "value", "origin"] if origin else ["setting", "value"]
    table(ctx, payload, columns, rows)


@click.group()
def db() -> None:
    """Manage the account store's schema."""


@db.command("upgrade")
@json_option
def db_upgrade() -> None:
    """Bring the store's schema to the newest version (creates a new SQLite store)."""
    from mailprov.store import redact_url
    from mailprov.store.migrate import upgrade

    url = app_context().settings.store.url
    if not url:
        from mailprov.errors import StoreUnavailable

        raise StoreUnavailable("no account store is configured")
    result = upgrade(url)
    emit(
        click.get_current_context(),
        {
            "changed": result.changed,
            "from": result.before,
            "to": result.after,
            "store": redact_url(url),
        },
        f"schema {result.before or '(empty)'} -> {result.after}"
        if result.changed
        else f"schema already at {result.after}",
    )
