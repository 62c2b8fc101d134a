"""Two backends on one PostgreSQL store, for ``mailbox move``'s tests and benchmark.

``b1`` and ``b2``: each a real Postfix + Dovecot rendered by ``deploy apply`` with
``[cluster] role = "backend"`` and its own Maildirs; their LMTP and doveadm servers listen
on 127.0.0.3 and 127.0.0.4 (the hosts ``[cluster] backends`` names; doveadm on one port,
with a shared ``doveadm_password_file``). Their other services listen on 127.0.0.1, each
on its own ports (the stack harness's way). The frontends' network is 127.0.0.2.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import uuid
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import create_engine, text

from mailprov.mailstack import free_ports
from tests.integration.stack import MailStack, start_stack

BACKENDS = {"b1": "127.0.0.3", "b2": "127.0.0.4"}
CLUSTER = """
[cluster]
role = "backend"
name = "{name}"
backends = ["b1=127.0.0.3", "b2=127.0.0.4"]
frontends = ["127.0.0.2/32"]
doveadm_port = {doveadm}
doveadm_password_file = "{password_file}"
"""


class Backends:
    """Two running backends on one store."""

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
        """``mailprov ARGS`` on b1's site in a subprocess (``kill_at``: the crash hook's
        ``move:STAGE``, after which it SIGKILLs itself)."""
        stack = self.stacks["b1"]
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
        """Stop both backends and remove their folders."""
        for stack in self.stacks.values():
            stack.stop()
            shutil.rmtree(stack.root, ignore_errors=True)
        shutil.rmtree(self.secrets, ignore_errors=True)


def start_backends(store_url: str) -> Backends:
    """Render and start b1 and b2 on ``store_url`` (a PostgreSQL database)."""
    secrets = Path(tempfile.mkdtemp(prefix="mp-doveadm-"))
    password_file = secrets / "doveadm-password"
    password_file.write_text(uuid.uuid4().hex + "\n")
    password_file.chmod(0o600)
    (doveadm,) = free_ports(1)
    backends = Backends(store_url, {}, secrets)
    try:
        for name in BACKENDS:
            cluster = CLUSTER.format(name=name, doveadm=doveadm, password_file=password_file)
            backends.stacks[name] = start_stack(
                store_url, name=name, prepare=lambda s, c=cluster: _append(s.config_file, c)
            )
    except BaseException:
        backends.stop()
        raise
    return backends


def _append(config: Path, extra: str) -> None:
    with config.open("a") as f:
        f.write(extra)
