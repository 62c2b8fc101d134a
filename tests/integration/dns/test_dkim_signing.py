"""DKIM signing for real, through the rendered stack: 'deploy apply' wires OpenDKIM (RSA and
Ed25519 instances, tables rendered by mailprov) into the rendered Postfix; a message submitted
with STARTTLS + AUTH leaves through the relayhost to a sink, signed, and dkimpy verifies it
against the keys knot publishes."""

from __future__ import annotations

import smtplib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import dkim
import dns.message
import dns.query
import dns.rdatatype
import pytest
from aiosmtpd.controller import Controller

from tests.integration.conftest import publish_zone
from tests.integration.knot import Knot
from tests.integration.stack import MailStack

pytestmark = [pytest.mark.requires_dns_server, pytest.mark.requires_postfix]

PASSWORD = "Dkim-signing-test-1"


@dataclass
class Sink:
    """An aiosmtpd server that keeps every message it receives."""

    port: int
    messages: list[bytes] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Keep the message."""
        with self.arrived:
            self.messages.append(bytes(envelope.original_content or envelope.content))
            self.arrived.notify_all()
        return "250 2.0.0 kept"

    def wait_for(self, marker: str, timeout: float = 20.0) -> bytes:
        """The first message holding ``marker``."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                for message in self.messages:
                    if marker.encode() in message:
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no message with {marker} arrived")
                self.arrived.wait(left)


def _dnsfunc(knot: Knot) -> Any:

    def lookup(name: bytes | str, timeout: float = 5) -> bytes | None:
        qname = name.decode() if isinstance(name, bytes) else name
        answer = dns.query.udp(
            dns.message.make_query(qname, dns.rdatatype.TXT),
            "127.0.0.1",
            timeout=timeout,
            port=knot.port,
        )
        for rrset in answer.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                return b"".join(next(iter(rrset)).strings)
        return None

    return lookup


def _signatures(raw: bytes, knot: Knot) -> list[tuple[str, str, bool]]:
    """(algorithm, selector, verified) for each DKIM-Signature, checked by dkimpy against knot."""

    checker = dkim.DKIM(raw)
    count = raw.lower().count(b"\ndkim-signature:") + raw.lower().startswith(b"dkim-signature:")
    out = []
    for idx in range(count):
        ok = checker.verify(idx=idx, dnsfunc=_dnsfunc(knot))
        out.append(
            (
                checker.signature_fields[b"a"].decode(),
                checker.signature_fields[b"s"].decode(),
                bool(ok),
            )
        )
    return out


@dataclass
class Signing:
    """The DKIM stack, its knot, and the sink its relayhost delivers to."""

    stack: MailStack
    knot: Knot
    sink: Sink

    def send(self) -> str:
        """Submit a message from alice@example.test (STARTTLS + AUTH); return its marker."""
        marker = uuid.uuid4().hex
        msg = EmailMessage()
        msg["From"] = "alice@example.test"
        msg["To"] = "bob@receiver.test"
        msg["Subject"] = f"dkim test {marker}"
        msg["Message-ID"] = f"<{marker}@example.test>"
        msg.set_content(f"signed body {marker}\n")
        port = self.stack.ports["submission"]
        with smtplib.SMTP(self.stack.host, port, local_hostname="client.test", timeout=20) as smtp:
            smtp.starttls(context=self.stack.tls_context())
            smtp.login("alice@example.test", PASSWORD)
            smtp.send_message(msg)
        return marker


@pytest.fixture(scope="module", name="signing")
def fixture_signing(dkim_stack: MailStack, knot: Knot) -> Iterator[Signing]:
    """The DKIM stack with a mailbox, and a sink listening on its relayhost's port."""
    if "alice" not in dkim_stack.__dict__:
        dkim_stack.add_mailbox("alice@example.test", PASSWORD)
        dkim_stack.__dict__["alice"] = True
    sink = Sink(dkim_stack.ports["relay"])
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield Signing(dkim_stack, knot, sink)
    finally:
        controller.stop()


def _active(signing: Signing) -> dict[str, str]:
    _, doc = signing.stack.cli.json("dkim", "list", "example.test")
    return {k["algorithm"]: k["selector"] for k in doc["keys"] if k["signing"]}


def test_rendered_main_cf_names_the_milters(dkim_stack: MailStack) -> None:
    """With [dkim] sign, the deployed main.cf lists both OpenDKIM milters and the tempfail action."""
    main_cf = (dkim_stack.postfix_dir / "main.cf").read_text()
    ports = (dkim_stack.ports["milter"], dkim_stack.ports["milter_ed25519"])
    expected = ", ".join(f"inet:127.0.0.1:{p}" for p in ports)
    assert f"smtpd_milters = {expected}\n" in main_cf
    assert "non_smtpd_milters = $smtpd_milters\n" in main_cf
    assert "milter_default_action = tempfail\n" in main_cf
    assert (dkim_stack.target / "systemd" / "mailprov-opendkim-ed25519.service").is_file()


def test_mail_is_dual_signed_and_verifies(signing: Signing) -> None:
    """Mail through the rendered Postfix + OpenDKIM carries RSA and Ed25519 signatures that
    dkimpy verifies against knot."""
    raw = signing.sink.wait_for(signing.send())
    active = _active(signing)
    assert sorted(_signatures(raw, signing.knot)) == sorted(
        [
            ("rsa-sha256", active["rsa-2048"], True),
            ("ed25519-sha256", active["ed25519"], True),
        ]
    )


def test_rotation_switches_the_signing_selector(signing: Signing) -> None:
    """After rotate + publish + activate, new mail is signed with the new selectors and verifies."""
    mp = signing.stack
    before = _active(signing)
    _, rotated = mp.cli.json("dkim", "rotate", "example.test")
    new = {k["algorithm"]: k["selector"] for k in rotated["keys"]}
    assert set(new.values()).isdisjoint(before.values())
    status, refused = mp.cli.json("dkim", "activate", "example.test", new["rsa-2048"])
    assert status == 71
    assert refused["error"]["code"] == "dkim-not-published"
    publish_zone(mp, signing.knot)
    for selector in new.values():
        status, doc = mp.cli.json("dkim", "activate", "example.test", selector)
        assert status == 0, doc
        assert doc["signer"]["reloaded"] is True
    time.sleep(0.5)  # opendkim re-reads its tables on SIGUSR1 between messages
    raw = signing.sink.wait_for(signing.send())
    assert sorted(_signatures(raw, signing.knot)) == sorted(
        [
            ("rsa-sha256", new["rsa-2048"], True),
            ("ed25519-sha256", new["ed25519"], True),
        ]
    )
    status, early = mp.cli.json("dkim", "retire", "example.test", before["rsa-2048"])
    assert status == 22
    assert "in transit" in early["error"]["message"]
    # deploy agrees with what 'dkim activate' wrote: nothing to change, nothing edited by hand.
    status, planned = mp.cli.json("deploy", "plan", "--target", str(mp.target), "--no-check")
    assert status == 0
    assert [
        f["path"]
        for f in planned["files"]
        if f["component"] == "opendkim" and f["status"] != "unchanged"
    ] == []
