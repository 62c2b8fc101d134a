"""A site on several hosts vs one: the frontend's IMAP proxy, and mail landed per second.

Four rendered Postfix + Dovecot instances, all on the same ports: backends b1 (127.0.0.3)
and b2 (127.0.0.4), a frontend (127.0.0.2), and one host of role ``all`` (127.0.0.5) as
the baseline (the addresses are added to ``lo`` if missing). Their store is a private
PostgreSQL server started for the run (tests/integration/pgcluster.py) with
max_connections = 500: every Postfix process opens its own connection per map, and a
shared server's 100 do not survive this load.

1. IMAP login + SELECT INBOX (plain IMAP, a new connection each, then LOGOUT) through the
   frontend's proxy vs directly on the backend, same mailbox, interleaved; once with an
   ARGON2ID password (the site default) and once with SHA512-CRYPT (cheap, so the proxy's
   own cost shows). Goal: proxy / direct <= 1.5.
2. Mail landed per second: the same smtp-source load (two streams at once, one per
   recipient, whose homes are b1 and b2) to the frontend's port 25, and to the ``all``
   host's; timed until every message is a file in its Maildir. Rounds alternate.
   Goal: frontend / all >= 1.0.

Usage: .venv/bin/python bench/cluster.py [--logins 60] [--messages 1000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import imaplib
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailprov.mailstack import stack_ports
from tests.conftest import free_port
from tests.integration.pgcluster import Cluster
from tests.integration.stack import MailStack, loopback_addresses, start_stack

PW = "Bench-Cluster-42!"
HOSTS = {"b1": "127.0.0.3", "b2": "127.0.0.4", "fe": "127.0.0.2", "one": "127.0.0.5"}
CLUSTER = """
[cluster]
role = "{role}"
name = "{name}"
backends = ["b1=127.0.0.3", "b2=127.0.0.4"]
frontends = ["127.0.0.2/32"]
source_address = "127.0.0.2"
"""


def login_select(stack: MailStack, user: str) -> float:
    """Seconds from connect to a completed SELECT INBOX (then LOGOUT)."""
    start = time.perf_counter()
    client = imaplib.IMAP4(stack.host, stack.ports["imap"], timeout=30)
    client.login(user, PW)
    typ, _ = client.select("INBOX", readonly=True)
    took = time.perf_counter() - start
    assert typ == "OK"
    client.logout()
    return took


def landed(stack: MailStack, users: list[str]) -> int:
    """Files in the users' Maildir/new on ``stack``."""
    total = 0
    for user in users:
        local, _, domain = user.partition("@")
        folder = stack.root / "mail" / domain / local / "Maildir" / "new"
        total += sum(1 for _ in folder.iterdir()) if folder.is_dir() else 0
    return total


def load(target: MailStack, counted: list[MailStack], users: list[str], messages: int) -> float:
    """Messages landed per second for ``messages`` to each of ``users`` at once."""
    before = sum(landed(s, users) for s in counted)
    wanted = before + messages * len(users)
    start = time.perf_counter()
    sources = [
        subprocess.Popen(
            [
                "smtp-source",
                *("-l", "1024", "-m", str(messages), "-s", "5"),
                *("-M", "client.example.net", "-f", "loadgen@example.net", "-t", user),
                f"{target.host}:{target.ports['smtp']}",
            ],
            stdout=subprocess.DEVNULL,
        )
        for user in users
    ]
    for source in sources:
        source.wait()
    while sum(landed(s, users) for s in counted) < wanted:
        if time.perf_counter() - start > 600:
            msg = f"only {sum(landed(s, users) for s in counted) - before} landed"
            raise TimeoutError(msg)
        time.sleep(0.05)
    return messages * len(users) / (time.perf_counter() - start)


def add(stack: MailStack, address: str, *extra: str, scheme: str = "ARGON2ID") -> None:
    """A mailbox made on ``stack``'s CLI."""
    result = stack.cli(
        "mailbox",
        "add",
        address,
        "--password-stdin",
        *extra,
        input=PW + "\n",
        env={"MAILPROV_PASSWORDS_SCHEME": scheme},
    )
    assert result.exit_code == 0, result.output


def main() -> None:
    """Start the four hosts, run both benchmarks, print the figures and ratios."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--logins", type=int, default=60)
    parser.add_argument("--messages", type=int, default=1000, help="per recipient and round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    problem = loopback_addresses(HOSTS.values())
    if problem:
        raise SystemExit(problem)
    pg = Cluster.start(free_port(), replica=False, settings="max_connections = 500\n")
    url = pg.primary.url()
    ports = stack_ports()
    stacks: dict[str, MailStack] = {}
    try:
        for name, role in (("b1", "backend"), ("b2", "backend"), ("fe", "frontend")):
            extra = CLUSTER.format(role=role, name=name if role == "backend" else "")
            stacks[name] = start_stack(
                url, name=name, host=HOSTS[name], ports=ports, extra_toml=extra
            )
        stacks["one"] = start_stack(url, name="one", host=HOSTS["one"], ports=ports)
        fe, b1, b2, one = stacks["fe"], stacks["b1"], stacks["b2"], stacks["one"]
        add(fe, "argon@example.test", "--backend", "b1")
        add(fe, "sha@example.test", "--backend", "b1", scheme="SHA512-CRYPT")
        add(fe, "tp1@example.test", "--backend", "b1", scheme="SHA512-CRYPT")
        add(fe, "tp2@example.test", "--backend", "b2", scheme="SHA512-CRYPT")

        print(f"IMAP login + SELECT, {args.logins} each, interleaved (median ms)")
        for user in ("argon@example.test", "sha@example.test"):
            login_select(fe, user)  # warm up: processes, connections, caches
            login_select(b1, user)
            proxy, direct = [], []
            for _ in range(args.logins):
                proxy.append(login_select(fe, user))
                direct.append(login_select(b1, user))
            p, d = statistics.median(proxy), statistics.median(direct)
            print(
                f"  {user:<20} proxy {p * 1000:7.2f}  direct {d * 1000:7.2f}  "
                f"ratio proxy/direct {p / d:.3f}  (goal <= 1.5)"
            )

        users = ["tp1@example.test", "tp2@example.test"]
        print(f"mail landed per second, {args.messages} x {len(users)} per round (smtp-source)")
        rates: dict[str, list[float]] = {"frontend": [], "all": []}
        for _ in range(args.rounds):
            rates["frontend"].append(load(fe, [b1, b2], users, args.messages))
            rates["all"].append(load(one, [one], users, args.messages))
        for kind, values in rates.items():
            print(f"  {kind:<9} " + "  ".join(f"{v:7.1f}" for v in values) + " msg/s")
        ratio = statistics.mean(rates["frontend"]) / statistics.mean(rates["all"])
        print(f"  ratio frontend->2 backends / one 'all' host (mean): {ratio:.3f}  (goal >= 1.0)")
    finally:
        for stack in stacks.values():
            stack.stop()
            shutil.rmtree(stack.root, ignore_errors=True)
        pg.stop()


if __name__ == "__main__":
    main()
