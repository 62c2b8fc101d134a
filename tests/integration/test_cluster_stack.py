"""Issue 15: a site on three hosts — two backends and a frontend — tested for real.

Three rendered Postfix + Dovecot instances on their own loopback addresses (frontend
127.0.0.2, backend b1 127.0.0.3, backend b2 127.0.0.4), all on the same ports and one
PostgreSQL store (a fresh database on the test server, dropped at the end). The frontend
proxies IMAP/POP3 to each mailbox's home and sends its mail there over LMTP; a backend
stores only its own mailboxes.

Postfix listens only on an address some interface has, so the fixture adds 127.0.0.2-4 to
``lo`` when they are missing (and leaves them: a concurrent run may use them; they change
nothing for 127.0.0.1). The frontend connects from 127.0.0.2 (``source_address``), the one
address the backends trust (``frontends``). The tests run in file order (the suite
disables pytest-randomly): the ones that stop a backend come last and start it again.
"""

from __future__ import annotations

import base64
import imaplib
import json
import poplib
import shutil
import smtplib
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from mailprov.mailstack import stack_ports
from tests.conftest import pg_base_url, require_or_skip
from tests.integration.stack import (
    MailStack,
    create_pg_database,
    drop_pg_database,
    loopback_addresses,
    start_stack,
)

pytestmark = [pytest.mark.requires_postfix, pytest.mark.requires_dovecot, pytest.mark.slow]

PW = "Cluster-Pass-42!"
CLUSTER = """
[cluster]
role = "{role}"
name = "{name}"
backends = ["b1=127.0.0.3", "b2=127.0.0.4"]
frontends = ["127.0.0.2/32"]
source_address = "127.0.0.2"
"""
HOSTS = {"b1": "127.0.0.3", "b2": "127.0.0.4", "fe": "127.0.0.2"}


@dataclass
class Site:
    """The three hosts of one site and its store."""

    url: str
    fe: MailStack
    b1: MailStack
    b2: MailStack


@pytest.fixture(scope="module", name="site")
def fixture_site() -> Iterator[Site]:
    """Backends b1, b2 and a frontend, started once for this module."""
    try:
        url = create_pg_database(pg_base_url())
    except OperationalError as exc:
        require_or_skip(f"PostgreSQL not reachable at {pg_base_url()}: {exc.orig}")
    problem = loopback_addresses(HOSTS.values())
    if problem:
        require_or_skip(problem)
    ports = stack_ports()
    started: list[MailStack] = []
    try:
        for name, role in (("b1", "backend"), ("b2", "backend"), ("fe", "frontend")):
            host = HOSTS[name]
            extra = CLUSTER.format(role=role, name=name if role == "backend" else "")
            started.append(start_stack(url, name=name, host=host, ports=ports, extra_toml=extra))
        b1, b2, fe = started
        yield Site(url, fe, b1, b2)
    finally:
        for stack in started:
            stack.stop()
            shutil.rmtree(stack.root, ignore_errors=True)
        drop_pg_database(pg_base_url(), url)


def _add(stack: MailStack, address: str, *extra: str) -> dict[str, object]:
    status, doc = stack.cli.json(
        "mailbox", "add", address, "--password-stdin", *extra, input=PW + "\n"
    )
    assert status == 0, doc
    return doc["mailbox"]  # type: ignore[no-any-return]


def _maildir(stack: MailStack, address: str) -> Path:
    local, _, domain = address.partition("@")
    return stack.root / "mail" / domain / local / "Maildir"


def _imap_select(stack: MailStack, address: str) -> int:
    """Log in over IMAPS (verified TLS) on ``stack`` and SELECT INBOX: its message count."""
    with imaplib.IMAP4_SSL(
        stack.host, stack.ports["imaps"], ssl_context=stack.tls_context(), timeout=15
    ) as imap:
        imap.login(address, PW)
        typ, data = imap.select("INBOX", readonly=True)
        assert typ == "OK", data
        return int(data[0] or 0)


