"""Configuration-management benchmarks: apply and export, against baselines run in the same run.

    python bench/apply.py [--count 10000] [--export-count 100000] [--rounds 3]

1. ``mailprov apply --check`` and ``mailprov apply`` of a state of N mailboxes (hashes given,
   one domain, on an empty SQLite store) vs ``mailprov mailbox import`` of the same N from
   CSV (hashes given), each the whole CLI process: goal <= 1.5 each
2. a no-op ``apply`` of that state (the store already is what it declares): goal <= 2 s
3. ``mailprov export`` (TOML and JSON, with hashes) of a store of M mailboxes: reported,
   with time per 1k mailboxes

Runs alternate (import, apply --check, apply, no-op apply) so load spikes hit all alike;
the figure of each is the median of ``--rounds``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mailprov.rules.hashing import hash_password
from mailprov.store.migrate import upgrade

REPO = Path(__file__).resolve().parents[1]


def cli(store: Path, *args: str, stdout: int | None = subprocess.DEVNULL) -> float:
    """Seconds one ``mailprov`` process takes (it must succeed)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "mailprov", "--store", f"sqlite:///{store}", *args]
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=stdout, stderr=subprocess.PIPE, check=False)
    took = time.perf_counter() - start
    if done.returncode not in (0, 2):
        sys.exit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return took


def write_inputs(folder: Path, count: int, digest: str) -> tuple[Path, Path]:
    """The same N mailboxes as an import CSV and as a state file."""
    csv = folder / "users.csv"
    state = folder / "state.toml"
    rows = ["address,name,quota,password-hash"]
    lines = ['version = 1\n\n[domains."example.test"]\n']
    for i in range(count):
        rows.append(f"user{i}@example.test,User {i},1G,{digest}")
        lines.append(
            f'\n[mailboxes."user{i}@example.test"]\nname = "User {i}"\nquota = "1G"\n'
            f'password_hash = "{digest}"\n'
        )
    csv.write_text("\n".join(rows) + "\n")
    state.write_text("".join(lines))
    return csv, state


def empty_store(template: Path, folder: Path, name: str) -> Path:
    """A copy of the template (schema and example.test, nothing else)."""
    path = folder / name
    shutil.copyfile(template, path)
    return path


def bench_apply(folder: Path, count: int, rounds: int) -> None:
    """Import vs apply --check vs apply, and the no-op apply."""
    digest = hash_password("Bench-Pass-2026!", "SHA512-CRYPT")
    csv, state = write_inputs(folder, count, digest)
    template = folder / "template.sqlite"
    upgrade(f"sqlite:///{template}")
    cli(template, "domain", "add", "example.test")
    times: dict[str, list[float]] = {"import": [], "check": [], "apply": [], "noop": []}
    for n in range(rounds):
        store = empty_store(template, folder, f"import-{n}.sqlite")
        times["import"].append(cli(store, "mailbox", "import", str(csv)))
        store = empty_store(template, folder, f"apply-{n}.sqlite")
        times["check"].append(cli(store, "apply", "--check", str(state)))
        times["apply"].append(cli(store, "apply", str(state)))
        times["noop"].append(cli(store, "apply", str(state)))
        print(
            f"round {n + 1}: import {times['import'][-1]:.2f} s, apply --check "
            f"{times['check'][-1]:.2f} s, apply {times['apply'][-1]:.2f} s, "
            f"no-op apply {times['noop'][-1]:.2f} s"
        )
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{count} mailboxes, hashes given, median of {rounds}:")
    print(f"mailbox import (baseline)  {med['import']:.2f} s")
    for key, label in (("check", "apply --check"), ("apply", "apply")):
        ratio = med[key] / med["import"]
        verdict = "OK" if ratio <= 1.5 else "MISSED"
        print(f"{label:25}  {med[key]:.2f} s  ratio {ratio:.2f} (goal <= 1.5) -> {verdict}")
    verdict = "OK" if med["noop"] <= 2 else "MISSED"
    print(f"{'no-op apply':25}  {med['noop']:.2f} s  (goal <= 2 s) -> {verdict}")


def bench_export(folder: Path, count: int) -> None:
    """Export of a store of ``count`` mailboxes, TOML and JSON."""
    digest = hash_password("Bench-Pass-2026!", "SHA512-CRYPT")
    csv, _ = write_inputs(folder, count, digest)
    store = folder / "export.sqlite"
    upgrade(f"sqlite:///{store}")
    cli(store, "domain", "add", "example.test")
    built = cli(store, "mailbox", "import", str(csv))
    print(f"\nstore of {count} mailboxes imported in {built:.1f} s")
    for fmt in ("toml", "json"):
        took = cli(store, "export", "--with-hashes", "--format", fmt)
        print(
            f"export --format {fmt} of {count}: {took:.2f} s "
            f"({took / count * 1000 * 1000:.1f} ms per 1k mailboxes)"
        )


def main() -> None:
    """Run the benchmarks named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--export-count", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["apply", "export"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailprov-bench-apply-") as tmp:
        folder = Path(tmp)
        if args.only in (None, "apply"):
            bench_apply(folder, args.count, args.rounds)
        if args.only in (None, "export"):
            bench_export(folder, args.export_count)


if __name__ == "__main__":
    main()
