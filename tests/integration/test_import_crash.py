"""Bulk import never loses a generated password: full disks, SIGKILL anywhere, orphan workers.

The kill tests run the real ``python -m mailprov ... mailbox import`` and kill it
at every step through the one test hook (``MAILPROV_TEST_KILL_AT``, see
``mailprov.cli.mailbox.KILL_AT_ENV``) and after random delays. After each kill
the store holds either none of the file's rows, and a re-run succeeds, or all
of them, and the passwords file is complete: every password verifies against
its stored hash.
"""

from __future__ import annotations

import csv
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailprov.cli.mailbox import KILL_AT_ENV
from mailprov.rules.hashing import hash_password, verify_password
from mailprov.services.bulk import STEPS
from mailprov.store import open_store
from mailprov.store.schema import mailboxes
from mailprov.system.staged import partial_path, stage_secret
from tests.integration.test_cli import snapshot
from tests.integration.test_import import write_csv

HASH = hash_password("Wonder-Land-1865", "SHA512-CRYPT")
#: Where each step's kill leaves the passwords file, as a re-run finds it.
LEFT_BY_STEP = {
    "validated": "nothing",
    "staged": "partial",
    "hashing": "partial",
    "hashed": "partial",
    "published": "published",
    "inserted": "published",
    "committed": "committed",
    "finished": "committed",
}


def import_csv(folder: Path, prefix: str, generated: int, given: int = 10) -> Path:
    """A CSV of ``generated`` rows to generate passwords for and ``given`` rows with a hash."""
    rows = [[f"{prefix}{i}@example.test", "", "", ""] for i in range(generated)]
    rows += [[f"{prefix}h{i}@example.test", "", "", HASH] for i in range(given)]
    return write_csv(folder / f"{prefix}.csv", rows)


def stored(url: str, prefix: str) -> dict[str, str]:
    """Address -> password hash of the mailboxes whose address starts with ``prefix``."""
    from sqlalchemy import select

    store = open_store(url)
    try:
        with store.read() as conn:
            query = select(mailboxes.c.address, mailboxes.c.password_hash).where(
                mailboxes.c.address.like(f"{prefix}%")
            )
            return dict(conn.execute(query).all())
    finally:
        store.close()


def read_passwords(path: Path) -> dict[str, str]:
    """The address -> password rows of a passwords file (header checked)."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert ["address", "password"] == rows[0]
    return dict(rows[1:])


def assert_complete(path: Path, hashes: dict[str, str], prefix: str, generated: int) -> None:
    """The file lists every generated address once and each password verifies."""
    found = read_passwords(path)
    assert {f"{prefix}{i}@example.test" for i in range(generated)} == set(found)
    assert all(verify_password(p, hashes[a]) for a, p in found.items())


def spawn(run: Any, marker: str, *args: str, kill_at: str | None = None) -> subprocess.Popen[str]:
    """The real CLI in a child process (carrying ``marker`` in its environment).

    Its output goes to files, not pipes: orphaned workers would hold a pipe open.
    """
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MAILPROV_")}
    env = {
        **inherited,
        **run.env,
        "MAILPROV_CONFIG": "",
        "XDG_STATE_HOME": str(run.state_dir),
        "MAILPROV_TEST_RUN": marker,
    }
    env.pop(KILL_AT_ENV, None)
    if kill_at is not None:
        env[KILL_AT_ENV] = kill_at
    argv = [sys.executable, "-m", "mailprov", "--store", run.store_url, "--json", *args]
    log = Path(run.state_dir).parent / f"{marker}.log"
    with log.open("w") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)


def output_of(run: Any, marker: str) -> str:
    """What a spawned CLI printed."""
    return (Path(run.state_dir).parent / f"{marker}.log").read_text()


def marked_processes(marker: str) -> set[int]:
    """PIDs of live processes whose environment carries ``marker`` (zombies excluded)."""
    needle = f"MAILPROV_TEST_RUN={marker}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0") and not is_zombie(entry):
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def is_zombie(proc: Path) -> bool:
    """True for a process that has ended but was not reaped yet."""
    stat_line = (proc / "stat").read_text()
    return stat_line.rsplit(")", 1)[1].split()[0] == "Z"


def children_of(pid: int) -> set[int]:
    """PIDs of the children of ``pid``'s threads (/proc/PID/task/*/children)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` that still exist and are not zombies."""
    left = set()
    for pid in pids:
        proc = Path(f"/proc/{pid}")
        try:
            if not is_zombie(proc):
                left.add(pid)
        except OSError:
            continue
    return left


