"""How much the store keeps, and which messages go when it is full (the oldest first).

``max_messages`` and ``max_bytes`` are a *bound*: :func:`over_bound` runs in
the transaction that indexes a batch, before its commit, so the index never
holds more than the limits once a message has been acknowledged (issue 14:
retention used to run at most once a second, after the commit, and the store
could exceed its limits until then). It reads the ``totals`` row the triggers
keep (no scan) and walks the oldest rows by primary key, so a full store pays
for the few rows it drops, not for its size. ``max_age`` stays a sweep
(:func:`expired`), run after commits at most once a second: age grows without
any write.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class Retention:
    """How much the store keeps; 0 means no limit of that kind."""

    max_messages: int = 50_000
    max_age_s: float = 7 * 86_400
    max_bytes: int = 1 << 30

    def admits(self, size: int) -> bool:
        """False if one message of ``size`` bytes could never be kept within ``max_bytes``."""
        return not self.max_bytes or size <= self.max_bytes


#: Rows deleted per statement (SQLite's default limit on host parameters is far above).
CHUNK = 500


def totals(db: sqlite3.Connection) -> tuple[int, int]:
    """(messages, bytes) stored, from the row the triggers keep."""
    row = db.execute("SELECT messages, bytes FROM totals WHERE id = 1").fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def over_bound(db: sqlite3.Connection, retention: Retention) -> list[tuple[int, str]]:
    """The oldest messages (seq, segment) that must go for the store to be within its bound."""
    r = retention
    if not (r.max_messages or r.max_bytes):
        return []
    count, total = totals(db)
    if not ((r.max_messages and count > r.max_messages) or (r.max_bytes and total > r.max_bytes)):
        return []
    doomed: list[tuple[int, str]] = []
    for seq, size, segment in db.execute("SELECT seq, size, segment FROM messages ORDER BY seq"):
        if not (
            (r.max_messages and count > r.max_messages) or (r.max_bytes and total > r.max_bytes)
        ):
            break
        doomed.append((seq, segment))
        count -= 1
        total -= size
    return doomed


def expired(db: sqlite3.Connection, retention: Retention, now: float) -> list[tuple[int, str]]:
    """Messages (seq, segment) older than ``max_age``."""
    if not retention.max_age_s:
        return []
    return [
        (int(seq), str(segment))
        for seq, segment in db.execute(
            "SELECT seq, segment FROM messages WHERE received_at < ?",
            (now - retention.max_age_s,),
        )
    ]


def delete_rows(db: sqlite3.Connection, seqs: list[int]) -> None:
    """Delete messages by seq, inside the caller's transaction."""
    for start in range(0, len(seqs), CHUNK):
        part = seqs[start : start + CHUNK]
        marks = ",".join("?" * len(part))
        db.execute(f"DELETE FROM mailbox_messages WHERE seq IN ({marks})", part)  # noqa: S608
        db.execute(f"DELETE FROM messages WHERE seq IN ({marks})", part)  # noqa: S608