def _imap_refusal(stack: MailStack, address: str) -> str:
    """The frontend's answer to a login that it cannot pass on (it then hangs up, so no
    LOGOUT follows)."""
    imap = imaplib.IMAP4_SSL(
        stack.host, stack.ports["imaps"], ssl_context=stack.tls_context(), timeout=15
    )
    try:
        imap.login(address, PW)
    except imaplib.IMAP4.error as exc:
        return str(exc)
    finally:
        imap.shutdown()
    raise AssertionError(f"{address} logged in")


def _pop3_refusal(stack: MailStack, address: str) -> str:
    """As :func:`_imap_refusal`, over POP3S."""
    pop = poplib.POP3_SSL(stack.host, stack.ports["pop3s"], context=stack.tls_context(), timeout=15)
    try:
        pop.user(address)
        pop.pass_(PW)
    except poplib.error_proto as exc:
        return str(exc)
    finally:
        pop.close()
    raise AssertionError(f"{address} logged in")


def _managesieve_login(stack: MailStack, address: str) -> bytes:
    """STARTTLS and AUTHENTICATE PLAIN on ``stack``'s ManageSieve port (RFC 5804): the reply."""

    def answer(stream: Any) -> bytes:
        while True:
            line = stream.readline()
            if not line or line.startswith((b"OK", b"NO", b"BYE")):
                return bytes(line)

    with socket.create_connection((stack.host, stack.ports["managesieve"]), timeout=15) as raw:
        answer(raw.makefile("rb"))
        raw.sendall(b"STARTTLS\r\n")
        assert answer(raw.makefile("rb")).startswith(b"OK")
        with stack.tls_context().wrap_socket(raw, server_hostname=stack.host) as tls:
            stream = tls.makefile("rb")
            answer(stream)  # the capabilities again, after TLS
            token = base64.b64encode(f"\0{address}\0{PW}".encode()).decode()
            tls.sendall(f'AUTHENTICATE "PLAIN" "{token}"\r\n'.encode())
            reply = answer(stream)
            tls.sendall(b"LOGOUT\r\n")
            return reply


def _send(stack: MailStack, recipients: list[str], subject: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "sender@example.net", ", ".join(recipients), subject
    msg.set_content("hello from outside")
    with smtplib.SMTP(stack.host, stack.ports["smtp"], local_hostname="c.example.net") as smtp:
        refused = smtp.send_message(msg, to_addrs=recipients)
    assert not refused


def _landed(stack: MailStack, address: str, subject: str, timeout: float = 20.0) -> Path:
    """The file in ``address``'s Maildir on ``stack`` holding ``subject``, waiting for it."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for folder in ("new", "cur"):
            for path in (_maildir(stack, address) / folder).glob("*"):
                if subject.encode() in path.read_bytes():
                    return path
        time.sleep(0.1)
    raise AssertionError(f"{subject!r} never reached {address} on {stack.name}\n{stack.log()}")


def _queue(stack: MailStack) -> list[dict[str, object]]:
    out = subprocess.run(
        ["postqueue", "-c", str(stack.postfix_dir), "-j"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _deferred_for(stack: MailStack, address: str, timeout: float = 20.0) -> str:
    """The reason the frontend's queue gives for holding mail to ``address`` (waits for it)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for item in _queue(stack):
            for rcpt in item.get("recipients", []):  # type: ignore[attr-defined]
                if rcpt["address"] == address and rcpt.get("delay_reason"):
                    assert item["queue_name"] == "deferred"
                    return str(rcpt["delay_reason"])
        time.sleep(0.2)
    raise AssertionError(f"no deferred mail for {address}\n{stack.log()}")


def _subject() -> str:
    return f"cluster-{uuid.uuid4().hex[:10]}"


def test_a_mailbox_added_anywhere_logs_in_through_the_frontend(site: Site) -> None:
    """A mailbox added on a backend's CLI logs in through the frontend's IMAP proxy, and
    its Maildir is made on its home backend only."""
    assert _add(site.b2, "ann@example.test", "--backend", "b1")["home"] == "b1"
    assert _add(site.fe, "bob@example.test")["home"] == "b1"  # the site's default
    assert _add(site.b1, "cyd@example.test", "--backend", "b2")["home"] == "b2"
    assert _imap_select(site.fe, "ann@example.test") == 0
    assert _imap_select(site.fe, "cyd@example.test") == 0
    assert _maildir(site.b1, "ann@example.test").is_dir()
    assert not _maildir(site.b2, "ann@example.test").exists()
    assert _maildir(site.b2, "cyd@example.test").is_dir()
    assert not _maildir(site.b1, "cyd@example.test").exists()
    assert not (site.fe.root / "mail" / "example.test").exists()


def test_pop3_and_managesieve_go_through_the_proxy_too(site: Site) -> None:
    """POP3 and ManageSieve logins through the frontend reach the home backend as well."""
    pop = poplib.POP3_SSL(
        site.fe.host, site.fe.ports["pop3s"], context=site.fe.tls_context(), timeout=15
    )
    try:
        pop.user("cyd@example.test")
        assert pop.pass_(PW).startswith(b"+OK")
    finally:
        pop.quit()
    assert _managesieve_login(site.fe, "cyd@example.test").startswith(b"OK")


class _ImapFrom(imaplib.IMAP4):
    """Plain IMAP from a chosen loopback address."""

    def __init__(self, host: str, port: int, source: str) -> None:
        self.source = source
        super().__init__(host, port, timeout=15)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout, (self.source, 0))


