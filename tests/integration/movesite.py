"""A site on three hosts for ``mailbox move``'s tests and benchmark.

Backends ``b1`` (127.0.0.3) and ``b2`` (127.0.0.4) and a frontend ``fe`` (127.0.0.2): each
a real Postfix + Dovecot rendered by ``deploy apply`` for its ``[cluster]`` role, all on
the same ports and one PostgreSQL store (the cluster harness of
tests/integration/test_cluster_stack.py). The backends' doveadm servers listen on their
own addresses on one more shared port, with a shared ``doveadm_password_file``; the
frontend has the password too, and ``mailprov mailbox move`` runs there, as an operator
would.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import create_engine, text

from mailprov.mailstack import stack_ports
from tests.integration.stack import MailStack, loopback_addresses, start_stack

BACKENDS = {"b1": "127.0.0.3", "b2": "127.0.0.4"}
FRONTEND = "127.0.0.2"
CLUSTER = """
[cluster]
role = "{role}"
name = "{name}"
backends = ["b1=127.0.0.3", "b2=127.0.0.4"]
frontends = ["127.0.0.2/32"]
source_address = "127.0.0.2"
doveadm_port = {{doveadm}}
doveadm_password_file = "{password_file}"
"""


class Backends:
    """The running hosts (``b1``, ``b2``, ``fe``) of one site on one store."""

    def __init__(self, store_url: str, stacks: dict[str, MailStack], secrets: Path) -> None:
        self.store_url = store_url
        self.stacks = stacks
        self.secrets = secrets

    def deliver(self, name: str, address: str, subject: str) -> str:
        """Deliver one message to ``address`` on backend ``name`` over LMTP; its Message-ID."""
        stack = self.stacks[name]
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "sender@example.net", address, subject
        msg["Message-ID"] = f"<{uuid.uuid4().hex}@move.test>"
        msg.set_content(f"{subject}\n")
        with smtplib.LMTP(BACKENDS[name], stack.ports["lmtp"], timeout=10) as lmtp:
            lmtp.send_message(msg)
        return str(msg["Message-ID"])

    def send(self, address: str, subject: str, *, lands_on: str, timeout: float = 90) -> str:
        """Send one message to ``address`` through the frontend's Postfix (port 25) and wait
        until it is in the INBOX on backend ``lands_on``; its Message-ID.

        Postfix's queue manager keeps its last address resolution for 30 s
        (``resolve_clnt``'s one-entry cache), so right after a move it may still send the
        mailbox's mail to the old home, which answers 451; the queue is flushed every few
        seconds here, as its own retry would do later.
        """
        fe = self.stacks["fe"]
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "sender@example.net", address, subject
        msg["Message-ID"] = f"<{uuid.uuid4().hex}@move.test>"
        msg.set_content(f"{subject}\n")
        with smtplib.SMTP(fe.host, fe.ports["smtp"], timeout=10) as smtp:
            smtp.send_message(msg)
        end, flush = time.monotonic() + timeout, time.monotonic() + 2
        while str(msg["Message-ID"]) not in self.message_ids(lands_on, address):
            if time.monotonic() > end:
                raise TimeoutError(f"{subject!r} never reached {lands_on}\n{fe.log()[-2000:]}")
            if time.monotonic() > flush:  # deferred (a home's 451): retry now, not in minutes
                subprocess.run(["postqueue", "-c", str(fe.postfix_dir), "-f"], check=False)
                flush = time.monotonic() + 5
            time.sleep(0.1)
        return str(msg["Message-ID"])

    def save(self, name: str, address: str, subject: str) -> str:
        """Store one message in ``address``'s INBOX on backend ``name`` with ``doveadm save``
        (as a late IMAP APPEND would); its Message-ID."""
        message_id = f"<{uuid.uuid4().hex}@move.test>"
        subprocess.run(
            ["doveadm", "-c", str(self.stacks[name].dovecot_conf), "save", "-u", address],
            input=f"From: a@example.net\nSubject: {subject}\nMessage-ID: {message_id}\n\nx\n",
            text=True,
            check=True,
            timeout=60,
        )
        return message_id

    def doveadm(self, name: str, *args: str) -> str:
        """``doveadm ARGS`` against backend ``name``'s Dovecot; its output."""
        res = subprocess.run(
            ["doveadm", "-c", str(self.stacks[name].dovecot_conf), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=3600,
        )
        return res.stdout

    def message_ids(self, name: str, address: str) -> list[str]:
        """The Message-IDs in ``address``'s INBOX on backend ``name``, per its Dovecot."""
        out = self.doveadm(
            name, "-f", "tab", "fetch", "-u", address, "hdr.message-id", "mailbox", "INBOX"
        )
        return sorted(line.strip() for line in out.splitlines()[1:] if line.strip())

    def maildir(self, name: str, address: str) -> Path:
        """Where backend ``name`` keeps ``address``'s mail."""
        local, domain = address.split("@")
        return self.stacks[name].root / "mail" / domain / local

    def home(self, address: str) -> tuple[str | None, str | None]:
        """(backend, moving_from) of ``address`` in the store."""
        engine = create_engine(self.store_url)
        try:
            with engine.connect() as conn:
                row = conn.execute(
                    text("SELECT backend, moving_from FROM mailboxes WHERE address = :a"),
                    {"a": address},
                ).one()
        finally:
            engine.dispose()
        return row.backend, row.moving_from

    def mailprov(self, *args: str, kill_at: str = "") -> subprocess.CompletedProcess[str]:
        """``mailprov ARGS`` on the frontend's site in a subprocess (``kill_at``: the crash
        hook's ``move:STAGE``, after which it SIGKILLs itself)."""
        stack = self.stacks["fe"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPROV_")}
        env |= {
            "MAILPROV_CONFIG": str(stack.config_file),
            "XDG_STATE_HOME": str(stack.root / "xdg"),
        }
        if kill_at:
            env["MAILPROV_TEST_KILL_AT"] = kill_at
        return subprocess.run(
            [sys.executable, "-m", "mailprov", *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=3600,
        )

    def stop(self) -> None:
        """Stop every host and remove its folders."""
        for stack in self.stacks.values():
            stack.stop()
            shutil.rmtree(stack.root, ignore_errors=True)
        shutil.rmtree(self.secrets, ignore_errors=True)


def start_backends(store_url: str) -> Backends:
    """Render and start b1, b2 and fe on ``store_url`` (a PostgreSQL database).

    Raises:
        RuntimeError: the loopback addresses cannot be added (the problem says why).
    """
    problem = loopback_addresses([*BACKENDS.values(), FRONTEND])
    if problem:
        raise RuntimeError(problem)
    secrets = Path(tempfile.mkdtemp(prefix="mp-doveadm-"))
    password_file = secrets / "doveadm-password"
    password_file.write_text(uuid.uuid4().hex + "\n")
    password_file.chmod(0o600)
    ports = stack_ports(("doveadm",))
    backends = Backends(store_url, {}, secrets)
    hosts = [("b1", "backend", BACKENDS["b1"]), ("b2", "backend", BACKENDS["b2"])]
    try:
        for name, role, host in [*hosts, ("fe", "frontend", FRONTEND)]:
            cluster = CLUSTER.format(
                role=role, name=name if role == "backend" else "", password_file=password_file
            )
            backends.stacks[name] = start_stack(
                store_url, name=name, host=host, ports=ports, extra_toml=cluster
            )
    except BaseException:
        backends.stop()
        raise
    return backends
