"""ARC sealing on the real stack: mail for an alias that forwards outside leaves with an
ARC set (ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results) made by rspamd with
the domain's activated RSA DKIM key, which dkimpy verifies against the test knot server."""

from __future__ import annotations

import email
import smtplib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import dkim
import dns.message
import dns.query
import dns.rdatatype
import pytest
from aiosmtpd.controller import Controller

from tests.integration.knot import Knot
from tests.integration.rspamd.test_rspamd_stack import _message, _send, fixture_sender_key
from tests.integration.stack import MailStack

__all__ = ["fixture_sender_key"]  # the fixture, imported for this module's tests


class _Sink:
    """Keeps every message handed to it (the stack's relayhost, standing in for outside)."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        del server, session
        self.messages.append(bytes(envelope.original_content or envelope.content))
        return "250 2.0.0 Ok"

    def wait(self, subject: str, stack: MailStack, timeout: float = 30) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            for raw in self.messages:
                if subject.encode() in raw:
                    return raw
            if time.monotonic() > deadline:
                raise AssertionError(f"{subject!r} was not forwarded\n{stack.log()[-3000:]}")
            time.sleep(0.2)


@pytest.fixture(name="outside")
def fixture_outside(rspamd_stack: MailStack) -> Iterator[_Sink]:
    """An SMTP sink on the stack's relayhost port for the test."""
    sink = _Sink()
    controller = Controller(
        sink, hostname="127.0.0.1", port=rspamd_stack.ports["relay"], server_hostname="outside.test"
    )
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def _dnsfunc(knot: Knot) -> Any:
    """dkimpy's TXT lookup, answered by the test knot server only."""
    host, _, port = knot.address.rpartition(":")

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        query = dns.message.make_query(name.decode().rstrip(".") + ".", dns.rdatatype.TXT)
        answer = dns.query.udp(query, host, port=int(port), timeout=timeout)
        for rrset in answer.answer:
            for rdata in rrset:
                return b"".join(rdata.strings)
        return b""

    return lookup


def _publish_rsa_key(stack: MailStack, knot: Knot, domain: str) -> str:
    """Add ``domain``, make its keys, serve the RSA record from knot, activate it; the selector."""
    assert stack.cli("domain", "add", domain).exit_code == 0
    status, rotated = stack.cli.json("dkim", "rotate", domain)
    assert status == 0, rotated
    rsa = next(k for k in rotated["keys"] if k["algorithm"] == "rsa-2048")
    record = rsa["record"]
    chunks = " ".join(f'"{record[i : i + 200]}"' for i in range(0, len(record), 200))
    knot.load_zone(
        domain,
        f"$ORIGIN {domain}.\n$TTL 60\n@ IN SOA ns admin 1 60 60 600 60\n@ IN NS ns\n"
        f"ns IN A 127.0.0.1\n{rsa['selector']}._domainkey IN TXT ( {chunks} )\n",
    )
    status, doc = stack.cli.json("dkim", "activate", domain, rsa["selector"], "--skip-dns-check")
    assert status == 0, doc
    # The seal's key: the RSA key copied for rspamd, named by selectors.map; rspamd reloaded.
    assert doc["signer"]["arc_keys"]["written"] == [
        f"{domain}.{rsa['selector']}.key",
        "selectors.map",
    ], doc
    copy = stack.root / "rspamd-db" / "arc" / f"{domain}.{rsa['selector']}.key"
    assert copy.stat().st_mode & 0o777 == 0o600
    assert copy.owner() == "_rspamd"
    return str(rsa["selector"])


def test_forwarded_mail_carries_an_arc_seal_that_verifies(
    rspamd_stack: MailStack, knot: Knot, sender_key: bytes, outside: _Sink
) -> None:
    """A DKIM-signed message to an alias forwarding outside leaves sealed (i=1, d= the
    alias's domain, s= its activated RSA selector); dkimpy's arc_verify says pass."""
    domain = f"fwd{uuid.uuid4().hex[:6]}.test"
    selector = _publish_rsa_key(rspamd_stack, knot, domain)
    alias = f"list@{domain}"
    assert rspamd_stack.cli("alias", "add", alias, "friend@elsewhere.test").exit_code == 0
    subject = f"t-{uuid.uuid4().hex[:10]}"
    deadline = time.monotonic() + 30
    while True:  # the activation reloaded rspamd: its milter answers again shortly
        try:
            _send(rspamd_stack, alias, _message(alias, subject, sign_with=sender_key), "127.0.0.2")
            break
        except smtplib.SMTPResponseException:  # 451 while rspamd's workers restart
            assert time.monotonic() < deadline, rspamd_stack.log()[-2000:]
            time.sleep(0.5)
    raw = outside.wait(subject, rspamd_stack)
    got = email.message_from_bytes(raw)
    seal = str(got["ARC-Seal"])
    assert "i=1" in seal and f"d={domain}" in seal and f"s={selector}" in seal, seal
    assert got["ARC-Message-Signature"] is not None
    assert "dkim=pass" in str(got["ARC-Authentication-Results"])
    cv, results, comment = dkim.arc_verify(raw, dnsfunc=_dnsfunc(knot))
    assert cv == dkim.CV_Pass, (cv, results, comment)
    # The original author's DKIM signature survived the forward too.
    assert dkim.verify(raw, dnsfunc=_dnsfunc(knot))
