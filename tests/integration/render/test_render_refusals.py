"""On the real servers: refuse at RCPT what cannot be delivered, and forged local senders.

Each test speaks SMTP to the rendered Postfix on port 25 from 127.0.0.2, which is
outside mynetworks (127.0.0.1/32): the way a server on the internet connects.
"""

from __future__ import annotations

import re
import smtplib
import time
import uuid

import pytest

from tests.integration.stack import MailStack

pytestmark = [pytest.mark.requires_postfix, pytest.mark.requires_dovecot]

PW = "Tr0ub4dor-and-3"
OUTSIDE = "127.0.0.2"


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def _mailbox(stack: MailStack, name: str) -> str:
    address = f"{name}{_tag()}@{stack.domain}"
    stack.add_mailbox(address, PW)
    return address


def _alias(stack: MailStack, source: str, *destinations: str) -> str:
    result = stack.cli("alias", "add", source, *destinations)
    assert result.exit_code == 0, result.output
    return source


def _session(stack: MailStack, source: str = OUTSIDE) -> smtplib.SMTP:
    client = smtplib.SMTP(
        stack.host,
        stack.ports["smtp"],
        local_hostname="mx.example.net",
        timeout=10,
        source_address=(source, 0),
    )
    client.ehlo()
    return client


def _rcpt_codes(stack: MailStack, sender: str, *recipients: str, source: str = OUTSIDE) -> dict:
    """The reply code each recipient gets at RCPT (after MAIL FROM ``sender``)."""
    with _session(stack, source) as client:
        assert client.mail(sender)[0] == 250
        return {r: client.rcpt(r)[0] for r in recipients}


def _queue_events(stack: MailStack, queue_id: str, until: str, wait: float = 15.0) -> str:
    """Postfix's log lines for ``queue_id``, once one of them contains ``until``."""
    log = stack.root / "log" / "postfix.log"
    deadline = time.monotonic() + wait
    while True:
        lines = [ln for ln in log.read_text("utf-8", "replace").splitlines() if queue_id in ln]
        if any(until in ln for ln in lines) or time.monotonic() > deadline:
            return "\n".join(lines)
        time.sleep(0.1)


class TestDisabledDestinations:
    def test_aliases_leading_only_to_disabled_mailboxes_are_refused_at_rcpt(
        self, mailstack: MailStack
    ) -> None:
        """An alias, a nested alias and a catch-all left with only a disabled mailbox get 550
        at RCPT, and 'mailbox disable --json' names exactly those."""
        domain = f"d{_tag()}.test"
        assert mailstack.cli("domain", "add", domain).exit_code == 0
        active, gone = f"active@{domain}", f"gone@{domain}"
        mailstack.add_mailbox(active, PW)
        mailstack.add_mailbox(gone, PW)
        only = _alias(mailstack, f"only@{domain}", gone)
        outer = _alias(mailstack, f"outer@{domain}", only)
        mixed = _alias(mailstack, f"mixed@{domain}", active, gone)
        forward = _alias(mailstack, f"fwd@{domain}", gone, "someone@example.net")
        catch_all = _alias(mailstack, f"@{domain}", gone)
        before = _rcpt_codes(mailstack, "x@example.net", only, outer, f"random@{domain}")
        assert dict.fromkeys(before, 250) == before

        status, doc = mailstack.cli.json("mailbox", "disable", gone)

        assert (status, doc["aliases_now_undeliverable"]) == (0, sorted([only, outer, catch_all]))
        after = _rcpt_codes(
            mailstack, "x@example.net", only, outer, f"random@{domain}", mixed, forward, gone
        )
        assert {
            only: 550,
            outer: 550,
            f"random@{domain}": 550,
            mixed: 250,
            forward: 250,
            gone: 550,
        } == after

    def test_alias_with_a_disabled_member_delivers_to_the_others_without_a_bounce(
        self, mailstack: MailStack
    ) -> None:
        """Mail to an alias with one disabled member reaches the active one, and Postfix
        queues no bounce for the disabled one."""
        keep, off = _mailbox(mailstack, "keep"), _mailbox(mailstack, "off")
        team = _alias(mailstack, f"team{_tag()}@{mailstack.domain}", keep, off)
        assert mailstack.cli("mailbox", "disable", off).exit_code == 0
        with _session(mailstack) as client:
            client.mail(f"sender{_tag()}@example.net")
            assert client.rcpt(team)[0] == 250
            code, reply = client.data(f"Subject: s{_tag()}\r\n\r\nhello\r\n".encode())
        assert code == 250, reply
        queue_id = reply.decode().rsplit(" ", 1)[1]
        events = _queue_events(mailstack, queue_id, "removed")
        delivered = re.findall(r"to=<([^>]+)>.*status=sent", events)
        assert ([keep], "non-delivery" in events) == (delivered, False), events


class TestLocalSenders:
    def test_outside_client_cannot_claim_a_local_sender(self, mailstack: MailStack) -> None:
        """A client outside mynetworks without AUTH gets 554 5.7.1 for a local envelope
        sender, whether the address exists or not."""
        rcpt = _mailbox(mailstack, "rcpt")
        for sender in (_mailbox(mailstack, "alice"), f"nobody{_tag()}@{mailstack.domain}"):
            with _session(mailstack) as client:
                client.mail(sender)
                code, text = client.rcpt(rcpt)
            assert (code, text[:5]) == (554, b"5.7.1"), text
            assert b"Sender address rejected: Log in to send as an address of" in text

    def test_outside_senders_bounces_and_mynetworks_are_still_accepted(
        self, mailstack: MailStack
    ) -> None:
        """Outside senders, the null sender and local senders from mynetworks pass."""
        rcpt, local = _mailbox(mailstack, "rcpt"), _mailbox(mailstack, "local")
        codes = {
            "outside": _rcpt_codes(mailstack, "x@example.net", rcpt)[rcpt],
            "null sender": _rcpt_codes(mailstack, "", rcpt)[rcpt],
            "mynetworks": _rcpt_codes(mailstack, local, rcpt, source="127.0.0.1")[rcpt],
        }
        assert dict.fromkeys(codes, 250) == codes
