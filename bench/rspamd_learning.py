"""What learning from the owner's moves costs: IMAP MOVE into Junk (IMAPSieve pipes the
message to ``rspamc learn_spam`` before the MOVE answers) vs MOVE into an ordinary folder,
on the same rendered stack with rspamd, over one IMAPS connection, alternating.

The messages are distinct (rspamd learns a text once), 1-2 KiB each, delivered through
Postfix + rspamd first. Reported: the median MOVE time of each kind and their ratio, and
how many spam learns rspamd counted.

Usage: .venv/bin/python bench/rspamd_learning.py [--moves 100]
"""

from __future__ import annotations

import argparse
import imaplib
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.conftest import ARC_TOML, RSPAMD_PORTS, RSPAMD_TOML, start_redis
from tests.integration.knot import Knot
from tests.integration.stack import MailStack, start_stack

PW = "Bench-Password-1"
WORDS = [
    "offer",
    "bonus",
    "watches",
    "pharmacy",
    "limited",
    "discount",
    "shipping",
    "guaranteed",
    "exclusive",
]


def _learned(stack: MailStack) -> int:
    out = subprocess.run(
        ["rspamc", "--connect", f"127.0.0.1:{stack.ports['rspamd_controller']}", "stat"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.split("Messages learned: ", 1)[1].split()[0])


def _deliver(stack: MailStack, count: int) -> None:
    with smtplib.SMTP(stack.host, stack.ports["smtp"], local_hostname="mx.bench.test") as c:
        for i in range(count):
            body = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(120))
            c.sendmail(
                "load@bench.test",
                ["bob@example.test"],
                f"From: load@bench.test\r\nTo: bob@example.test\r\nSubject: m{i}\r\n\r\n"
                f"{body}\r\ncode {uuid.uuid4().hex}\r\n".encode(),
            )


def _moves(stack: MailStack, moves: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"Junk": [], "Archive": []}
    with imaplib.IMAP4_SSL(
        stack.host, stack.ports["imaps"], ssl_context=stack.tls_context()
    ) as imap:
        imap.login("bob@example.test", PW)
        imap.create("Archive")
        deadline = time.monotonic() + 120
        while int(imap.select("INBOX")[1][0]) < 2 * moves:
            if time.monotonic() > deadline:
                raise TimeoutError(stack.log()[-2000:])
            time.sleep(0.2)
        uids = imap.uid("SEARCH", "ALL")[1][0].split()
        for i, uid in enumerate(uids[: 2 * moves]):
            dest = "Junk" if i % 2 == 0 else "Archive"
            t0 = time.perf_counter()
            status, _ = imap.uid("MOVE", uid.decode(), dest)
            times[dest].append(time.perf_counter() - t0)
            assert status == "OK"
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=100, help="moves of each kind")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="mp-rsl-", dir="/tmp"))
    knot = Knot.start(base / "knot")
    redis, redis_port = start_redis(base)

    def prepare(stack: MailStack) -> None:
        for sub in ("rspamd-db", "rspamd-run"):
            (stack.root / sub).mkdir()
            shutil.chown(stack.root / sub, "_rspamd", "_rspamd")

    toml = RSPAMD_TOML.replace("{knot}", knot.address).replace("{redis}", str(redis_port))
    stack = start_stack(
        f"sqlite:///{base}/m.sqlite",
        name="rl",
        extra_toml=toml + ARC_TOML,
        prepare=prepare,
        extra_ports=RSPAMD_PORTS[:3],
    )
    try:
        stack.add_mailbox("bob@example.test", PW, "--quota", "0")
        _deliver(stack, 2 * args.moves)
        before = _learned(stack)
        times = _moves(stack, args.moves)
        learned = _learned(stack) - before
    finally:
        stack.stop()
        shutil.rmtree(stack.root, ignore_errors=True)
        redis.terminate()
        redis.wait()
        knot.stop()
        shutil.rmtree(base, ignore_errors=True)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(f"{args.moves} moves of each kind, alternating, one IMAPS connection")
    for name, ms in med.items():
        print(f"MOVE to {name:7} median {ms:6.1f} ms")
    print(f"ratio Junk (learns) / Archive: {med['Junk'] / med['Archive']:.1f}")
    print(f"rspamd learned {learned} of {args.moves} moved into Junk")
    return 0


if __name__ == "__main__":
    sys.exit(main())