class TestFullFileSystem:
    """--passwords-out on a full file system."""

    @pytest.fixture(name="full_dir")
    def fixture_full_dir(self, tmp_path: Path) -> Iterator[Path]:
        """A 64 KiB tmpfs, filled up."""
        folder = tmp_path / "full"
        folder.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], check=True)
        try:
            fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while os.write(fd, b"\0" * 4096):
                    pass
            except OSError:
                pass
            finally:
                os.close(fd)
            yield folder
        finally:
            subprocess.run(["umount", str(folder)], check=True)

    def test_nothing_committed_and_no_file_left(
        self, run: Any, tmp_path: Path, full_dir: Path
    ) -> None:
        """ENOSPC writing the passwords: its own error naming the file, no row, no file left."""
        src = import_csv(tmp_path, "full", generated=40)
        out = full_dir / "passwords.csv"
        before = snapshot(run.store_url)
        status, doc = run.json("mailbox", "import", str(src), "--passwords-out", str(out))
        error = doc["error"]
        assert (90, "passwords-not-written") == (status, error["code"])
        assert str(out) in error["message"] and "No space left" in error["message"]
        assert "nothing was imported" in error["message"] and "free space" in error["hint"]
        assert before == snapshot(run.store_url)
        assert {} == stored(run.store_url, "full")
        assert ["filler"] == sorted(os.listdir(full_dir))

    def test_rerun_after_freeing_space_imports(
        self, run: Any, tmp_path: Path, full_dir: Path
    ) -> None:
        """Once space is freed, the same command imports and the passwords verify."""
        src = import_csv(tmp_path, "free", generated=6)
        out = full_dir / "passwords.csv"
        argv = ("mailbox", "import", str(src), "--passwords-out", str(out))
        assert 90 == run(*argv).exit_code
        (full_dir / "filler").unlink()
        status, doc = run.json(*argv)
        assert (0, 16, []) == (status, doc["count"], doc["removed"])
        assert_complete(out, stored(run.store_url, "free"), "free", 6)


class TestLeftovers:
    """What a re-run does with what an earlier run left at --passwords-out."""

    def test_file_held_by_a_live_import_is_refused(self, run: Any, tmp_path: Path) -> None:
        """A passwords file whose writer is still running is refused, and left alone."""
        src = import_csv(tmp_path, "busy", generated=2)
        out = tmp_path / "pw.csv"
        held = stage_secret(out, "address,password\n")
        try:
            result = run("mailbox", "import", str(src), "--passwords-out", str(out))
            assert 29 == result.exit_code and "still running" in result.stderr
            assert partial_path(out).exists()
        finally:
            held.abandon()
        assert {} == stored(run.store_url, "busy")

    def test_empty_file_says_what_to_do(self, run: Any, tmp_path: Path) -> None:
        """An empty file (as older versions left) is refused with 'remove it and run again'."""
        src = import_csv(tmp_path, "empty", generated=2)
        out = tmp_path / "pw.csv"
        out.touch()
        result = run("mailbox", "import", str(src), "--passwords-out", str(out))
        assert 29 == result.exit_code
        assert "holds no passwords" in result.stderr and f"remove {out}" in result.stderr

    def test_failure_after_publishing_removes_the_file(self, store: Any, tmp_path: Path) -> None:
        """A failure between publishing the file and the commit leaves no file and no row."""
        from mailprov.services.accounts import Actor, add_domain
        from mailprov.services.bulk import import_mailboxes
        from mailprov.settings import SiteConfig

        actor = Actor("tester", int(time.time()))
        add_domain(store, "example.test", actor=actor)
        settings = SiteConfig(passwords=type(SiteConfig().passwords)(scheme="SHA512-CRYPT"))
        for step in ("published", "inserted"):
            out = tmp_path / f"{step}-pw.csv"

            def fail(at: str, step: str = step) -> None:
                if at == step:
                    raise RuntimeError(at)

            with pytest.raises(RuntimeError, match=step):
                import_mailboxes(
                    store,
                    settings,
                    import_csv(tmp_path, step, generated=3),
                    actor=actor,
                    passwords_out=out,
                    checkpoint=fail,
                )
            assert (False, False) == (out.exists(), partial_path(out).exists())
            assert {} == stored(store.url, step)


