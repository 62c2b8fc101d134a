"""The SQLite journal-mode decision: readers without write access (as Postfix and Dovecot run) can read."""

from __future__ import annotations

import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailprov.rules.hashing import hash_password
from mailprov.services import accounts
from mailprov.services.accounts import Actor, NewPassword
from mailprov.store import open_store
from mailprov.store.migrate import upgrade
from tests.conftest import require_or_skip


def read_as_nobody(db: Path, address: str) -> subprocess.CompletedProcess[str]:
    """Look up a mailbox the way a Postfix map does: another process, without write access."""
    sqlite = shutil.which("sqlite3")
    if sqlite is None:
        pytest.fail("the sqlite3 command is missing (scripts/install-test-deps.sh installs it)")
    query = f"SELECT address FROM mailboxes WHERE address = '{address}' AND active;"
    return subprocess.run(
        [sqlite, "-bail", str(db), query],  # read-write open, as Postfix's dict_sqlite does
        user="nobody",
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


@pytest.fixture(name="db")
def fixture_db() -> Iterator[Path]:
    """A store in a root-owned 0755 folder, as mailprov writes it in production."""
    if os.geteuid() != 0:
        require_or_skip("needs root to run a reader as another user")
    pwd.getpwnam("nobody")
    folder = Path(tempfile.mkdtemp(prefix="mailprov-ro-"))
    os.chmod(folder, 0o755)
    path = folder / "mailprov.sqlite"
    upgrade(f"sqlite:///{path}")
    os.chmod(path, 0o644)
    yield path
    shutil.rmtree(folder)


def test_store_uses_the_rollback_journal(db: Path) -> None:
    """Opening the store through mailprov keeps journal_mode = delete (never WAL)."""
    store = open_store(f"sqlite:///{db}")
    actor = Actor("t", 0)
    accounts.add_domain(store, "example.test", actor=actor)
    store.close()
    assert "delete" == sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0]
    assert not Path(f"{db}-wal").exists()


def test_unprivileged_reader_sees_new_rows_at_once(db: Path) -> None:
    """A mailbox added by mailprov is visible at once to a read-only reader running as nobody."""
    store = open_store(f"sqlite:///{db}")
    actor = Actor("t", 0)
    accounts.add_domain(store, "example.test", actor=actor)
    accounts.add_mailbox(
        store,
        "live@example.test",
        NewPassword(hash_password("Live-Pass-2026", "SHA512-CRYPT"), None),
        actor=actor,
    )
    result = read_as_nobody(db, "live@example.test")
    store.close()
    assert 0 == result.returncode, result.stderr
    assert "live@example.test" == result.stdout.strip()


def test_wal_would_break_such_readers(db: Path) -> None:
    """The reason for the decision: in WAL mode the same reader fails (it must create the -shm file)."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    result = read_as_nobody(db, "live@example.test")
    assert 0 != result.returncode
    assert "readonly" in result.stderr or "unable to open" in result.stderr
