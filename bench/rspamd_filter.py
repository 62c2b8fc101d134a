"""Landed msg/s through Postfix + rspamd + Dovecot vs the same rendered stack without rspamd.

Two sites rendered by ``deploy apply`` from the same settings but ``[rspamd] enabled``,
run one at a time, alternating, under the same load: Postfix's smtp-source, 10 sessions,
1 KiB messages into port 25 from a sender domain whose SPF and DMARC a private knot
serves (rspamd resolves through it only; a private Redis holds its state). A message
counts as landed when it is in the recipient's Maildir.

Usage: .venv/bin/python bench/rspamd_filter.py [--messages 1000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.conftest import RSPAMD_PORTS, RSPAMD_TOML, start_redis
from tests.integration.knot import Knot
from tests.integration.stack import MailStack, render_site

PW = "Bench-Password-1"
SENDER = "bench.test"
ZONE = f"""$ORIGIN {SENDER}.
$TTL 60
@ IN SOA ns admin 1 60 60 600 60
@ IN NS ns
ns IN A 127.0.0.1
@ IN MX 10 mx
mx IN A 127.0.0.1
@ IN TXT "v=spf1 ip4:127.0.0.1 -all"
_dmarc IN TXT "v=DMARC1; p=none"
"""


def count(maildir: Path) -> int:
    return sum(len(list((maildir / d).glob("*"))) for d in ("new", "cur") if (maildir / d).is_dir())


def run_load(stack: MailStack, messages: int) -> float:
    """Landed msg/s for ``messages`` sent by smtp-source."""
    maildir = stack.root / "mail" / "example.test" / "bob" / "Maildir"
    before = count(maildir)
    t0 = time.perf_counter()
    subprocess.run(
        [
            "smtp-source",
            "-l",
            "1024",
            "-m",
            str(messages),
            "-s",
            "10",
            "-M",
            f"mx.{SENDER}",
            "-f",
            f"load@{SENDER}",
            "-t",
            "bob@example.test",
            f"{stack.host}:{stack.ports['smtp']}",
        ],
        check=True,
        capture_output=True,
    )
    while count(maildir) - before < messages:
        if time.perf_counter() - t0 > 600:
            raise TimeoutError(f"{count(maildir) - before} of {messages} landed\n{stack.log()}")
        time.sleep(0.02)
    return messages / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="mp-rsb-", dir="/tmp"))
    base.chmod(0o755)
    knot = Knot.start(base / "knot")
    knot.load_zone(SENDER, ZONE)
    redis, redis_port = start_redis(base)
    stacks: dict[str, MailStack] = {}
    try:
        for name, toml in (("rspamd", RSPAMD_TOML), ("plain", "")):
            root = base / name
            root.mkdir()

            def prepare(stack: MailStack) -> None:
                for sub in ("rspamd-db", "rspamd-run"):
                    (stack.root / sub).mkdir()
                    shutil.chown(stack.root / sub, "_rspamd", "_rspamd")

            extra = toml.replace("{knot}", knot.address).replace("{redis}", str(redis_port))
            stacks[name] = render_site(
                root,
                f"sqlite:///{root}/m.sqlite",
                name=name[:2],
                extra_toml=extra,
                prepare=prepare,
                extra_ports=RSPAMD_PORTS[:3] if toml else (),
            )
            stacks[name].add_mailbox("bob@example.test", PW, "--quota", "0")
        results: dict[str, list[float]] = {n: [] for n in stacks}
        for _ in range(args.rounds):
            for name, stack in stacks.items():
                stack.start(greet=("smtp",))
                try:
                    results[name].append(run_load(stack, args.messages))
                finally:
                    stack.stop()
    finally:
        redis.terminate()
        redis.wait()
        knot.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(f"{args.messages} messages x {args.rounds} rounds, smtp-source 10 sessions, 1 KiB")
    med = {n: statistics.median(r) for n, r in results.items()}
    for name, runs in results.items():
        print(
            f"{name:7} landed {med[name]:6.0f} msg/s (runs: {', '.join(f'{r:.0f}' for r in runs)})"
        )
    print(f"ratio with/without rspamd (landed msg/s): {med['rspamd'] / med['plain']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
