"""The append-only audit log, hash-chained.

Every change to the store appends a record in the same transaction as the change.
Each record stores the SHA-256 of the previous record (``prev_hash``) and its own
(``hash``, over its fields and ``prev_hash``), so removing or editing a record
breaks the chain, which ``verify`` reports. A UNIQUE index on ``prev_hash``
makes a fork impossible; on PostgreSQL an advisory lock serialises appenders
(SQLite's ``BEGIN IMMEDIATE`` already does).

Records never hold secrets: callers pass only non-secret details, and
``append`` refuses keys that name one.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, insert, select, text

from mailprov.store.schema import audit_log

if TYPE_CHECKING:
    from sqlalchemy import Connection, Select

GENESIS = "0" * 64
_PG_AUDIT_LOCK = 0x6D61696C  # 'mail'
_SECRET_KEYS = frozenset({"password", "code", "token", "secret", "private_key", "passphrase"})


@dataclass(frozen=True)
class AuditRecord:
    """One audit log record."""

    id: int
    at: int
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "details": self.details,
            "hash": self.hash,
        }


def _digest(prev_hash: str, at: int, actor: str, action: str, target: str, details: str) -> str:
    canonical = json.dumps([prev_hash, at, actor, action, target, details], separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def append(
    conn: Connection,
    *,
    at: int,
    actor: str,
    action: str,
    target: str,
    details: Mapping[str, Any] | None = None,
) -> str:
    """Append one record in the caller's transaction; return its hash."""
    record = {"at": at, "actor": actor, "action": action, "target": target, "details": details}
    return append_many(conn, [record])


def append_many(conn: Connection, records: list[dict[str, Any]]) -> str:
    """Append records (dicts of ``append``'s keyword arguments) in order; return the last hash."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_AUDIT_LOCK})
    prev = conn.execute(
        select(audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)
    ).scalar_one_or_none()
    prev_hash = prev or GENESIS
    rows = []
    for record in records:
        details = dict(record.get("details") or {})
        leaked = _SECRET_KEYS.intersection(k.lower() for k in details)
        if leaked:  # a programming error, never user input
            msg = f"audit details may not hold secrets: {sorted(leaked)}"
            raise ValueError(msg)
        body = json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        actor, target = record["actor"][:128], record["target"][:256]
        digest = _digest(prev_hash, record["at"], actor, record["action"], target, body)
        rows.append(
            {
                "at": record["at"],
                "actor": actor,
                "action": record["action"],
                "target": target,
                "details": body,
                "prev_hash": prev_hash,
                "hash": digest,
            }
        )
        prev_hash = digest
    if rows:
        conn.execute(insert(audit_log), rows)
    return prev_hash


def _record(row: Any) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        details=json.loads(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def records(
    conn: Connection,
    *,
    since: int | None = None,
    target: str | None = None,
    action: str | None = None,
    limit: int | None = None,
) -> list[AuditRecord]:
    """Records, oldest first, filtered by time, target and action (prefix)."""
    given = {"since": since, "target": target, "action": action, "limit": limit}
    query = _records_query(*(value is not None for value in given.values()))
    params = {name: value for name, value in given.items() if value is not None}
    if limit is not None:  # the newest ``limit``, read newest first and put back in order
        return [_record(row) for row in reversed(conn.execute(query, params).all())]
    return [_record(row) for row in conn.execute(query, params)]


@functools.cache
def _records_query(since: bool, target: bool, action: bool, limit: bool) -> Select[Any]:
    """The query of :func:`records` for the filters given, with bind parameters (built once:
    building a statement per call costs more than a small query, e.g. an owner's events)."""
    query = select(audit_log)
    if since:
        query = query.where(audit_log.c.at >= bindparam("since"))
    if target:
        query = query.where(audit_log.c.target == bindparam("target"))
    if action:
        query = query.where(audit_log.c.action.startswith(bindparam("action")))
    if limit:
        return query.order_by(audit_log.c.id.desc()).limit(bindparam("limit"))
    return query.order_by(audit_log.c.id)


def _walk(conn: Connection) -> Iterator[Any]:
    yield from conn.execute(select(audit_log).order_by(audit_log.c.id)).yield_per(1000)


@dataclass(frozen=True)
class ChainReport:
    """The result of checking the chain."""

    count: int
    broken_at: int | None
    reason: str | None

    @property
    def ok(self) -> bool:
        """True if the chain is whole."""
        return self.broken_at is None


def verify(conn: Connection) -> ChainReport:
    """Walk the whole chain; report the first record whose hash or link does not match."""
    expected_prev = GENESIS
    count = 0
    for row in _walk(conn):
        count += 1
        if row.prev_hash != expected_prev:
            return ChainReport(count, row.id, "a record before it was removed or changed")
        digest = _digest(row.prev_hash, row.at, row.actor, row.action, row.target, row.details)
        if digest != row.hash:
            return ChainReport(count, row.id, "the record itself was changed")
        expected_prev = row.hash
    return ChainReport(count, None, None)


def count(conn: Connection) -> int:
    """How many records the log holds."""
    return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())
