"""The pytest plugin (``mailprov.testing``) as a test rig uses it: the ``mail_relay`` fixture."""

from __future__ import annotations

import smtplib
import subprocess
import sys

import pytest


def test_mail_relay_fixture_captures_and_waits(mail_relay) -> None:
    """mail_relay gives host/port, and wait_for returns the parsed message that arrived."""
    with smtplib.SMTP(mail_relay.host, mail_relay.port, timeout=10) as c:
        c.sendmail(
            "app@rig.test",
            ["ann@example.test"],
            b"Subject: Your code\r\nContent-Type: text/plain\r\n\r\nYour code is 123456\r\n",
        )
    msg = mail_relay.wait_for(to="ann@example.test", subject="code", timeout=5)
    assert "123456" in msg.text
    assert [m.id for m in mail_relay.messages(to="ann@example.test")] == [msg.id]


def test_mail_relay_starts_empty_and_takes_faults(mail_relay) -> None:
    """Each test starts with no messages; .fault() makes the relay refuse as told."""
    assert mail_relay.messages() == []
    mail_relay.fault("rcpt:*@example.test=450 4.7.1 greylisted@times=1")
    with smtplib.SMTP(mail_relay.host, mail_relay.port, timeout=10) as c:
        refused = c.sendmail(
            "app@rig.test", ["a@example.test", "b@example.test"], b"Subject: g\r\n\r\nx\r\n"
        )
    assert refused == {"a@example.test": (450, b"4.7.1 greylisted")}
    assert [m.recipients for m in mail_relay.messages()] == [("b@example.test",)]


def test_wait_for_fails_the_test_on_timeout(mail_relay) -> None:
    """wait_for fails the test (not hangs) when nothing matching arrives."""
    with pytest.raises(pytest.fail.Exception, match="no message matching"):
        mail_relay.wait_for(to="nobody@example.test", timeout=0.2)


def test_importing_the_plugin_stays_cheap() -> None:
    """Importing mailprov.testing loads neither aiosmtpd nor aiohttp."""
    code = (
        "import sys, mailprov.testing; "
        "print(sorted(m for m in ('aiosmtpd', 'aiohttp') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
