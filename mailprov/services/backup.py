"""``mailprov backup`` / ``restore``: the store and the site's secrets in one verified archive.

What a backup holds (:mod:`mailprov.rules.archive` is the file format):

- ``store/<table>.jsonl`` — every table of the store at its schema revision (accounts, the
  identity gate's and the owner's side's tables, the trust configuration, and the audit log
  with its hash chain), one JSON array per row: the same on SQLite and PostgreSQL, so a
  backup of one restores into the other.
- ``dkim/<domain>/`` — the DKIM private keys and ``selectors.json``;
  ``identity/pepper`` — the code pepper; ``site/mailprov.toml`` — the site config;
  ``deploy/manifest.json`` — the active deploy generation's manifest (what was installed).

What it does not hold is listed in its manifest and in ``backup``'s report (Maildirs first).

``restore`` verifies the whole archive first, refuses a newer (or older) schema, and
restores into an empty store, or with ``force`` replaces what the store holds, in one
transaction; the audit chain is checked before the commit and gets a ``store.restore``
record. Files are written only after the store commit, and only where nothing different
is in the way (unless ``force``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, delete, func, insert, select, text

from mailprov import __version__
from mailprov.errors import (
    AuditChainBroken,
    BackupInvalid,
    BackupTooNew,
    RestoreRefused,
)
from mailprov.rules import archive
from mailprov.store import audit, current_revision
from mailprov.store.schema import SCHEMA_HEAD, metadata
from mailprov.system.files import atomic_write, ensure_dir, read_bytes
from mailprov.system.secrets import (
    DKIM_KEY,
    PEPPER,
    read_secret,
    replace_secret,
    user_ids,
    write_secret,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection, Table

    from mailprov.services.accounts import Actor
    from mailprov.settings import SiteConfig
    from mailprov.store import Store

_CHUNK = 1000


@dataclass(frozen=True)
class Made:
    """A backup made: the bytes to write, and what went in and what did not."""

    data: bytes
    tables: dict[str, int]
    files: list[str]
    not_included: list[str]
    encrypted: bool


def not_included(settings: SiteConfig) -> list[str]:
    """What a backup leaves out, each with where it is and how to keep it."""
    return [
        f"Maildirs (the mail itself) under {settings.resolve_path(settings.dovecot.mail_root)}: "
        "back them up with a file backup (e.g. rsync or borg)",
        f"the TLS certificate and key ({settings.tls.cert_file}, {settings.tls.key_file}): "
        "kept by their issuer (e.g. certbot's /etc/letsencrypt)",
        "the rendered server files and older deploy generations: 'deploy apply' renders them",
        "relay captured messages, notify and relay password files, the CRL files trusted CAs "
        "name (fetched from their CA), the files JWKS were added from (copied into the store)",
    ]


def _dump(conn: Connection) -> dict[str, bytes]:
    out = {}
    for table in metadata.sorted_tables:
        columns = [c.name for c in table.columns]
        query = select(*table.columns).order_by(*table.primary_key.columns)
        lines = [json.dumps({"table": table.name, "columns": columns})]
        lines += [
            json.dumps(list(row), ensure_ascii=False, separators=(",", ":"))
            for row in conn.execute(query)
        ]
        out[f"store/{table.name}.jsonl"] = ("\n".join(lines) + "\n").encode("utf-8")
    return out


def _site_files(settings: SiteConfig) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    key_dir = settings.resolve_path(settings.dkim.key_dir)
    if key_dir.is_dir():
        for folder in sorted(p for p in key_dir.iterdir() if p.is_dir()):
            for path in sorted(folder.iterdir()):
                if path.name.endswith(".private"):
                    out[f"dkim/{folder.name}/{path.name}"] = read_secret(path, DKIM_KEY)
                elif path.name == "selectors.json":
                    out[f"dkim/{folder.name}/{path.name}"] = path.read_bytes()
    pepper = settings.resolve_path(settings.identity.pepper_file)
    if pepper.exists():
        out["identity/pepper"] = read_secret(pepper, PEPPER)
    if settings.config_file is not None and settings.config_file.is_file():
        out["site/mailprov.toml"] = settings.config_file.read_bytes()
    manifest = read_bytes(settings.resolve_path(settings.deploy.state_dir) / "manifest.json")
    if manifest is not None:
        out["deploy/manifest.json"] = manifest
    return out


def make(store: Store, settings: SiteConfig, *, now: int, passphrase: bytes | None) -> Made:
    """The backup of ``store`` and the site's files (encrypted when a passphrase is given)."""
    with store.read() as conn:
        if conn.dialect.name == "postgresql":
            # One snapshot for every table (READ COMMITTED would let each SELECT see a later
            # commit); SQLite's read transaction holds its shared lock to the end already.
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        revision = current_revision(conn)
        files = _dump(conn)
        tables = {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in metadata.sorted_tables
        }
    site = _site_files(settings)
    files.update(site)
    missing = not_included(settings)
    meta = {
        "created_at": now,
        "mailprov": __version__,
        "schema": revision,
        "source_backend": store.dialect,
        "tables": tables,
        "not_included": missing,
    }
    data = archive.pack(files, meta, mtime=now)
    if passphrase is not None:
        data = archive.encrypt(data, passphrase)
    return Made(data, tables, sorted(site), missing, passphrase is not None)


