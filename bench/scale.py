"""Store commands as a script runs them, with 100k mailboxes vs 1k (goal: ratio <= 1.2 where
the output does not grow), and the time per 1,000 rows where it does.

Each measurement runs the real CLI in a fresh process (median of --repeat runs), so
it includes start-up, settings, the store and the output, as a configuration-
management script sees it. Both stores are SQLite files built with one shared hash.

Usage: .venv/bin/python bench/scale.py [--small 1000] [--large 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy_plan import make_store

COMMANDS: list[tuple[str, list[str], bool]] = [
    # (label, argv after 'mailprov --store URL', output grows with the store?)
    ("mailbox show", ["mailbox", "show", "u500@example.test", "--json"], False),
    ("alias add (new each run)", ["alias", "add", "a{n}@example.test", "u1@example.test"], False),
    ("domain list", ["domain", "list", "--json"], False),
    ("mailbox list --limit 100", ["mailbox", "list", "--limit", "100", "--json"], False),
    ("mailbox list (all)", ["mailbox", "list", "--json"], True),
]


def run(url: str, argv: list[str], repeat: int) -> float:
    """Median wall time (s) of ``mailprov --store URL ARGV`` over ``repeat`` fresh processes."""
    times = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPROV_")}
    env["MAILPROV_CONFIG"] = ""
    for n in range(repeat):
        args = [a.replace("{n}", str(n)) for a in argv]
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "mailprov", "--store", url, *args],
            capture_output=True,
            env=env,
            check=False,
        )
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{args} failed: {done.stderr.decode()[-500:]}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = make_store(Path(tmp) / "small.sqlite", args.small)
        large = make_store(Path(tmp) / "large.sqlite", args.large)
        print(f"{'command':32} {args.small:>9} {args.large:>9}  ratio / per 1k rows")
        for label, argv, grows in COMMANDS:
            a = run(small, argv, args.repeat)
            b = run(large, argv, args.repeat)
            if grows:
                per_k = (b - a) / ((args.large - args.small) / 1000) * 1000
                print(f"{label:32} {a * 1000:7.0f}ms {b * 1000:7.0f}ms  {per_k:.1f} ms per 1k rows")
            else:
                goal = "ok" if b / a <= 1.2 else "MISSED (goal <= 1.2)"
                print(f"{label:32} {a * 1000:7.0f}ms {b * 1000:7.0f}ms  {b / a:.2f}  {goal}")
        start = time.perf_counter()
        for _ in range(args.repeat):
            subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare = (time.perf_counter() - start) / args.repeat
        cold = run(small, ["domain", "list", "--json"], args.repeat)
        print(
            f"cold start: 'domain list' {cold * 1000:.0f} ms vs python -c pass "
            f"{bare * 1000:.0f} ms -> {cold / bare:.1f}x (goal <= 15)"
        )


if __name__ == "__main__":
    main()
