"""Deliver mode over LMTP (relay.lmtp) into the real rendered Dovecot of the mail stack.

The relay resolves recipients in the stack's account store, hands the message to
Dovecot's LMTP listener on 127.0.0.1, and passes Dovecot's answers back to the
SMTP client; the message is read back over IMAPS as its owner would.
"""

from __future__ import annotations

import smtplib
import socket
import uuid
from collections.abc import Callable
from email.policy import SMTP

import pytest

from mailprov.errors import ConfigInvalid
from mailprov.testing import RelayRunner
from tests.conftest import free_port
from tests.integration.relay.relay_helpers import client
from tests.integration.render.test_render_stack import PW, imap_read, message
from tests.integration.stack import MailStack

pytestmark = [pytest.mark.requires_postfix, pytest.mark.requires_dovecot]


def lmtp_relay(make_relay: Callable[..., RelayRunner], stack: MailStack) -> RelayRunner:
    """A deliver-mode relay on the stack's store, delivering to its LMTP port."""
    return make_relay(
        mode="deliver", store_url=stack.store_url, lmtp=f"127.0.0.1:{stack.ports['lmtp']}"
    )


def new_mailbox(stack: MailStack, *extra: str) -> str:
    """A fresh mailbox in the stack (unique per call: the stack is shared)."""
    address = f"lmtp{uuid.uuid4().hex[:8]}@{stack.domain}"
    stack.add_mailbox(address, PW, *extra)
    return address


def test_message_is_delivered_by_dovecot_over_lmtp(
    make_relay: Callable[..., RelayRunner], mailstack: MailStack
) -> None:
    """A message to a mailbox and to an alias of it arrives once, written by Dovecot (IMAP reads it)."""
    ann = new_mailbox(mailstack)
    alias = f"team{uuid.uuid4().hex[:6]}@{mailstack.domain}"
    assert 0 == mailstack.cli("alias", "add", alias, ann).exit_code
    relay = lmtp_relay(make_relay, mailstack)
    subject = f"over lmtp {uuid.uuid4().hex[:8]}"
    with client(relay) as c:
        refused = c.send_message(message("app@rig.test", alias, subject), to_addrs=[alias, ann])
    assert {} == refused
    raw = imap_read(mailstack, ann, subject)
    assert b"Return-Path: <app@rig.test>" in raw
    assert f"Delivered-To: {ann}".encode() in raw
    assert 1 == relay.server.ctx.counters["accepted"]  # type: ignore[union-attr]


def test_dovecot_refusals_reach_the_client_per_recipient(
    make_relay: Callable[..., RelayRunner], mailstack: MailStack
) -> None:
    """RCPT answers are per recipient; Dovecot's over-quota refusal at DATA is the client's reply.

    The mailbox with room keeps its copy (LMTP answered it 250); SMTP has one DATA reply,
    so the client hears the refusal, naming the full mailbox.
    """
    ok, small = new_mailbox(mailstack), new_mailbox(mailstack, "--quota", "10K")
    relay = lmtp_relay(make_relay, mailstack)
    subject = f"big {uuid.uuid4().hex[:8]}"
    big = message("app@rig.test", ok, subject, "x" * 20_000).as_bytes(policy=SMTP)
    with client(relay) as c:
        c.ehlo()
        assert 250 == c.mail("app@rig.test")[0]
        assert 250 == c.rcpt(ok)[0]
        assert 250 == c.rcpt(small)[0]
        code, text = c.rcpt(f"nobody@{mailstack.domain}")
        assert (550, True) == (code, b"User unknown" in text)  # the account store's answer
        code, text = c.data(big)
    assert 552 == code, text  # Dovecot's own answer for the full mailbox, passed through
    assert small.encode() in text and b"over quota" in text
    assert subject.encode() in imap_read(mailstack, ok, subject)


def test_unreachable_lmtp_is_a_temporary_failure(
    make_relay: Callable[..., RelayRunner], mailstack: MailStack
) -> None:
    """With nothing listening on relay.lmtp, MAIL gets 451 and nothing is accepted."""
    port = free_port()
    with socket.socket() as probe:  # prove the port is closed
        assert 0 != probe.connect_ex(("127.0.0.1", port))
    relay = make_relay(mode="deliver", store_url=mailstack.store_url, lmtp=f"127.0.0.1:{port}")
    with client(relay) as c, pytest.raises(smtplib.SMTPSenderRefused) as refused:
        c.sendmail("app@rig.test", [f"x@{mailstack.domain}"], b"Subject: x\r\n\r\nx\r\n")
    assert (451, b"4.4.1 Error: LMTP server unavailable; try again later") == (
        refused.value.smtp_code,
        refused.value.smtp_error,
    )


def test_a_bad_lmtp_target_is_refused_at_start(
    make_relay: Callable[..., RelayRunner], mailstack: MailStack
) -> None:
    """relay.lmtp that is neither HOST:PORT nor an absolute socket path stops the start."""
    with pytest.raises(ConfigInvalid, match=r"relay\.lmtp"):
        make_relay(mode="deliver", store_url=mailstack.store_url, lmtp="dovecot-lmtp")