# -- restore ---------------------------------------------------------------------------


@dataclass
class Restored:
    """What ``restore`` did (or, with ``check``, would do)."""

    manifest: dict[str, Any]
    tables: dict[str, int]
    replaced: dict[str, int] = field(default_factory=dict)  # rows there before (--force)
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept_in_backup: list[str] = field(default_factory=list)


def open_backup(data: bytes, passphrase: bytes | None) -> archive.Archive:
    """Decrypt (if needed) and verify a backup.

    Raises:
        BackupInvalid: damaged, changed, or the passphrase is missing or wrong.
        BackupTooNew: made with a newer store schema.
        RestoreRefused: made with an older store schema.
    """
    if archive.is_encrypted(data):
        if passphrase is None:
            raise BackupInvalid(
                "the backup is encrypted and no passphrase was given",
                hint="pass --passphrase-stdin and the passphrase on standard input",
            )
        data = archive.decrypt(data, passphrase)
    opened = archive.unpack(data)
    schema = str(opened.manifest.get("schema"))
    if schema > SCHEMA_HEAD:
        raise BackupTooNew(
            f"the backup's store schema is {schema}; this mailprov knows up to {SCHEMA_HEAD}"
        )
    if schema != SCHEMA_HEAD:
        raise RestoreRefused(
            f"the backup's store schema is {schema}, older than this mailprov's {SCHEMA_HEAD}",
            hint="restore it with the mailprov version that made it, then upgrade",
        )
    return opened


def _rows(opened: archive.Archive, table: Table) -> list[dict[str, Any]]:
    raw = opened.files.get(f"store/{table.name}.jsonl")
    if raw is None:
        raise BackupInvalid(f"the backup has no rows file for table {table.name}")
    head, *body = raw.decode("utf-8").splitlines()
    columns = json.loads(head)["columns"]
    if set(columns) != {c.name for c in table.columns}:
        raise BackupInvalid(f"the backup's table {table.name} has other columns than the schema")
    return [dict(zip(columns, json.loads(line), strict=True)) for line in body]


def _planned_files(settings: SiteConfig, opened: archive.Archive) -> dict[str, Path]:
    """Where each restorable file of the backup goes."""
    out = {}
    key_dir = settings.resolve_path(settings.dkim.key_dir)
    for name in opened.files:
        if name.startswith("dkim/"):
            out[name] = key_dir / name.removeprefix("dkim/")
    if "identity/pepper" in opened.files:
        out["identity/pepper"] = settings.resolve_path(settings.identity.pepper_file)
    return out


