"""deploy plan time with 100k mailboxes in the store vs 1k (goal: ratio <= 1.2).

Rendering reads settings, not accounts, so its cost must not grow with the store.
Each run: plan() (render + diff against an applied target) plus validate() (the
servers' read-only checks, which run one indexed lookup per SQL map).

Usage: .venv/bin/python bench/deploy_plan.py [--small 1000] [--large 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from mailprov.render import Layout, render_bundle
from mailprov.rules.hashing import hash_password
from mailprov.services.deploy import plan, validate
from mailprov.settings import SiteConfig, load_settings
from mailprov.store import open_store
from mailprov.store.migrate import upgrade
from mailprov.store.schema import addresses, domains, mailboxes
from mailprov.system.run import SubprocessRunner
from mailprov.system.tls import self_signed


def make_store(path: Path, count: int) -> str:
    """A SQLite store with ``count`` mailboxes in one domain (one shared hash: fast to build)."""
    url = f"sqlite:///{path}"
    upgrade(url)
    store = open_store(url)
    digest = hash_password("bench-Password-1", "SHA512-CRYPT")
    now = int(time.time())
    with store.begin() as conn:
        domain_id = conn.execute(
            insert(domains).values(name="example.test", active=True, created_at=now)
        ).inserted_primary_key[0]
        for start in range(0, count, 5000):
            batch = range(start, min(count, start + 5000))
            conn.execute(
                insert(addresses),
                [
                    {
                        "address": f"u{i}@example.test",
                        "domain_id": domain_id,
                        "kind": "mailbox",
                        "created_at": now,
                    }
                    for i in batch
                ],
            )
            conn.execute(
                insert(mailboxes),
                [
                    {
                        "address": f"u{i}@example.test",
                        "domain_id": domain_id,
                        "local_part": f"u{i}",
                        "domain": "example.test",
                        "display_name": "",
                        "password_hash": digest,
                        "quota_bytes": 0,
                        "active": True,
                        "must_change": False,
                        "password_changed_at": now,
                        "temp_password_expires_at": None,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in batch
                ],
            )
    store.close()
    return url


def site(root: Path, url: str, tls: tuple[str, str]) -> SiteConfig:
    return load_settings(
        env={
            "MAILPROV_CONFIG": "",
            "MAILPROV_STORE_URL": url,
            "MAILPROV_TLS_CERT_FILE": tls[0],
            "MAILPROV_TLS_KEY_FILE": tls[1],
            "MAILPROV_POSTFIX_QUEUE_DIRECTORY": str(root / "spool"),
        }
    )


def prepare(config: SiteConfig, target: Path) -> None:
    """Install the rendered files so that plan() compares against an up-to-date target."""
    for f in render_bundle(config, Layout.for_target(config, target)):
        f.path.parent.mkdir(parents=True, exist_ok=True)
        f.path.write_text(f.content)


def once(config: SiteConfig, target: Path) -> float:
    """Seconds of one plan() + validate()."""
    t0 = time.perf_counter()
    planned = plan(config, target=target)
    validate(config, SubprocessRunner(), full=False)
    elapsed = time.perf_counter() - t0
    assert not planned.changed
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        made = self_signed(
            "mail.example.test", root / "tls", ips=["127.0.0.1"], now=int(time.time())
        )
        tls = (str(made.cert_file), str(made.key_file))
        (root / "spool").mkdir()
        sites = {}
        for count in (args.small, args.large):
            t0 = time.perf_counter()
            url = make_store(root / f"s{count}.sqlite", count)
            print(f"store with {count:>7} mailboxes built in {time.perf_counter() - t0:.1f} s")
            sites[count] = (site(root, url, tls), root / f"t{count}")
            prepare(*sites[count])
        runs: dict[int, list[float]] = {args.small: [], args.large: []}
        for _ in range(args.repeat):  # interleaved, so machine noise hits both alike
            for count in (args.small, args.large):
                runs[count].append(once(*sites[count]))
        results = {count: statistics.median(times) for count, times in runs.items()}
        for count, median in results.items():
            print(
                f"deploy plan (render + diff + checks), {count:>7} mailboxes: "
                f"{median * 1000:.0f} ms (median of {args.repeat})"
            )
        ratio = results[args.large] / results[args.small]
        print(
            f"ratio {args.large}/{args.small}: {ratio:.2f} (goal <= 1.2) -> "
            f"{'OK' if ratio <= 1.2 else 'MISSED'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