def check_after_kill(
    run: Any, tmp_path: Path, prefix: str, generated: int
) -> tuple[str, list[str]]:
    """Assert the all-or-nothing outcome after a kill; return the state and what a re-run removed."""
    src = tmp_path / f"{prefix}.csv"
    out = tmp_path / f"{prefix}-pw.csv"
    hashes = stored(run.store_url, prefix)
    argv = ("mailbox", "import", str(src), "--passwords-out", str(out))
    if not hashes:
        status, doc = run.json(*argv)
        assert (0, generated + 10) == (status, doc.get("count")), doc
        assert not partial_path(out).exists()
        assert_complete(out, stored(run.store_url, prefix), prefix, generated)
        return "none-committed", doc["removed"]
    assert generated + 10 == len(hashes)
    assert_complete(out, hashes, prefix, generated)
    status, doc = run.json(*argv)
    assert (29, "file-exists") == (status, doc["error"]["code"])
    assert "an import that completed" in doc["error"]["message"]
    assert f"all {generated} mailbox(es)" in doc["error"]["message"]
    assert not partial_path(out).exists()
    return "all-committed", []


class TestKill:
    """SIGKILL of a real import process at each step, on both backends."""

    def test_kill_at_every_step(self, run: Any, tmp_path: Path) -> None:
        """Killed at each step: no row and a clean re-run, or all rows and a complete file."""
        procs = {}
        for step in STEPS:  # all at once: start-up dominates, and writers queue in the store
            prefix = f"k{STEPS.index(step)}"
            src = import_csv(tmp_path, prefix, generated=4)
            out = tmp_path / f"{prefix}-pw.csv"
            argv = ("mailbox", "import", str(src), "--passwords-out", str(out))
            procs[step] = (prefix, out, spawn(run, prefix, *argv, kill_at=step))
        states = {}
        for step, (prefix, _out, proc) in procs.items():
            assert -signal.SIGKILL == proc.wait(timeout=60), (step, output_of(run, prefix))
        for step, (prefix, out, _proc) in procs.items():
            states[step], removed = check_after_kill(run, tmp_path, prefix, 4)
            expected_removed = {
                "nothing": [],
                "partial": [str(partial_path(out))],
                "published": [str(out)],
                "committed": [],
            }[LEFT_BY_STEP[step]]
            assert expected_removed == removed, step
        assert {
            s: ("all-committed" if LEFT_BY_STEP[s] == "committed" else "none-committed")
            for s in STEPS
        } == states


class TestKillSqlite:
    """SIGKILL of a real import process: random moments, and the hashing pool (SQLite only:
    the backend adds nothing the per-step test does not cover, and each run costs a start-up).
    """

    @pytest.fixture(name="store_url")
    def fixture_store_url(self, tmp_path: Path) -> str:
        """A SQLite store only."""
        return f"sqlite:///{tmp_path / 'mailprov.sqlite'}"

    def test_kill_after_random_delays(self, run: Any, tmp_path: Path) -> None:
        """Killed from outside after random delays: the same all-or-nothing outcome."""
        rng = random.Random(secrets.randbits(32))
        started = time.monotonic()
        runs = []
        for n in range(4):
            prefix = f"r{n}"
            src = import_csv(tmp_path, prefix, generated=6)
            out = tmp_path / f"{prefix}-pw.csv"
            argv = ("mailbox", "import", str(src), "--passwords-out", str(out))
            runs.append((prefix, rng.uniform(0.5, 5.0), spawn(run, prefix, *argv)))
        for _prefix, delay, proc in sorted(runs, key=lambda r: r[1]):
            try:
                proc.wait(timeout=max(0.0, started + delay - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        seen = Counter(check_after_kill(run, tmp_path, p, 6)[0] for p, _, _ in runs)
        print(f"random kills: {sorted(round(d, 2) for _, d, _ in runs)} -> {dict(seen)}")
        assert 4 == sum(seen.values())

    def test_pool_workers_end_with_their_parent(self, run: Any, tmp_path: Path) -> None:
        """After SIGKILL of an import mid-hashing with --workers 2, no worker process remains."""
        # Chunks of 32 and 1: the second is hashed first, then the hook kills the import
        # while a worker still hashes the first.
        src = import_csv(tmp_path, "pool", generated=33, given=0)
        out = tmp_path / "pool-pw.csv"
        marker = secrets.token_hex(8)
        argv = ("mailbox", "import", str(src), "--passwords-out", str(out))
        proc = spawn(run, marker, *argv, "--workers", "2", kill_at="hashing")
        workers: set[int] = set()
        try:
            while proc.poll() is None:
                workers |= children_of(proc.pid)
                time.sleep(0.01)
            assert -signal.SIGKILL == proc.returncode, output_of(run, marker)
            assert 2 == len(workers), "the import never started its two workers"
            deadline = time.monotonic() + 2
            while (alive(workers) or marked_processes(marker)) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert (set(), set()) == (alive(workers), marked_processes(marker))
            assert {} == stored(run.store_url, "pool")
        finally:
            for pid in alive(workers) | marked_processes(marker):  # a failed run cleans up
                os.kill(pid, signal.SIGKILL)