def restore(
    store: Store | None,
    settings: SiteConfig,
    opened: archive.Archive,
    *,
    actor: Actor,
    force: bool = False,
    check: bool = False,
) -> Restored:
    """Restore a verified backup into ``store`` (whose schema is current) and the key files.

    ``store`` None (``check`` only): the store does not exist yet, so it is empty.

    Raises:
        RestoreRefused: the store holds data, or a key file differs (and not ``force``).
        AuditChainBroken: the restored audit log's chain does not hold (nothing restored).
    """
    tables = {t.name: _rows(opened, t) for t in metadata.sorted_tables}
    result = Restored(opened.manifest, {n: len(r) for n, r in tables.items()})
    if store is not None:
        with store.read() as conn:
            result.replaced = {
                t.name: n
                for t in metadata.sorted_tables
                if (n := int(conn.execute(select(func.count()).select_from(t)).scalar_one()))
            }
    targets = _planned_files(settings, opened)
    differing = [
        str(path)
        for name, path in sorted(targets.items())
        if read_bytes(path) not in (None, opened.files[name])
    ]
    result.unchanged = [
        str(p) for n, p in sorted(targets.items()) if read_bytes(p) == opened.files[n]
    ]
    result.kept_in_backup = sorted(n for n in opened.files if n.startswith(("site/", "deploy/")))
    if result.replaced and not force:
        total = sum(result.replaced.values())
        raise RestoreRefused(
            f"the store is not empty ({total} rows in {len(result.replaced)} tables); "
            "nothing was restored",
            tables=result.replaced,
        )
    if differing and not force:
        raise RestoreRefused(
            f"{differing[0]} exists with other content; nothing was restored",
            problems=differing,
        )
    if check or store is None:
        result.written = [
            str(p) for _, p in sorted(targets.items()) if str(p) not in result.unchanged
        ]
        return result
    with store.begin() as conn:
        _load(conn, tables)
        chain = audit.verify(conn)
        if not chain.ok:
            raise AuditChainBroken(
                f"the backup's audit log is broken at record {chain.broken_at} "
                f"({chain.reason}); nothing was restored"
            )
        audit.append(
            conn,
            at=actor.now,
            actor=actor.name,
            action="store.restore",
            target=store.dialect,
            details={
                "created_at": opened.manifest.get("created_at"),
                "source_backend": opened.manifest.get("source_backend"),
                "replaced_rows": sum(result.replaced.values()),
            },
        )
    result.written = _write_files(settings, opened, targets, set(result.unchanged))
    return result


def _load(conn: Connection, tables: dict[str, list[dict[str, Any]]]) -> None:
    for table in reversed(metadata.sorted_tables):
        conn.execute(delete(table))
    for table in metadata.sorted_tables:
        rows = tables[table.name]
        for start in range(0, len(rows), _CHUNK):
            conn.execute(insert(table), rows[start : start + _CHUNK])
    if conn.dialect.name == "postgresql":
        # Rows came with their ids: move each id sequence past them.
        for table in metadata.sorted_tables:
            pk = list(table.primary_key.columns)
            if len(pk) == 1 and isinstance(pk[0].type, Integer) and pk[0].autoincrement:
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', '{pk[0].name}'), "  # noqa: S608  (names from our own schema)
                        f"COALESCE(MAX({pk[0].name}), 0) + 1, false) FROM {table.name}"
                    )
                )


def _write_files(
    settings: SiteConfig, opened: archive.Archive, targets: dict[str, Path], same: set[str]
) -> list[str]:
    written = []
    owner = user_ids(settings.dkim.signer_user, setting="dkim.signer_user")
    for name, path in sorted(targets.items()):
        if str(path) in same:
            continue
        data = opened.files[name]
        ensure_dir(path.parent)
        if name.endswith("selectors.json"):
            atomic_write(path, data, mode=0o644)
        elif path.exists():
            replace_secret(path, data)
        else:
            write_secret(path, data, owner=owner if name.startswith("dkim/") else None)
        written.append(str(path))
    return written
