"""A private PostgreSQL primary and a streaming replica, for the read-replica tests.

The setup the README's "Beyond one machine" documents, on loopback: ``initdb`` a
primary on 127.0.0.2, ``pg_basebackup -R -X stream`` a replica from it on 127.0.0.3
(same port, as on separate hosts), both as the ``postgres`` OS user (``initdb``
refuses root) in temporary folders; the system's PostgreSQL is not touched.
Every server is stopped with ``pg_ctl stop`` on its own data folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.conftest import free_port, require_or_skip

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PRIMARY_HOST = "127.0.0.2"
REPLICA_HOST = "127.0.0.3"
DATABASE = "mailprov"


def as_postgres(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL server tool as the ``postgres`` OS user; raise with its output on failure."""
    res = subprocess.run(
        ["runuser", "-u", "postgres", "--", *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if res.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {res.stdout}{res.stderr}")
    return res


@dataclass
class Server:
    """One PostgreSQL server: its data folder, address and port."""

    data: Path
    host: str
    port: int

    def url(self, database: str = DATABASE) -> str:
        """A SQLAlchemy URL for this server (trust auth for 127.0.0.0/8)."""
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", f"{self.data}.log", "-w", "start"
        )

    def stop(self) -> None:
        """Stop the server (fast: disconnect clients) and wait until it has exited."""
        if (self.data / "postmaster.pid").exists():
            as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def scalar(self, sql: str, database: str = DATABASE) -> object:
        """One value from one query (``None`` for a statement that returns no rows)."""
        engine = create_engine(self.url(database), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                result = conn.execute(text(sql))
                return result.scalar() if result.returns_rows else None
        finally:
            engine.dispose()


@dataclass
class Cluster:
    """A primary and one streaming replica of it."""

    root: Path
    primary: Server
    replica: Server
    settings: str = ""

    @classmethod
    def start(cls, port: int, *, replica: bool = True, settings: str = "") -> Cluster:
        """``initdb`` and start the primary, create the database, clone and start the replica
        (unless not ``replica``); ``settings``: more postgresql.conf lines for both."""
        root = Path(tempfile.mkdtemp(prefix="mp-pg-"))
        os.chmod(root, 0o755)
        shutil.chown(root, "postgres", "postgres")
        cluster = cls(
            root,
            Server(root / "primary", PRIMARY_HOST, port),
            Server(root / "replica", REPLICA_HOST, port),
        )
        cluster.settings = settings
        try:
            cluster._start_primary()
            if replica:
                cluster._start_replica()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _start_primary(self) -> None:
        p = self.primary
        as_postgres(
            str(PG_BIN / "initdb"), "-D", str(p.data), "-A", "trust", "-U", "postgres", "--no-sync"
        )
        with (p.data / "postgresql.conf").open("a") as f:
            f.write(_server_conf(p, self.root / "sock-primary") + self.settings)
        with (p.data / "pg_hba.conf").open("a") as f:
            # The replica connects for streaming; the tests and the mail servers for queries.
            f.write("host all all 127.0.0.0/8 trust\nhost replication all 127.0.0.0/8 trust\n")
        for sock in ("sock-primary", "sock-replica"):
            (self.root / sock).mkdir()
            shutil.chown(self.root / sock, "postgres", "postgres")
        p.start()
        p.scalar(f'CREATE DATABASE "{DATABASE}"', database="postgres")

    def _start_replica(self) -> None:
        r, p = self.replica, self.primary
        # -R writes standby.signal and primary_conninfo: the clone starts as a streaming standby.
        as_postgres(
            str(PG_BIN / "pg_basebackup"),
            *("-h", p.host, "-p", str(p.port), "-U", "postgres", "-D", str(r.data)),
            *("-R", "-X", "stream", "-c", "fast", "--no-sync"),
        )
        with (r.data / "postgresql.conf").open("a") as f:
            f.write(_server_conf(r, self.root / "sock-replica") + self.settings)
        r.start()

    def wait_replayed(self, timeout: float = 20.0) -> None:
        """Wait until the replica has replayed everything the primary has written so far."""
        lsn = self.primary.scalar("SELECT pg_current_wal_insert_lsn()")
        end = time.monotonic() + timeout
        while not self.replica.scalar(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"):
            if time.monotonic() > end:
                raise TimeoutError(f"replica did not replay up to {lsn}")
            time.sleep(0.05)

    def promote(self) -> None:
        """Make the replica a primary (``pg_ctl promote``) and wait until it takes writes."""
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.replica.data), "-w", "promote")

    def stop(self) -> None:
        """Stop both servers and remove their folders."""
        for server in (self.replica, self.primary):
            with contextlib.suppress(RuntimeError):
                server.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _server_conf(server: Server, sockets: Path) -> str:
    # Appended last, so these win over what initdb wrote or pg_basebackup copied.
    return (
        f"\nlisten_addresses = '{server.host}'\nport = {server.port}\n"
        f"unix_socket_directories = '{sockets}'\n"
        # Test servers: durability across a host crash does not matter here.
        "fsync = off\nfull_page_writes = off\n"
    )


@contextlib.contextmanager
def private_cluster() -> Iterator[Cluster]:
    """A private primary and streaming replica on a free port, stopped at the end; skipped
    (failed under CI) without PostgreSQL 15's server binaries. For one test module each:
    the tests stop the primary or pause the replica's replay."""
    if not (PG_BIN / "pg_basebackup").exists() or shutil.which("runuser") is None:
        require_or_skip(f"PostgreSQL server binaries not in {PG_BIN} (apt install postgresql-15)")
    cluster = Cluster.start(free_port())
    try:
        yield cluster
    finally:
        cluster.stop()