def _backend_login(stack: MailStack, source: str, password: str) -> bool:
    with _ImapFrom(stack.host, stack.ports["imap"], source) as imap:
        try:
            imap.login("ann@example.test", password)
        except imaplib.IMAP4.error:
            return False
        return True


def test_a_backend_trusts_only_the_frontends_address(site: Site) -> None:
    """Only from the frontends' network does a backend take a login without checking the
    password (the frontend did); from anywhere else the password is checked."""
    assert _backend_login(site.b1, "127.0.0.3", PW)
    assert not _backend_login(site.b1, "127.0.0.3", "Wrong-Pass-42!")
    assert _backend_login(site.b1, "127.0.0.2", "not checked here")


def test_a_wrong_password_is_refused_by_the_frontend(site: Site) -> None:
    """The frontend checks the password itself: a wrong one never reaches a backend."""
    with (
        imaplib.IMAP4_SSL(
            site.fe.host, site.fe.ports["imaps"], ssl_context=site.fe.tls_context(), timeout=15
        ) as imap,
        pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"),
    ):
        imap.login("ann@example.test", "Wrong-Pass-42!")


def test_mail_to_the_frontend_lands_on_each_home(site: Site) -> None:
    """One message to the frontend's port 25 for two mailboxes with different homes lands
    in each one's Maildir on its own backend, and reads back through the proxy."""
    subject = _subject()
    _send(site.fe, ["ann@example.test", "cyd@example.test"], subject)
    assert _landed(site.b1, "ann@example.test", subject)
    assert _landed(site.b2, "cyd@example.test", subject)
    assert not _maildir(site.b2, "ann@example.test").exists()
    assert site.fe.wait_for_message("cyd@example.test", PW, subject)["Subject"] == subject


def test_submission_on_the_frontend_logs_in_and_delivers(site: Site) -> None:
    """SMTP AUTH on the frontend's submission port checks the password (the proxy fields
    of its passdb do not get in the way) and the mail lands on the recipient's home."""
    subject = _subject()
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "ann@example.test", "cyd@example.test", subject
    msg.set_content("from one backend's mailbox to the other's")
    with smtplib.SMTP(site.fe.host, site.fe.ports["submission"], timeout=15) as smtp:
        smtp.starttls(context=site.fe.tls_context())
        smtp.login("ann@example.test", PW)
        smtp.send_message(msg)
    assert _landed(site.b2, "cyd@example.test", subject)


