"""The relay's on-disk message store: append-only segment files plus a SQLite index.

Layout under the storage folder::

    index.sqlite            one row per message (with its segment and offset),
                            one row per (mailbox, message)
    messages/PID-N.seg      messages exactly as received, one after another, each
                            preceded by an ``X-Relay-Id: ID`` line (so ``grep`` finds
                            them and shows which message a match is in)

A message is *stored* when its index row is committed; that happens before the
relay answers 250, so everything acknowledged can be read back, and a client
that disconnects mid-DATA leaves nothing behind. If indexing fails, the bytes
just appended are cut off again (``ftruncate``).

Why segments and not one file per message: creating a file costs 0.1-1 ms on a
busy ext4 (the journal is shared with the whole machine), more than everything
else the relay does per message; an append to an open file costs microseconds
(see bench/README.md). Each process appends to its own segment and starts a new
one at ``SEGMENT_BYTES``. A segment file is removed once no indexed message is
in it (a process's current segment only by that process), so deleted
messages' bytes stay on disk until their whole segment goes.

Several relay processes (the SO_REUSEPORT workers) share one store: SQLite in
WAL mode serialises their short write transactions. This index is the relay's
own file (Postfix and Dovecot never open it), so WAL is fine here, unlike the
account store. Retention is bounded by message count, age and total bytes; the
oldest messages go first (:mod:`.retention`: count and bytes inside every
commit, age at most once a second). Searches are planned in :mod:`.search`;
the tables are in :mod:`.schema`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from mailprov.errors import NotFound, RelayStorageUnavailable
from mailprov.model import iso
from mailprov.relay.storage import retention as bound
from mailprov.relay.storage.headers import header_value, parse_headers
from mailprov.relay.storage.retention import Retention
from mailprov.relay.storage.schema import empty, upgrade
from mailprov.relay.storage.search import (
    COLUMNS,
    COUNT_MAX,
    SMALL_MAILBOX,
    Page,
    Query,
    plan,
    rows_in_python,
)

__all__ = [
    "MessageStore",
    "Page",
    "Pending",
    "Query",
    "Retention",
    "StoredMessage",
    "header_value",
    "message_detail",
    "parse_headers",
]

RETENTION_INTERVAL_S = 1.0
SEGMENT_BYTES = 16 << 20
_counter = itertools.count()


@dataclass(frozen=True)
class StoredMessage:
    """One captured message's index entry."""

    seq: int
    id: str
    received_at: float
    sender: str
    recipients: tuple[str, ...]
    auth_user: str | None
    peer: str
    subject: str
    message_id: str
    size: int

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary."""

        return {
            "id": self.id,
            "seq": self.seq,
            "received_at": iso(int(self.received_at)),
            "received_ts": self.received_at,
            "from": self.sender,
            "to": list(self.recipients),
            "auth_user": self.auth_user,
            "peer": self.peer,
            "subject": self.subject,
            "message_id": self.message_id,
            "size": self.size,
        }


@dataclass
class Pending:
    """A message on its way into the store: bytes, index fields, header block, place."""

    raw: bytes
    meta: StoredMessage
    headers: str
    segment: str = ""
    offset: int = 0


@dataclass
class MessageStore:
    """A storage folder opened by one process (each worker opens its own)."""

    root: Path
    retention: Retention = field(default_factory=Retention)
    fsync: bool = False
    _db: sqlite3.Connection | None = field(default=None, repr=False)
    _last_retention: float = 0.0
    _segment: str = ""
    _segment_fd: int = -1
    _segment_no: int = 0

    # -- opening -------------------------------------------------------------

    def connect(self) -> sqlite3.Connection:
        """A new connection to the index (one per thread that writes)."""
        db = sqlite3.connect(
            self.root / "index.sqlite", timeout=30, isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA busy_timeout = 30000")
        # NORMAL in WAL mode: a commit survives a crash of the process, and only a
        # power loss can drop the last commits (relay.fsync = true syncs the files).
        db.execute("PRAGMA synchronous = " + ("FULL" if self.fsync else "NORMAL"))
        return db

    def open(self, *, create: bool = True, writer: bool = False) -> MessageStore:
        """Create the layout and index if needed; RelayStorageUnavailable if unusable."""
        if not create and not (self.root / "index.sqlite").is_file():
            raise RelayStorageUnavailable(
                f"there is no relay storage in {self.root}",
                hint="start 'mailprov relay serve' first, or point --storage at its folder",
            )
        try:
            (self.root / "messages").mkdir(parents=True, exist_ok=True)
            probe = self.root / "messages" / f".probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
            db = self.connect()
            db.execute("PRAGMA journal_mode = WAL")
            upgrade(db)
            if writer:  # checkpoints run in a thread instead (StoreWriter), never inside a commit
                db.execute("PRAGMA wal_autocheckpoint = 0")
        except (OSError, sqlite3.Error) as exc:
            raise RelayStorageUnavailable(
                f"cannot use the relay storage folder {self.root}: {exc}"
            ) from None
        self._db = db
        if writer:  # segments a crash left without messages (deleted, never indexed)
            self._drop_segments({p.name for p in (self.root / "messages").glob("*.seg")})
        return self

    @property
    def db(self) -> sqlite3.Connection:
        """The index connection (opened by :meth:`open`)."""
        if self._db is None:
            self.open()
        assert self._db is not None  # noqa: S101 (narrows a type)
        return self._db

    def close(self) -> None:
        """Close the index and the current segment."""
        if self._segment_fd >= 0:
            os.close(self._segment_fd)
            self._segment_fd = -1
        if self._db is not None:
            self._db.close()
            self._db = None

    def segment_path(self, segment: str) -> Path:
        """Where a segment file lives."""
        return self.root / "messages" / segment

    def _current_segment(self) -> int:
        fd = self._segment_fd
        if fd >= 0:
            st = os.fstat(fd)
            if st.st_nlink and st.st_size < SEGMENT_BYTES:
                return fd
            os.close(fd)
        self._segment_no += 1
        self._segment = f"{os.getpid():x}-{int(time.time() * 1000):x}-{self._segment_no}.seg"
        self._segment_fd = os.open(
            self.segment_path(self._segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640
        )
        return self._segment_fd

    # -- writing -------------------------------------------------------------

    def add(
        self,
        raw: bytes,
        *,
        sender: str,
        recipients: Sequence[str],
        auth_user: str | None = None,
        peer: str = "",
        now: float | None = None,
    ) -> StoredMessage:
        """Store one message for each recipient's mailbox (and the AUTH user's).

        Raises:
            OSError, sqlite3.Error: the disk is full or unwritable; nothing is left behind.
        """
        pending = self.prepare(
            raw, sender=sender, recipients=recipients, auth_user=auth_user, peer=peer, now=now
        )
        return self.store([pending])[0]

    def prepare(
        self,
        raw: bytes,
        *,
        sender: str,
        recipients: Sequence[str],
        auth_user: str | None = None,
        peer: str = "",
        now: float | None = None,
    ) -> Pending:
        """Give a message its id and index fields (cheap, no I/O)."""
        received = time.time() if now is None else now
        msg_id = f"{int(received * 1000):011x}-{os.getpid():x}-{next(_counter):x}"
        block, pairs = parse_headers(raw)
        return Pending(
            raw,
            StoredMessage(
                0,
                msg_id,
                received,
                sender,
                tuple(recipients),
                auth_user,
                peer,
                header_value(pairs, "Subject"),
                header_value(pairs, "Message-ID"),
                len(raw),
            ),
            block,
        )

    def try_begin(self) -> bool:
        """Take the index's write lock now if it is free (True), without waiting (False).

        The event loop must never sit in SQLite's busy handler (it sleeps 1, 2, 5 ...
        ms); the writer retries a moment later instead, with a bigger batch.
        """
        db = self.db
        db.execute("PRAGMA busy_timeout = 0")
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return False
            raise
        finally:
            db.execute("PRAGMA busy_timeout = 30000")
        return True

    def checkpoint(self) -> None:
        """Copy the WAL back into the index (PASSIVE: never waits for anyone)."""
        db = self.connect()
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def store(self, batch: Sequence[Pending]) -> list[StoredMessage]:
        """Append a batch to the segment and index it in one transaction (all or nothing).

        The caller may hold the write lock already (:meth:`try_begin`).

        Raises:
            OSError, sqlite3.Error: nothing of the batch is kept.
        """
        fd = self._current_segment()
        start = os.fstat(fd).st_size
        try:
            offset = start
            chunks = []
            for item in batch:
                prefix = b"X-Relay-Id: " + item.meta.id.encode() + b"\r\n"
                item.segment, item.offset = self._segment, offset + len(prefix)
                chunks += [prefix, item.raw, b"\r\n"]
                offset += len(prefix) + len(item.raw) + 2
            data = memoryview(b"".join(chunks))
            while data:
                data = data[os.write(fd, data) :]
            if self.fsync:
                os.fsync(fd)
            return self._index(batch)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def _index(self, batch: Sequence[Pending]) -> list[StoredMessage]:
        db = self.db
        stored: list[StoredMessage] = []
        if not db.in_transaction:
            db.execute("BEGIN IMMEDIATE")
        try:
            for item in batch:
                m = item.meta
                cur = db.execute(
                    "INSERT INTO messages (id, received_at, sender, recipients, auth_user, peer,"
                    " subject, message_id, size, segment, offset, headers)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        m.id,
                        m.received_at,
                        m.sender,
                        json.dumps(list(m.recipients)),
                        m.auth_user,
                        m.peer,
                        m.subject,
                        m.message_id,
                        m.size,
                        item.segment,
                        item.offset,
                        item.headers,
                    ),
                )
                seq = int(cur.lastrowid or 0)
                boxes = {r.lower(): "rcpt" for r in m.recipients}
                if m.auth_user:
                    boxes.setdefault(m.auth_user.lower(), "user")
                db.executemany(
                    "INSERT OR IGNORE INTO mailbox_messages (mailbox, seq, kind) VALUES (?,?,?)",
                    [(box, seq, kind) for box, kind in boxes.items()],
                )
                stored.append(replace(m, seq=seq))
            doomed = bound.over_bound(db, self.retention)
            if doomed:
                bound.delete_rows(db, [seq for seq, _ in doomed])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if doomed:
            self._drop_segments({segment for _, segment in doomed})
        now = time.time()
        if now - self._last_retention >= RETENTION_INTERVAL_S:
            self.enforce_retention(now=now)
        return stored

    def enforce_retention(self, *, now: float | None = None) -> int:
        """Drop messages past ``max_age``, then the oldest beyond the bound; return how many."""
        now = time.time() if now is None else now
        self._last_retention = now
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            doomed = bound.expired(db, self.retention, now)
            bound.delete_rows(db, [seq for seq, _ in doomed])
            more = bound.over_bound(db, self.retention)
            bound.delete_rows(db, [seq for seq, _ in more])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        doomed += more
        if doomed:
            self._drop_segments({segment for _, segment in doomed})
        return len(doomed)

    def _delete(self, rows: list[tuple[int, str]]) -> None:
        """Delete messages given as (seq, segment), then the segment files left empty."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            bound.delete_rows(db, [seq for seq, _ in rows])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._drop_segments({segment for _, segment in rows})

    def _drop_segments(self, candidates: set[str]) -> None:
        """Remove those segments no indexed message is in (never a live process's current one)."""
        names = {p.name for p in (self.root / "messages").glob("*.seg")}
        newest: dict[str, tuple[int, int, str]] = {}
        for name in names:
            parts = name.removesuffix(".seg").split("-")
            with contextlib.suppress(ValueError, IndexError):
                key = (int(parts[1], 16), int(parts[2]), name)
                newest[parts[0]] = max(newest.get(parts[0], key), key)
        own = f"{os.getpid():x}"
        for name in sorted(candidates & names):
            in_use = "SELECT 1 FROM messages WHERE segment = ? LIMIT 1"
            if self.db.execute(in_use, (name,)).fetchone() is not None:
                continue
            pid = name.split("-", 1)[0]
            current = newest.get(pid, (0, 0, ""))[2] == name
            if current and pid != own and _alive(int(pid, 16)):
                continue
            with contextlib.suppress(FileNotFoundError):
                self.segment_path(name).unlink()

    def delete(self, message_id: str) -> None:
        """Delete one message. Raises NotFound if it is not stored."""
        row = self.db.execute(
            "SELECT seq, segment FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no message {message_id} in the relay's storage")
        self._delete([(row[0], row[1])])

    def purge(self, mailbox: str | None = None) -> int:
        """Delete every message (or those of one mailbox); return how many."""
        if mailbox is None:
            return self._empty()
        rows = self.db.execute(
            "SELECT m.seq, m.segment FROM mailbox_messages b"
            " CROSS JOIN messages m ON m.seq = b.seq WHERE b.mailbox = ?",
            (mailbox.lower(),),
        ).fetchall()
        if rows:
            self._delete(rows)
        return len(rows)

    def _empty(self) -> int:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            count = bound.totals(db)[0]
            segments = {r[0] for r in db.execute("SELECT DISTINCT segment FROM messages")}
            empty(db)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._drop_segments(segments)
        return count

    # -- reading -------------------------------------------------------------

    def mailboxes(self, *, recent: int | None = None) -> list[dict[str, Any]]:
        """Every mailbox with its kind and message count (or the ``recent`` most recently used)."""
        sql = "SELECT mailbox, kind, messages FROM mailbox_totals ORDER BY mailbox"
        args: tuple[Any, ...] = ()
        if recent is not None:
            sql = (
                "SELECT mailbox, kind, messages FROM (SELECT * FROM mailbox_totals"
                " ORDER BY last_seq DESC LIMIT ?) ORDER BY mailbox"
            )
            args = (recent,)
        rows = self.db.execute(sql, args).fetchall()
        return [{"mailbox": m, "kind": k, "messages": n} for m, k, n in rows]

    def mailbox_count(self) -> int:
        """How many mailboxes have messages."""
        return int(
            self.db.execute("SELECT count(DISTINCT mailbox) FROM mailbox_totals").fetchone()[0]
        )

    def last_seq(self) -> int:
        """The newest message's sequence number (0 when empty)."""
        return int(self.db.execute("SELECT coalesce(max(seq), 0) FROM messages").fetchone()[0])

    def count(self, mailbox: str | None = None) -> int:
        """How many messages are stored (in one mailbox, if given)."""
        if mailbox is not None:
            return int(
                self.db.execute(
                    "SELECT coalesce(sum(messages), 0) FROM mailbox_totals WHERE mailbox = ?",
                    (mailbox.lower(),),
                ).fetchone()[0]
            )
        return bound.totals(self.db)[0]

    def totals(self) -> tuple[int, int]:
        """(messages, bytes) stored: what retention compares with its limits."""
        return bound.totals(self.db)

    def search(self, query: Query) -> list[StoredMessage]:
        """Messages matching ``query``, newest first unless asked otherwise (no total counted)."""
        return self.page(query, count=False).messages

    def page(self, query: Query, *, count: bool = True) -> Page:
        """One page of matches, and their total unless ``count=False`` (see :class:`.Page`)."""
        small = bool(query.mailbox and (query.subject or query.sender)) and self._mailbox_at_most(
            query.mailbox or "", SMALL_MAILBOX
        )
        in_python = bool(query.header or query.text)
        # One row more than the page shows whether another page follows.
        found_plan = plan(query, small_mailbox=small, limit=None if in_python else query.limit + 1)
        exact = True
        if in_python:
            reader = _RawReader(self)
            try:
                rows = iter(self.db.execute(found_plan.sql, found_plan.args))
                found, total, exact = rows_in_python(rows, query, _stored, reader.raw, count=count)
            finally:
                reader.close()
            more = total > len(found)
            exact = exact and query.before_seq is None  # counted from this page on only
        else:
            found = [_stored(r) for r in self.db.execute(found_plan.sql, found_plan.args)]
            more = len(found) > query.limit
            del found[query.limit :]
            total = len(found)
            if count and (more or query.before_seq is not None):
                total, exact = self._total(query, small)
        last = found[-1].seq if found and more else None
        return Page(
            found,
            total,
            exact,
            next_before=last if query.newest_first else None,
            next_after=last if not query.newest_first else None,
            extra={"via": found_plan.via},
        )

    def _total(self, query: Query, small: bool) -> tuple[int, bool]:
        """How many match, on every page (exact, or COUNT_MAX and False beyond it)."""
        db = self.db
        if not query.filtered and query.after_seq == 0:
            return self.count(query.mailbox), True
        whole = plan(replace(query, before_seq=None), small_mailbox=small)
        sql, args = whole.count_sql(COUNT_MAX + 1)
        total = int(db.execute(sql, args).fetchone()[0])
        return (COUNT_MAX, False) if total > COUNT_MAX else (total, True)

    def _mailbox_at_most(self, mailbox: str, limit: int) -> bool:
        sql = "SELECT count(*) FROM (SELECT 1 FROM mailbox_messages WHERE mailbox = ? LIMIT ?)"
        return int(self.db.execute(sql, (mailbox.lower(), limit + 1)).fetchone()[0]) <= limit

    def arrived_after(self, seq: int, limit: int = 1000) -> list[tuple[StoredMessage, str]]:
        """Messages stored after ``seq``, oldest first, with their header blocks (for watchers)."""
        rows = self.db.execute(
            f"SELECT {COLUMNS} FROM messages m WHERE m.seq > ? ORDER BY m.seq LIMIT ?",  # noqa: S608
            (seq, limit),
        )
        return [(_stored(r), str(r[10])) for r in rows]

    def get(self, message_id: str) -> StoredMessage:
        """One message's index entry. Raises NotFound."""
        row = self.db.execute(
            "SELECT seq, id, received_at, sender, recipients, auth_user, peer, subject, message_id,"
            " size FROM messages WHERE id = ?",
            (message_id,),
        ).fetchone()
        if row is None:
            raise NotFound(
                f"no message {message_id} in the relay's storage",
                hint="list them with 'mailprov relay messages'",
            )
        return _stored(row)

    def raw(self, message_id: str) -> bytes:
        """A message's bytes as received. Raises NotFound."""
        row = self.db.execute(
            "SELECT segment, offset, size FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        if row is None:
            raise NotFound(
                f"no message {message_id} in the relay's storage",
                hint="list them with 'mailprov relay messages'",
            )
        try:
            with self.segment_path(row[0]).open("rb") as segment:
                segment.seek(row[1])
                return segment.read(row[2])
        except FileNotFoundError:
            raise NotFound(f"message {message_id} was removed by retention") from None


class _RawReader:
    """Reads many messages' bytes with one open file per segment (text searches)."""

    def __init__(self, store: MessageStore) -> None:
        self.store = store
        self._files: dict[str, Any] = {}

    def raw(self, message_id: str) -> bytes:
        row = self.store.db.execute(
            "SELECT segment, offset, size FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        if row is None:
            return b""
        segment = self._files.get(row[0])
        if segment is None:
            try:
                segment = self._files[row[0]] = self.store.segment_path(row[0]).open("rb")
            except FileNotFoundError:
                return b""
        segment.seek(row[1])
        return bytes(segment.read(row[2]))

    def close(self) -> None:
        for segment in self._files.values():
            segment.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stored(row: Sequence[Any]) -> StoredMessage:
    return StoredMessage(
        seq=row[0],
        id=row[1],
        received_at=row[2],
        sender=row[3],
        recipients=tuple(json.loads(row[4])),
        auth_user=row[5],
        peer=row[6],
        subject=row[7],
        message_id=row[8],
        size=row[9],
    )


def message_detail(raw: bytes) -> dict[str, Any]:
    """Headers and MIME parts of a message, for the API and ``relay show``."""

    msg = BytesParser(policy=policy.default).parsebytes(raw)
    parts = []
    for index, part in enumerate(msg.walk()):
        if part.is_multipart():
            continue
        entry: dict[str, Any] = {
            "index": index,
            "content_type": part.get_content_type(),
            "filename": part.get_filename(),
            "size": len(part.get_payload(decode=True) or b""),
        }
        if part.get_content_maintype() == "text":
            with contextlib.suppress(Exception):
                entry["text"] = part.get_content()
        parts.append(entry)
    headers = [[k, str(v)] for k, v in msg.items()]
    return {"headers": headers, "parts": parts}
