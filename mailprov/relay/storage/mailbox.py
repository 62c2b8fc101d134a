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
oldest messages go first. Each process enforces it at most once a second.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from email import policy
from email.header import decode_header, make_header
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from mailprov.errors import InvalidValue, NotFound, RelayStorageUnavailable
from mailprov.model import iso

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    received_at REAL NOT NULL,
    sender      TEXT NOT NULL,
    recipients  TEXT NOT NULL,           -- JSON list, in RCPT order
    auth_user   TEXT,
    peer        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    size        INTEGER NOT NULL,
    segment     TEXT NOT NULL,           -- file under messages/
    offset      INTEGER NOT NULL,        -- where the message starts in it
    headers     TEXT NOT NULL            -- the raw header block, for header search
);
CREATE INDEX IF NOT EXISTS ix_messages_segment ON messages (segment);
CREATE TABLE IF NOT EXISTS mailbox_messages (
    mailbox TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    kind    TEXT NOT NULL,               -- 'rcpt' or 'user'
    PRIMARY KEY (mailbox, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_mailbox_messages_seq ON mailbox_messages (seq);
CREATE INDEX IF NOT EXISTS ix_messages_received_at ON messages (received_at);
"""

RETENTION_INTERVAL_S = 1.0
SEGMENT_BYTES = 16 << 20
_counter = itertools.count()


@dataclass(frozen=True)
class Retention:
    """How much the store keeps; 0 means no limit of that kind."""

    max_messages: int = 50_000
    max_age_s: float = 7 * 86_400
    max_bytes: int = 1 << 30


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


@dataclass(frozen=True)
class Query:
    """What to look for; every given field must match (subject/sender: substring, no case)."""

    mailbox: str | None = None
    sender: str | None = None
    subject: str | None = None
    user: str | None = None
    since: float | None = None
    until: float | None = None
    header: tuple[str, str] | None = None
    after_seq: int = 0
    limit: int = 100
    newest_first: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.limit <= 10_000:
            raise InvalidValue(f"limit must be 1-10000, not {self.limit}")
        if self.header is not None and not self.header[0].strip():
            raise InvalidValue("a header query needs a header name, as NAME:VALUE")


def parse_headers(raw: bytes) -> tuple[str, list[tuple[str, str]]]:
    """The header block as text, and its (name, unfolded value) pairs. Cheap: no email parser."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    block = (raw if end < 0 else raw[:end]).decode("utf-8", "replace")
    pairs: list[tuple[str, str]] = []
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and pairs:
            name, value = pairs[-1]
            pairs[-1] = (name, value + " " + line.strip())
        elif ":" in line:
            name, _, value = line.partition(":")
            pairs.append((name.strip(), value.strip()))
    return block, pairs


def header_value(pairs: Sequence[tuple[str, str]], name: str) -> str:
    """The first value of header ``name`` (RFC 2047 words decoded), or ''."""
    lname = name.lower()
    for key, value in pairs:
        if key.lower() == lname:
            if "=?" in value:
                with contextlib.suppress(Exception):
                    return str(make_header(decode_header(value)))
            return value
    return ""


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
            db.executescript(SCHEMA)
            if writer:  # checkpoints run in a thread instead (StoreWriter), never inside a commit
                db.execute("PRAGMA wal_autocheckpoint = 0")
        except (OSError, sqlite3.Error) as exc:
            raise RelayStorageUnavailable(
                f"cannot use the relay storage folder {self.root}: {exc}"
            ) from None
        self._db = db
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
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        now = time.time()
        if now - self._last_retention >= RETENTION_INTERVAL_S:
            self.enforce_retention(now=now)
        return stored

    def enforce_retention(self, *, now: float | None = None) -> int:
        """Drop the oldest messages beyond the limits; return how many went."""
        now = time.time() if now is None else now
        self._last_retention = now
        r = self.retention
        doomed: list[tuple[int, str]] = []
        db = self.db
        if r.max_age_s:
            doomed += db.execute(
                "SELECT seq, id FROM messages WHERE received_at < ?", (now - r.max_age_s,)
            ).fetchall()
        count, total = db.execute("SELECT count(*), total(size) FROM messages").fetchone()
        count -= len(doomed)
        skip = {seq for seq, _ in doomed}
        if (r.max_messages and count > r.max_messages) or (r.max_bytes and total > r.max_bytes):
            for seq, mid, size in db.execute("SELECT seq, id, size FROM messages ORDER BY seq"):
                over_count = r.max_messages and count > r.max_messages
                over_bytes = r.max_bytes and total > r.max_bytes
                if not (over_count or over_bytes):
                    break
                if seq in skip:
                    continue
                doomed.append((seq, mid))
                count -= 1
                total -= size
        if doomed:
            self._delete([seq for seq, _ in doomed])
        return len(doomed)

    def _delete(self, seqs: list[int], _ids: list[str] | None = None) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for chunk in range(0, len(seqs), 500):
                part = seqs[chunk : chunk + 500]
                marks = ",".join("?" * len(part))
                db.execute(f"DELETE FROM mailbox_messages WHERE seq IN ({marks})", part)  # noqa: S608
                db.execute(f"DELETE FROM messages WHERE seq IN ({marks})", part)  # noqa: S608
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._drop_segments()

    def _drop_segments(self) -> None:
        """Remove segments without indexed messages (never another live process's current one)."""
        used = {r[0] for r in self.db.execute("SELECT DISTINCT segment FROM messages")}
        files = [p.name for p in (self.root / "messages").glob("*.seg")]
        newest: dict[str, tuple[int, int, str]] = {}
        for name in files:
            parts = name.removesuffix(".seg").split("-")
            with contextlib.suppress(ValueError, IndexError):
                key = (int(parts[1], 16), int(parts[2]), name)
                newest[parts[0]] = max(newest.get(parts[0], key), key)
        own = f"{os.getpid():x}"
        for name in files:
            if name in used:
                continue
            pid = name.split("-", 1)[0]
            current = newest.get(pid, (0, 0, ""))[2] == name
            if current and pid != own and _alive(int(pid, 16)):
                continue
            with contextlib.suppress(FileNotFoundError):
                self.segment_path(name).unlink()

    def delete(self, message_id: str) -> None:
        """Delete one message. Raises NotFound if it is not stored."""
        row = self.db.execute("SELECT seq FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise NotFound(f"no message {message_id} in the relay's storage")
        self._delete([row[0]], [message_id])

    def purge(self, mailbox: str | None = None) -> int:
        """Delete every message (or those of one mailbox); return how many."""
        if mailbox is None:
            rows = self.db.execute("SELECT seq, id FROM messages").fetchall()
        else:
            rows = self.db.execute(
                "SELECT m.seq, m.id FROM messages m JOIN mailbox_messages b ON b.seq = m.seq"
                " WHERE b.mailbox = ?",
                (mailbox.lower(),),
            ).fetchall()
        if rows:
            self._delete([r[0] for r in rows], [r[1] for r in rows])
        return len(rows)

    # -- reading -------------------------------------------------------------

    def mailboxes(self) -> list[dict[str, Any]]:
        """Every mailbox with its kind and message count."""
        rows = self.db.execute(
            "SELECT mailbox, kind, count(*) FROM mailbox_messages"
            " GROUP BY mailbox, kind ORDER BY mailbox"
        ).fetchall()
        return [{"mailbox": m, "kind": k, "messages": n} for m, k, n in rows]

    def last_seq(self) -> int:
        """The newest message's sequence number (0 when empty)."""
        return int(self.db.execute("SELECT coalesce(max(seq), 0) FROM messages").fetchone()[0])

    def count(self, mailbox: str | None = None) -> int:
        """How many messages are stored (in one mailbox, if given)."""
        if mailbox is not None:
            return int(
                self.db.execute(
                    "SELECT count(*) FROM mailbox_messages WHERE mailbox = ?", (mailbox.lower(),)
                ).fetchone()[0]
            )
        return int(self.db.execute("SELECT count(*) FROM messages").fetchone()[0])

    def search(self, query: Query) -> list[StoredMessage]:
        """Messages matching ``query``, newest first unless asked otherwise."""
        where: list[str] = ["m.seq > ?"]
        args: list[Any] = [query.after_seq]
        join = ""
        if query.mailbox:
            join = " JOIN mailbox_messages b ON b.seq = m.seq"
            where.append("b.mailbox = ?")
            args.append(query.mailbox.lower())
        for column, value in (("m.sender", query.sender), ("m.subject", query.subject)):
            if value:
                where.append(f"instr(lower({column}), ?) > 0")
                args.append(value.lower())
        if query.user:
            where.append("lower(m.auth_user) = ?")
            args.append(query.user.lower())
        if query.since is not None:
            where.append("m.received_at >= ?")
            args.append(query.since)
        if query.until is not None:
            where.append("m.received_at <= ?")
            args.append(query.until)
        if query.header:
            where.append("instr(lower(m.headers), ?) > 0")
            args.append(query.header[1].lower())
        order = "DESC" if query.newest_first else "ASC"
        sql = (
            "SELECT m.seq, m.id, m.received_at, m.sender, m.recipients, m.auth_user, m.peer,"  # noqa: S608
            f" m.subject, m.message_id, m.size, m.headers FROM messages m{join}"
            f" WHERE {' AND '.join(where)} ORDER BY m.seq {order}"
        )
        found: list[StoredMessage] = []
        for row in self._rows(sql, args):
            if query.header and not _header_matches(row[10], *query.header):
                continue
            found.append(_stored(row))
            if len(found) >= query.limit:
                break
        return found

    def _rows(self, sql: str, args: list[Any]) -> Iterator[tuple[Any, ...]]:
        yield from self.db.execute(sql, args)

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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _header_matches(block: str, name: str, value: str) -> bool:
    _, pairs = parse_headers(block.encode("utf-8"))
    lname, lvalue = name.strip().lower(), value.lower()
    return any(k.lower() == lname and lvalue in v.lower() for k, v in pairs)


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
