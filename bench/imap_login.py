"""IMAP login with an app password vs with a main password, on the same Dovecot, same run.

One rendered stack (real Dovecot, SQLite store by default, or PostgreSQL with --pg URL).
Three mailboxes:
  main-argon   2FA off, main password hashed with the site default ARGON2ID (64 MiB, t=3)
  main-sha512  2FA off, main password hashed with SHA512-CRYPT (100,000 rounds)
  app          2FA on, logs in with one of its 5 app passwords ({SHA256.HEX})
Each login is a new TCP connection to the plain IMAP port on 127.0.0.1 (no TLS, so the
figure is Dovecot's authentication, not the handshake), LOGIN, LOGOUT. The kinds are
interleaved, one of each per round, so machine noise hits them alike. Goal: app / main <= 1.0.

Usage: .venv/bin/python bench/imap_login.py [--rounds 100] [--pg postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import imaplib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailprov.model import Secret
from mailprov.rules.twofactor import code_at, step_at
from mailprov.services import app_passwords, owner, twofactor
from mailprov.settings import SiteConfig
from mailprov.store import open_store
from tests.integration.stack import (
    MailStack,
    create_pg_database,
    drop_pg_database,
    start_stack,
)

PW = "Bench-Password-1"
PEPPER = b"b" * 32


def login(stack: MailStack, user: str, password: str) -> float:
    """Seconds from connect to a completed LOGIN (then LOGOUT); fails loudly if refused."""
    start = time.perf_counter()
    client = imaplib.IMAP4(stack.host, stack.ports["imap"], timeout=30)
    client.login(user, password)
    took = time.perf_counter() - start
    client.logout()
    return took


def prepare(stack: MailStack) -> dict[str, tuple[str, str]]:
    """The three mailboxes and what each logs in with."""
    stack.add_mailbox("main-argon@example.test", PW)
    result = stack.cli(
        "mailbox",
        "add",
        "main-sha512@example.test",
        "--password-stdin",
        input=PW + "\n",
        env={"MAILPROV_PASSWORDS_SCHEME": "SHA512-CRYPT"},
    )
    assert result.exit_code == 0, result.output
    stack.add_mailbox("app@example.test", PW)
    store = open_store(stack.store_url)
    settings, now = SiteConfig(), int(time.time())
    signed = owner.sign_in(store, settings, "app@example.test", Secret(PW), client="b", now=now)
    made = twofactor.start_enrolment(store, settings, PEPPER, "app@example.test", now=now)
    code = Secret(code_at(made.secret.reveal(), step_at(now)))
    twofactor.confirm_enrolment(store, settings, PEPPER, signed.session, code, Secret(PW), now=now)
    secrets = [
        app_passwords.create(store, settings, "app@example.test", f"client {i}", now=now)[1]
        for i in range(5)
    ]
    store.close()
    return {
        "main-argon": ("main-argon@example.test", PW),
        "main-sha512": ("main-sha512@example.test", PW),
        "app": ("app@example.test", secrets[-1].reveal()),
    }


def report(times: dict[str, list[float]]) -> None:
    """Median, p95 and logins per second of each kind, and the ratios."""
    print(f"{'kind':<12} {'median ms':>10} {'p95 ms':>8} {'logins/s':>9}")
    medians = {}
    for kind, measured in times.items():
        values = sorted(measured)
        medians[kind] = statistics.median(values)
        p95 = values[int(0.95 * (len(values) - 1))]
        rate = len(values) / sum(values)
        print(f"{kind:<12} {medians[kind] * 1000:>10.2f} {p95 * 1000:>8.2f} {rate:>9.1f}")
    for main in ("main-argon", "main-sha512"):
        print(f"ratio app / {main} (median): {medians['app'] / medians[main]:.3f}")


def main() -> None:
    """Run the rounds and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--pg", metavar="URL", help="a PostgreSQL server to make a store on")
    args = parser.parse_args()
    pg_url = create_pg_database(args.pg) if args.pg else None
    url = pg_url or f"sqlite:///{tempfile.mkdtemp()}/mailprov.sqlite"
    stack = start_stack(url, name="bench")
    try:
        users = prepare(stack)
        for user, password in users.values():  # warm up: processes, caches, connections
            login(stack, user, password)
        times: dict[str, list[float]] = {kind: [] for kind in users}
        for _ in range(args.rounds):
            for kind, (user, password) in users.items():
                times[kind].append(login(stack, user, password))
        print(f"backend: {stack.backend}, rounds: {args.rounds}")
        report(times)
    finally:
        stack.stop()
        shutil.rmtree(stack.root, ignore_errors=True)
        if args.pg and pg_url:
            drop_pg_database(args.pg, pg_url)


if __name__ == "__main__":
    main()
