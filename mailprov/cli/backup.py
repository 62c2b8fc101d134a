"""``mailprov backup --out FILE`` and ``mailprov restore FILE``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import json_option
from mailprov.cli.output import emit

passphrase_option = click.option(
    "--passphrase-stdin",
    is_flag=True,
    help="Read a passphrase from the first line of standard input (encrypts the backup; "
    "needed to restore an encrypted one).",
)


def _passphrase(wanted: bool) -> bytes | None:
    from mailprov.errors import MissingOption

    if not wanted:
        return None
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise MissingOption("no passphrase was given on standard input")
    return line.encode("utf-8")


@click.command("backup")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The backup file to create (new, mode 0600).",
)
@passphrase_option
@json_option
def backup(out: Path, passphrase_stdin: bool) -> None:
    """Write the store (every table, the audit log's chain intact), the DKIM keys, the identity
    pepper, the site config and the deploy manifest to one archive with SHA-256 sums.

    Maildirs are not included (a file backup keeps mail): the output lists everything left out.
    """
    from mailprov.services.backup import make
    from mailprov.system.secrets import write_secret

    app = app_context()
    made = make(
        app.store, app.settings, now=app.actor().now, passphrase=_passphrase(passphrase_stdin)
    )
    write_secret(out, made.data)
    data = {
        "changed": True,
        "file": str(out),
        "bytes": len(made.data),
        "encrypted": made.encrypted,
        "tables": made.tables,
        "files": made.files,
        "not_included": made.not_included,
    }
    rows = sum(made.tables.values())
    human = [
        f"wrote {out} ({len(made.data)} bytes{', encrypted' if made.encrypted else ''}): "
        f"{rows} rows in {len(made.tables)} tables, {len(made.files)} files",
        "not included:",
        *(f"  - {item}" for item in made.not_included),
    ]
    emit(click.get_current_context(), data, "\n".join(human))


@click.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--check",
    "--dry-run",
    "check",
    is_flag=True,
    help="Verify the backup and say what would be restored; write nothing.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace what the store holds (and key files that differ) instead of refusing.",
)
@click.option(
    "--site-config-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the backed-up site config to this new file (0600); review it before use.",
)
@passphrase_option
@json_option
def restore(
    file: Path, check: bool, force: bool, site_config_out: Path | None, passphrase_stdin: bool
) -> None:
    """Restore a backup into the configured store (SQLite or PostgreSQL, either way round).

    The whole file is verified first. The store must be empty (or --force); its schema is
    created when missing. DKIM keys and the pepper go to the configured paths.
    """
    from mailprov.errors import StoreUnavailable
    from mailprov.services import backup as service
    from mailprov.store import open_store
    from mailprov.store.migrate import upgrade
    from mailprov.system.secrets import write_secret

    app = app_context()
    opened = service.open_backup(file.read_bytes(), _passphrase(passphrase_stdin))
    url = app.settings.store.url
    if check:
        try:
            store = open_store(url)
        except StoreUnavailable:
            store = None  # no store (or no schema) yet: restoring would create it
    else:
        upgrade(url)
        store = open_store(url)
    try:
        done = service.restore(
            store, app.settings, opened, actor=app.actor(), force=force, check=check
        )
    finally:
        if store is not None:
            store.close()
    if site_config_out is not None and not check and "site/mailprov.toml" in opened.files:
        write_secret(site_config_out, opened.files["site/mailprov.toml"])
        done.written.append(str(site_config_out))
    data = {
        "changed": not check,
        "check": check,
        "created_at": opened.manifest.get("created_at"),
        "source_backend": opened.manifest.get("source_backend"),
        "tables": done.tables,
        "replaced": done.replaced,
        "files_written": done.written,
        "files_unchanged": done.unchanged,
        "kept_in_backup": done.kept_in_backup,
    }
    verb = "would restore" if check else "restored"
    human = [
        f"{verb} {sum(done.tables.values())} rows in {len(done.tables)} tables "
        f"(from {data['source_backend']})",
        *(f"{'would write' if check else 'wrote'} {p}" for p in done.written),
    ]
    if done.replaced:
        human.append(
            f"{'would replace' if check else 'replaced'} {sum(done.replaced.values())} rows"
        )
    emit(click.get_current_context(), data, "\n".join(human))
