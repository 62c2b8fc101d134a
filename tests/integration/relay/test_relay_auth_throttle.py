"""AUTH guessing is braked (issue 10, item 10): delay, lockout per IP and user, connection drop.

Real smtplib clients against a real relay with small limits: the right password
is refused (454) while the user or IP is locked out and accepted after the
lockout; a connection is closed (421) after too many failures on it.
"""

from __future__ import annotations

import base64
import smtplib
import time
from pathlib import Path

import pytest

from mailprov.rules.hashing import hash_password
from mailprov.testing import RelayRunner
from tests.integration.relay.relay_helpers import client

PASSWORD = "Right-pass-1x!"


@pytest.fixture
def credentials(tmp_path: Path) -> Path:
    """A credentials file with ann and bob (both PASSWORD), SHA512-CRYPT for speed."""
    path = tmp_path / "users"
    hashed = hash_password(PASSWORD, "SHA512-CRYPT")
    path.write_text(f"ann@example.test:{hashed}\nbob@example.test:{hashed}\n")
    return path


def throttled(make_relay, credentials: Path, **limits: object) -> RelayRunner:
    """A relay with AUTH on plain connections, the credentials file and the given limits."""
    base = {"auth_max_failures": 3, "auth_lockout_s": 1.5, "auth_failures_per_connection": 10}
    return make_relay(
        credentials_file=credentials, allow_auth_without_tls=True, **{**base, **limits}
    )


def attempt(smtp: smtplib.SMTP, user: str, password: str) -> tuple[int, str]:
    """One AUTH PLAIN on an open connection: the reply code and text."""
    blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    code, text = smtp.docmd("AUTH", f"PLAIN {blob}")
    return code, text.decode()


def login(relay: RelayRunner, user: str, password: str) -> tuple[int, str]:
    """One AUTH PLAIN on a fresh connection."""
    with client(relay) as smtp:
        smtp.ehlo()
        return attempt(smtp, user, password)


def test_a_user_is_locked_out_even_with_the_right_password(make_relay, credentials) -> None:
    """After N failures the right password gets 454 until the lockout ends, then 235."""
    relay = throttled(make_relay, credentials)
    for _ in range(3):
        assert login(relay, "ann@example.test", "wrong")[0] == 535
    code, text = login(relay, "ann@example.test", PASSWORD)
    assert (code, text) == (454, "4.7.0 Too many failed logins, try again later")
    time.sleep(1.6)
    assert login(relay, "ann@example.test", PASSWORD)[0] == 235


def test_an_ip_guessing_many_users_is_locked_out(make_relay, credentials) -> None:
    """Failures spread over users still lock the client IP out (bob's right password: 454)."""
    relay = throttled(make_relay, credentials)
    for user in ("a@example.test", "b@example.test", "c@example.test"):
        assert login(relay, user, "wrong")[0] == 535
    assert login(relay, "bob@example.test", PASSWORD)[0] == 454


def test_failures_are_answered_ever_more_slowly(make_relay, credentials) -> None:
    """Each failure's 535 comes later than the one before (the delay doubles)."""
    relay = throttled(make_relay, credentials, auth_max_failures=10)
    took = []
    with client(relay) as smtp:
        smtp.ehlo()
        for _ in range(4):
            started = time.monotonic()
            assert attempt(smtp, "ann@example.test", "wrong")[0] == 535
            took.append(time.monotonic() - started)
    assert took[3] > 0.7  # 0.1, 0.2, 0.4, 0.8 s
    assert took[0] < took[3]


def test_a_connection_is_closed_after_too_many_failures(make_relay, credentials) -> None:
    """After K failures on one connection the relay says 421 and closes it."""
    relay = throttled(make_relay, credentials, auth_max_failures=50, auth_failures_per_connection=2)
    with client(relay) as smtp:
        smtp.ehlo()
        assert attempt(smtp, "ann@example.test", "wrong")[0] == 535
        code, text = attempt(smtp, "ann@example.test", "wrong")
        assert (code, text) == (421, "4.7.0 Too many failed logins, closing connection")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            attempt(smtp, "ann@example.test", PASSWORD)
    assert login(relay, "ann@example.test", PASSWORD)[0] == 235  # not locked out: only 2 failures


def test_a_success_does_not_forgive_the_ip(make_relay, credentials) -> None:
    """A success in between does not reset the client IP's count: its Nth failure locks it."""
    relay = throttled(make_relay, credentials, auth_lockout_s=30.0)
    for _ in range(2):
        assert login(relay, "ann@example.test", "wrong")[0] == 535
    assert login(relay, "ann@example.test", PASSWORD)[0] == 235
    assert login(relay, "ann@example.test", "wrong")[0] == 535  # IP count is now 3: locked
    assert login(relay, "ann@example.test", PASSWORD)[0] == 454
