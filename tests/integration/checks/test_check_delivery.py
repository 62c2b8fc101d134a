"""``mailprov check delivery`` against the real rendered Postfix + Dovecot: a round trip that
leaves nothing behind, and a wrong password refused with its own exit status."""

from __future__ import annotations

import time

import pytest

from tests.integration.stack import MailStack

pytestmark = [pytest.mark.requires_postfix]

PASSWORD = "Check-delivery-pw-1"


def _mailbox(stack: MailStack, local: str) -> str:
    address = f"{local}@{stack.domain}"
    key = f"_mb_{local}"
    if key not in stack.__dict__:
        stack.add_mailbox(address, PASSWORD)
        stack.__dict__[key] = True
    return address


def _maildir_messages(stack: MailStack, address: str) -> list[str]:
    local, _, domain = address.partition("@")
    root = stack.root / "mail" / domain / local
    return [p.name for p in root.rglob("*") if p.is_file() and p.parent.name in ("new", "cur")]


def test_round_trip_is_reported_and_the_message_deleted(mailstack: MailStack) -> None:
    """check delivery reports a round trip, and the test message is gone from the Maildir."""
    address = _mailbox(mailstack, "checker")
    status, doc = mailstack.cli.json(
        "check", "delivery", address, "--password-stdin", input=PASSWORD + "\n"
    )
    assert status == 0, doc
    assert doc["changed"] is False
    assert doc["address"] == address
    assert doc["tag"].startswith("mpcheck-")
    assert 0 < doc["submit_ms"] <= doc["round_trip_ms"] < 30_000
    assert doc["deleted"] is True
    assert doc["submission_port"] == mailstack.ports["submission"]
    assert _maildir_messages(mailstack, address) == []


def test_wrong_password_is_an_auth_error_and_sends_nothing(mailstack: MailStack) -> None:
    """A wrong password gives delivery-auth-failed (exit 76), never echoes it, and sends nothing."""
    address = _mailbox(mailstack, "wrongpw")
    status, doc = mailstack.cli.json(
        "check", "delivery", address, "--password-stdin", input="Not-the-password-9\n"
    )
    assert status == 76
    assert doc["error"]["code"] == "delivery-auth-failed"
    assert "refused the login" in doc["error"]["message"]
    assert "Not-the-password-9" not in str(doc)
    time.sleep(0.3)
    assert _maildir_messages(mailstack, address) == []


def test_closed_port_is_delivery_refused(mailstack: MailStack, tmp_path: object) -> None:
    """Nothing listening on [check] host gives delivery-refused (exit 77)."""
    address = _mailbox(mailstack, "checker")
    conf = mailstack.config_file.read_text()
    try:
        with mailstack.config_file.open("a") as f:
            f.write('\n[check]\nhost = "127.0.0.9"\ntimeout_seconds = 3\n')
        status, doc = mailstack.cli.json(
            "check", "delivery", address, "--password-stdin", input=PASSWORD + "\n"
        )
    finally:
        mailstack.config_file.write_text(conf)
    assert status == 77, doc
    assert doc["error"]["code"] == "delivery-refused"