def test_a_full_mailbox_is_refused_at_rcpt_by_its_home(site: Site) -> None:
    """The frontend asks the home backend's quota-status at RCPT: a full mailbox is refused
    there (552), not accepted and bounced later."""
    _add(site.fe, "eve@example.test", "--backend", "b2")
    subject = _subject()
    _send(site.fe, ["eve@example.test"], subject)
    assert _landed(site.b2, "eve@example.test", subject)
    site.fe.sql("UPDATE mailboxes SET quota_bytes = 100 WHERE address = 'eve@example.test'")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        _send(site.fe, ["eve@example.test"], _subject())
    code, text = refused.value.recipients["eve@example.test"]
    assert (code, text[:5]) == (552, b"5.2.2"), text


def test_a_backend_refuses_a_mailbox_living_elsewhere_for_now(site: Site) -> None:
    """LMTP straight to b1 for a mailbox whose home is b2: a temporary 4xx, never a 5xx."""
    with smtplib.LMTP(site.b1.host, site.b1.ports["lmtp"]) as lmtp:
        lmtp.ehlo("fe.example.test")
        lmtp.mail("sender@example.net")
        code, text = lmtp.rcpt("cyd@example.test")
    assert 400 <= code < 500, (code, text)


def test_an_unknown_home_is_a_temporary_failure(site: Site) -> None:
    """A backend name outside [cluster] backends (set in the store by hand): the frontend
    answers RCPT with 450 4.3.5 (the sender's server keeps the mail and retries; no bounce)
    and the IMAP login fails as a temporary failure ([UNAVAILABLE])."""
    _add(site.fe, "dee@example.test", "--backend", "b2")
    site.fe.sql("UPDATE mailboxes SET backend = 'b9' WHERE address = 'dee@example.test'")
    subject = _subject()
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        _send(site.fe, ["dee@example.test"], subject)
    code, text = refused.value.recipients["dee@example.test"]
    assert (code, text[:5]) == (450, b"4.3.5"), text
    assert b"b9" in text
    assert "[UNAVAILABLE]" in _imap_refusal(site.fe, "dee@example.test")
    # Named again, the sender's retry is delivered to the home (a reload stands in for the
    # minutes a real retry waits: Postfix's address resolver keeps an answer for a while).
    site.fe.sql("UPDATE mailboxes SET backend = 'b2' WHERE address = 'dee@example.test'")
    subprocess.run(["postfix", "-c", str(site.fe.postfix_dir), "reload"], check=True)
    _send(site.fe, ["dee@example.test"], subject)
    assert _landed(site.b2, "dee@example.test", subject)


def test_a_backend_down_defers_and_delivers_when_back(site: Site) -> None:
    """With b2 stopped, its mailbox's login fails as temporary and its mail stays queued
    (deferred, not bounced); started again, the queued mail is delivered."""
    site.b2.stop()
    try:
        assert "[UNAVAILABLE]" in _imap_refusal(site.fe, "cyd@example.test")
        assert "[SYS/TEMP]" in _pop3_refusal(site.fe, "cyd@example.test")
        assert _imap_select(site.fe, "ann@example.test") >= 1  # b1 still serves its own
        subject = _subject()
        _send(site.fe, ["cyd@example.test"], subject)
        reason = _deferred_for(site.fe, "cyd@example.test")
        assert "127.0.0.4" in reason, reason
    finally:
        site.b2.start()
    subprocess.run(["postqueue", "-c", str(site.fe.postfix_dir), "-f"], check=True)
    assert _landed(site.b2, "cyd@example.test", subject)
    assert not [i for i in _queue(site.fe) if i["queue_name"] == "deferred"]
