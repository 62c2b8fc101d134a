"""The account store: one SQLAlchemy Core implementation for SQLite and PostgreSQL.

``open_store(url)`` returns a :class:`Store`. Writes go through ``store.begin()``,
one transaction each, and the audit record of a change is written in that same
transaction (``mailprov.store.audit.append``).

SQLite notes (see README, "Store"): the journal mode is the rollback journal
(``DELETE``), not WAL, because Postfix and Dovecot open the same file read-only
and WAL readers need write access to the ``-shm`` file. Write transactions
start with ``BEGIN IMMEDIATE`` so concurrent writers queue on the busy timeout
instead of failing on a lock upgrade.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailprov.errors import SchemaOutdated, StoreUnavailable
from mailprov.store.schema import SCHEMA_HEAD

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

SQLITE_BUSY_TIMEOUT_S = 60


@dataclass
class Store:
    """An open account store."""

    engine: Engine
    url: str
    #: A rehearsal (``--dry-run``): every write transaction is rolled back at its end, so a
    #: command runs all its checks and reports what it would change, and nothing is kept.
    rehearsal: bool = False
    #: The read transaction :meth:`reading` shares with the ``read()`` calls of its thread.
    _shared: threading.local = field(
        default_factory=threading.local, init=False, repr=False, compare=False
    )

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return str(self.engine.dialect.name)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, rolled back on any error."""
        from sqlalchemy.exc import OperationalError  # noqa: PLC0415  (lazy: a heavy import only this path needs)

        if getattr(self._shared, "conn", None) is not None:
            # On SQLite the write's commit would wait for this thread's own shared read lock.
            msg = "a write transaction inside Store.reading() (only reads may share one)"
            raise RuntimeError(msg)
        try:
            if self.rehearsal:
                with self.engine.connect() as conn:
                    transaction = conn.begin()
                    try:
                        yield conn
                    finally:
                        transaction.rollback()
                return
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise _unavailable(self.url, exc) from None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (on SQLite it takes no write lock); inside
        :meth:`reading`, that block's transaction."""
        from sqlalchemy.exc import OperationalError  # noqa: PLC0415  (lazy: a heavy import only this path needs)

        shared = getattr(self._shared, "conn", None)
        if shared is not None:
            yield shared
            return
        try:
            with self.engine.connect() as raw:
                conn = raw.execution_options(mailprov_readonly=True)
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise _unavailable(self.url, exc) from None

    @contextmanager
    def reading(self) -> Iterator[None]:
        """One read transaction for every :meth:`read` of this thread inside the block.

        A page showing the answers of several reads then pays for one connection checkout
        and one BEGIN (on SQLite, one check of the file for other writers' changes, which
        costs more than a small query) instead of one per read, and the reads see one
        snapshot. Only reads: a :meth:`begin` inside the block is a bug and raises
        RuntimeError (on SQLite its commit would wait for the block's own read lock).
        """
        if getattr(self._shared, "conn", None) is not None:
            yield
            return
        with self.read() as conn:
            self._shared.conn = conn
            try:
                yield
            finally:
                self._shared.conn = None

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Hold the store-wide lock ``name`` for the block; yields False (holding nothing)
        when another process holds it.

        On PostgreSQL a session advisory lock on a connection kept for the block: every
        host of a site sees it, and it ends with the process that held it, however that
        ends. SQLite serves one host, whose own processes this does not order: True.
        """
        from sqlalchemy import text  # noqa: PLC0415  (lazy: a heavy import only this path needs)
        from sqlalchemy.exc import OperationalError  # noqa: PLC0415  (lazy: as above)

        if self.dialect != "postgresql":
            yield True
            return
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        try:
            with self.engine.connect() as conn:
                held = bool(
                    conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
                )
                conn.commit()
                try:
                    yield held
                finally:
                    if held:
                        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                        conn.commit()
        except OperationalError as exc:
            raise _unavailable(self.url, exc) from None

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``, for messages and logs."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    try:
        return str(make_url(url).render_as_string(hide_password=True))
    except Exception:
        return url.split(":", 1)[0] + ":..."


def _unavailable(url: str, exc: BaseException) -> StoreUnavailable:
    detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
    return StoreUnavailable(f"cannot use the account store {redact_url(url)}: {detail}")


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL, or None for other backends."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def _sqlite_setup(engine: Engine) -> None:
    from sqlalchemy import event  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's begin event below issue BEGIN itself (pysqlite's own
        # transaction handling would defer it and break BEGIN IMMEDIATE).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
        # Rollback journal, not WAL: Postfix/Dovecot read this file read-only.
        mode = cur.execute("PRAGMA journal_mode").fetchone()[0]
        if mode.lower() != "delete":
            cur.execute("PRAGMA journal_mode = DELETE")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        readonly = conn.get_execution_options().get("mailprov_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def make_engine(url: str, *, create: bool = False) -> Engine:
    """An Engine for ``url``; for SQLite, refuses a missing file unless ``create``."""
    from sqlalchemy import create_engine  # noqa: PLC0415  (lazy: a heavy import only this path needs)
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    if not url:
        raise StoreUnavailable(
            "no account store is configured",
            hint="run 'mailprov init --dir DIR' and use its mailprov.toml, or pass --store URL",
        )
    try:
        backend = url.split(":", 1)[0].split("+", 1)[0]
        if backend not in ("sqlite", "postgresql"):
            raise StoreUnavailable(
                f"the store URL {redact_url(url)} names an unsupported backend '{backend}'",
                hint="use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB",
            )
        path = sqlite_path(url)
        if path is not None:
            if not create and not path.exists():
                raise StoreUnavailable(
                    f"the account store {path} does not exist",
                    hint="create it with 'mailprov init' or 'mailprov db upgrade'",
                )
            if create and not path.parent.is_dir():
                raise StoreUnavailable(f"cannot create the account store: no folder {path.parent}")
            engine = create_engine(
                url, hide_parameters=True, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}
            )
            _sqlite_setup(engine)
            return engine
        # hide_parameters: SQL errors must never carry values (hashes) into messages or logs.
        return create_engine(url, hide_parameters=True, connect_args={"connect_timeout": 10})
    except (ArgumentError, NoSuchModuleError, ValueError, ImportError) as exc:
        raise StoreUnavailable(
            f"the store URL {redact_url(url)} is not usable: {exc}",
            hint="use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB",
        ) from None


def current_revision(conn: Connection) -> str | None:
    """The Alembic revision the store is at, or None for an empty database."""
    from sqlalchemy import inspect, text  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    if not inspect(conn).has_table("alembic_version"):
        return None
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return str(row[0]) if row else None


def open_store(url: str, *, check_schema: bool = True) -> Store:
    """Open an existing store, checking it is reachable and its schema is current.

    Raises:
        StoreUnavailable: the URL is bad, the server or file cannot be reached.
        SchemaOutdated: the store needs ``mailprov db upgrade``.
    """
    from sqlalchemy.exc import DBAPIError  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    store = Store(make_engine(url), url)
    if check_schema:
        try:
            with store.read() as conn:
                revision = current_revision(conn)
        except DBAPIError as exc:
            raise _unavailable(url, exc) from None
        if revision != SCHEMA_HEAD:
            store.close()
            if revision is None:
                raise StoreUnavailable(
                    f"{redact_url(url)} is not a mailprov store (no schema)",
                    hint="create the schema with 'mailprov db upgrade', or fix store.url",
                )
            raise SchemaOutdated(
                f"the account store is at schema {revision}; this mailprov needs {SCHEMA_HEAD}"
            )
    return store
