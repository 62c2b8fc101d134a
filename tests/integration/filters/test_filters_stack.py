"""Filters on the real servers: Pigeonhole runs each owner's Sieve script at delivery (LMTP),
ManageSieve takes scripts from a real client (sieve-connect, STARTTLS, certificate verified),
and the forms saved over HTTP reach the same storage. Mail comes in through the real
Postfix; what Sieve sends (vacation replies, forwards) goes out through it to a capture relay.
Both store backends."""

from __future__ import annotations

import imaplib
import os
import smtplib
import socket
import subprocess
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailprov.testing import RelayRunner
from tests.integration.filters.conftest import FiltersSite
from tests.integration.stack import MailStack

pytestmark = [pytest.mark.requires_postfix, pytest.mark.requires_dovecot]

PW = "Sieve-filters-test-1"


def fresh(stack: MailStack, name: str) -> str:
    """A new mailbox with a unique address and the password PW."""
    address = f"{name}{uuid.uuid4().hex[:6]}@{stack.domain}"
    stack.add_mailbox(address, PW)
    return address


def inbound(stack: MailStack, sender: str, to: str, subject: str, body: str = "hello") -> None:
    """Deliver a message over port 25, as another mail server would."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.net>"
    msg.set_content(body)
    with smtplib.SMTP(
        stack.host, stack.ports["smtp"], local_hostname="mx.example.net", timeout=10
    ) as c:
        c.send_message(msg)


def _imap_quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def folder_of(stack: MailStack, user: str, token: str, timeout: float = 15.0) -> str:
    """The folder holding the message whose subject has ``token`` (letters and digits), read
    over IMAPS with the certificate verified."""
    deadline = time.monotonic() + timeout
    while True:
        with imaplib.IMAP4_SSL(
            stack.host, stack.ports["imaps"], ssl_context=stack.tls_context()
        ) as im:
            im.login(user, PW)
            _, listed = im.list()
            for raw in listed:
                quoted = raw.decode().split(' "/" ', 1)[1]  # type: ignore[union-attr]
                name = quoted
                if quoted.startswith('"'):
                    name = quoted[1:-1].replace('\\"', '"').replace("\\\\", "\\")
                if im.select(_imap_quote(name), readonly=True)[0] != "OK":
                    continue  # a \\Noselect parent level
                _, found = im.search(None, "SUBJECT", token)
                if found[0]:
                    return name
        if time.monotonic() > deadline:
            raise AssertionError(f"{token} not delivered to {user}\n{stack.log()}")
        time.sleep(0.2)


def sieve_connect(stack: MailStack, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ManageSieve client against the stack: STARTTLS required (--noclearauth), the
    certificate verified against the test CA, the password on a pipe (never argv)."""
    read, write = os.pipe()
    os.write(write, (PW + "\n").encode())
    os.close(write)
    try:
        return subprocess.run(
            [
                "sieve-connect",
                "--server",
                stack.host,
                "--port",
                str(stack.ports["managesieve"]),
                "--user",
                user,
                "--passwordfd",
                str(read),
                "--tlscafile",
                str(stack.ca_file),
                "--noclearauth",
                *args,
            ],
            pass_fds=(read,),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        os.close(read)


def test_managesieve_offers_starttls_before_login(mailstack: MailStack) -> None:
    """Port [ports] managesieve greets as Pigeonhole's ManageSieve offering STARTTLS, with
    the Sieve extensions the forms use (RFC 5804). (Loopback counts as secured for Dovecot,
    so SASL is offered here before STARTTLS; elsewhere ssl = required withholds it.)"""
    with socket.create_connection((mailstack.host, mailstack.ports["managesieve"]), 5) as s:
        greeting = b""
        while not greeting.endswith(b"\r\n") or b"\r\nOK" not in b"\r\n" + greeting:
            greeting += s.recv(4096)
    text = greeting.decode()
    assert '"STARTTLS"' in text
    assert "Pigeonhole" in text.split('"IMPLEMENTATION"', 1)[1].split("\r\n", 1)[0]
    assert '"SIEVE"' in text and "vacation" in text and "fileinto" in text


def test_script_uploaded_with_managesieve_files_delivered_mail(
    filters_site: FiltersSite, tmp_path: Path
) -> None:
    """A script uploaded and activated with sieve-connect files a message that came in
    through Postfix into a folder; others stay in the INBOX."""
    stack = filters_site.stack
    user = fresh(stack, "ms")
    marker = uuid.uuid4().hex[:8]
    script = tmp_path / "own.sieve"
    script.write_text(
        'require ["fileinto", "mailbox"];\n'
        f'if header :contains "subject" "[{marker}]" {{ fileinto :create "Lists/Own"; stop; }}\n'
    )
    put = sieve_connect(
        stack, user, "--upload", "--localsieve", str(script), "--remotesieve", "own"
    )
    assert put.returncode == 0, put.stderr
    on = sieve_connect(stack, user, "--activate", "--remotesieve", "own")
    assert on.returncode == 0, on.stderr
    listed = sieve_connect(stack, user, "--list")
    assert '"own" ACTIVE' in listed.stdout + listed.stderr

    listed_token, plain_token = uuid.uuid4().hex, uuid.uuid4().hex
    inbound(stack, "news@example.net", user, f"[{marker}] weekly {listed_token}")
    inbound(stack, "friend@example.net", user, f"plain {marker} {plain_token}")
    assert "Lists/Own" == folder_of(stack, user, listed_token)
    assert "INBOX" == folder_of(stack, user, plain_token)


def test_vacation_set_through_the_api_reaches_the_relay(
    filters_site: FiltersSite, outbound: RelayRunner
) -> None:
    """A vacation reply saved as forms over HTTP answers a message that came in through
    Postfix; the reply goes out through Postfix to the relay, with the null sender."""
    stack = filters_site.stack
    user = fresh(stack, "vac")
    sender = f"friend-{uuid.uuid4().hex[:6]}@example.net"
    with filters_site.client() as client:
        filters_site.sign_in(client, user, PW)
        saved = client.put(
            "/api/v1/filters",
            json={"vacation": {"subject": "Away until Monday", "body": "I read mail on Monday.\n"}},
        )
        assert saved.status_code == 200, saved.text
        assert "mailprov" == saved.json()["active_script"]

    token = uuid.uuid4().hex
    inbound(stack, sender, user, f"are you there? {token}")
    reply = outbound.wait_for(to=sender, timeout=20)
    assert "Away until Monday" == reply.subject
    assert "I read mail on Monday." in reply.text
    assert "<>" == reply.sender  # RFC 5230: replies go out with the null envelope sender
    assert str(reply.message["Auto-Submitted"]).startswith("auto-replied")
    assert "INBOX" == folder_of(stack, user, token)


def test_forwarding_delivers_a_copy_and_keeps_one(
    filters_site: FiltersSite, outbound: RelayRunner
) -> None:
    """Forwarding with keep: the message reaches the remote address through Postfix with
    the owner as envelope sender (no SRS needed for SPF), and stays in the INBOX too."""
    stack = filters_site.stack
    user = fresh(stack, "fwd")
    remote = f"elsewhere-{uuid.uuid4().hex[:6]}@example.net"
    token = uuid.uuid4().hex
    subject = f"forward me {token}"
    with filters_site.client() as client:
        filters_site.sign_in(client, user, PW)
        saved = client.put("/api/v1/filters", json={"forwarding": {"to": [remote], "keep": True}})
        assert saved.status_code == 200, saved.text

    inbound(stack, "someone@example.org", user, subject)
    copy = outbound.wait_for(to=remote, subject=subject, timeout=20)
    assert user == copy.sender  # sieve_redirect_envelope_from = recipient
    assert "someone@example.org" in str(copy.message["From"])
    assert "INBOX" == folder_of(stack, user, token)


def test_hostile_rule_text_stays_a_literal(filters_site: FiltersSite) -> None:
    """A rule whose text tries to close the string and add commands matches only that exact
    text: the message holding it is moved, another one is neither discarded nor moved."""
    stack = filters_site.stack
    user = fresh(stack, "inj")
    hostile = 'x" { discard; stop; } if true { discard; } if header :contains "subject" "\\'
    with filters_site.client() as client:
        filters_site.sign_in(client, user, PW)
        saved = client.put(
            "/api/v1/filters",
            json={
                "rules": [
                    {
                        "field": "subject",
                        "contains": hostile,
                        "action": "move",
                        "folder": 'Caught "}',
                    }
                ]
            },
        )
        assert saved.status_code == 200, saved.text

    caught, harmless = uuid.uuid4().hex, uuid.uuid4().hex
    inbound(stack, "a@example.net", user, f"{caught} {hostile} end")
    inbound(stack, "a@example.net", user, f"{harmless} if true discard")
    assert 'Caught "}' == folder_of(stack, user, caught)
    assert "INBOX" == folder_of(stack, user, harmless)
    # The forms' script is in the storage ManageSieve edits, and active.
    listed = sieve_connect(stack, user, "--list")
    assert '"mailprov" ACTIVE' in listed.stdout + listed.stderr
