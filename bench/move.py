"""``mailbox move`` of a mailbox of 10,000 messages vs a plain ``doveadm backup`` of it.

A site on three hosts (tests/integration/movesite.py: backends b1 and b2 and a frontend,
Dovecot + Postfix each, on one PostgreSQL store; the backends' doveadm servers on
127.0.0.3 and 127.0.0.4; ``mailbox move`` runs on the frontend's site). The mailbox's
messages (about 2 KiB each) are written straight into b1's Maildir (``new/``, owned by
the mail user) and indexed once by Dovecot, so both measurements start from an indexed
source. Each round:

  baseline  the move's own copy step alone: b2's doveadm server pulls the mailbox from b1
            (``doveadm -S b2 backup -R -u ADDR tcp:b1``) into an empty home on b2;
  move      ``mailprov mailbox move ADDR --to b2`` in a subprocess (CLI start-up, copy into
            an empty home, the switch in the store, the two-way full tail sync, the finish).

Between the two, and after the move, b2's copy is removed and the home set back to b1,
so each run copies everything. Reported: seconds and messages/s of each, and the ratio
move / baseline (the price of the switch and the tail on top of the copy).

Usage: .venv/bin/python bench/move.py [--messages 10000] [--rounds 2] [--pg URL]
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text

from tests.conftest import pg_base_url
from tests.integration.movesite import BACKENDS, Backends, start_backends
from tests.integration.stack import create_pg_database, drop_pg_database

ADDRESS = "big@example.test"
PW = "Bench-Mover-Pass#1"
BODY = "The quick brown fox jumps over the lazy dog. " * 40 + "\n"


def fill(backends: Backends, count: int) -> None:
    """``count`` messages written into b1's Maildir for ADDRESS, then indexed by Dovecot."""
    new = backends.maildir("b1", ADDRESS) / "Maildir" / "new"
    for sub in ("new", "cur", "tmp"):
        (new.parent / sub).mkdir(parents=True, exist_ok=True)
    stamp = int(time.time())
    for i in range(count):
        message = (
            f"From: sender{i % 50}@example.net\nTo: {ADDRESS}\nSubject: message {i}\n"
            f"Message-ID: <bench-{i}@move.test>\nDate: Mon, 30 Nov 2026 07:00:00 +0000\n\n"
            f"{BODY}"
        ).encode()
        (new / f"{stamp}.M{i}P1.bench,S={len(message)}").write_bytes(message)
    vmail = pwd.getpwnam("vmail")
    for root, dirs, files in os.walk(backends.maildir("b1", ADDRESS).parent):
        for name in [*dirs, *files]:
            os.chown(Path(root) / name, vmail.pw_uid, vmail.pw_gid)
    os.chown(backends.maildir("b1", ADDRESS).parent, vmail.pw_uid, vmail.pw_gid)
    backends.doveadm("b1", "index", "-u", ADDRESS, "INBOX")
    status = backends.doveadm("b1", "mailbox", "status", "-u", ADDRESS, "messages", "INBOX")
    assert status.split() == ["INBOX", f"messages={count}"], status


def reset(backends: Backends) -> None:
    """b2 holds no copy and the store names b1 as the home again."""
    shutil.rmtree(backends.maildir("b2", ADDRESS), ignore_errors=True)
    engine = create_engine(backends.store_url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE mailboxes SET backend = 'b1', moving_from = NULL WHERE address = :a"),
            {"a": ADDRESS},
        )
    engine.dispose()


def baseline(backends: Backends) -> float:
    """Seconds for the plain remote ``doveadm backup`` of the mailbox from b1 into b2."""
    port = _doveadm_port(backends)
    start = time.perf_counter()
    backends.doveadm(
        "b2",
        *("backup", "-R", "-S", f"{BACKENDS['b2']}:{port}", "-u", ADDRESS),
        f"tcp:{BACKENDS['b1']}:{port}",
    )
    return time.perf_counter() - start


def move(backends: Backends) -> float:
    """Seconds for ``mailprov mailbox move ADDRESS --to b2``."""
    start = time.perf_counter()
    res = backends.mailprov("mailbox", "move", ADDRESS, "--to", "b2", "--json")
    took = time.perf_counter() - start
    assert res.returncode == 0, res.stdout + res.stderr
    return took


def _doveadm_port(backends: Backends) -> int:
    conf = backends.stacks["b1"].config_file.read_text()
    return int(conf.split("doveadm_port = ", 1)[1].split()[0])


def main() -> None:
    """Fill the mailbox, time the rounds, print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pg", metavar="URL", default=pg_base_url())
    args = parser.parse_args()
    url = create_pg_database(args.pg)
    backends = start_backends(url)
    try:
        backends.stacks["b1"].add_mailbox(ADDRESS, PW)
        fill(backends, args.messages)
        times: dict[str, list[float]] = {"baseline": [], "move": []}
        for _ in range(args.rounds):
            reset(backends)
            times["baseline"].append(baseline(backends))
            reset(backends)
            times["move"].append(move(backends))
            moved = backends.doveadm("b2", "mailbox", "status", "-u", ADDRESS, "messages", "INBOX")
            assert moved.split() == ["INBOX", f"messages={args.messages}"], moved
            assert backends.home(ADDRESS) == ("b2", None)
        print(f"messages: {args.messages}, rounds: {args.rounds}")
        print(f"{'run':<9} {'median s':>9} {'messages/s':>11}  (each round)")
        medians = {}
        for kind, measured in times.items():
            medians[kind] = statistics.median(measured)
            each = ", ".join(f"{t:.2f}" for t in measured)
            print(
                f"{kind:<9} {medians[kind]:>9.2f} {args.messages / medians[kind]:>11.0f}  ({each})"
            )
        ratios = [m / b for b, m in zip(times["baseline"], times["move"], strict=True)]
        print(f"ratio move / baseline (median): {medians['move'] / medians['baseline']:.3f}")
        print(
            "ratio move / baseline per round (same minute, same load): "
            + ", ".join(f"{r:.3f}" for r in ratios)
            + f"; median {statistics.median(ratios):.3f}"
        )
    finally:
        backends.stop()
        drop_pg_database(args.pg, url)


if __name__ == "__main__":
    main()
