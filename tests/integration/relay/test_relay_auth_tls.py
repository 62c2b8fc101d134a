"""STARTTLS, implicit TLS and AUTH (account store or credentials file), with real TLS handshakes."""

from __future__ import annotations

import smtplib
import time
from pathlib import Path

import pytest

from mailprov.model import Secret
from mailprov.rules.addresses import parse_address
from mailprov.rules.hashing import hash_password
from mailprov.services.accounts import Actor, add_domain, add_mailbox, prepare_password, set_active
from mailprov.settings import PasswordsSection
from mailprov.store import open_store
from mailprov.store.migrate import upgrade
from mailprov.testing import RelayRunner
from tests.conftest import CertAuthority
from tests.integration.relay.relay_helpers import client, tls_context


@pytest.fixture(scope="module")
def account_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite account store with ann@example.test (password 'Ann-pass-1') and an inactive one."""
    url = f"sqlite:///{tmp_path_factory.mktemp('accounts') / 'mailprov.sqlite'}"
    upgrade(url)
    store = open_store(url)
    actor = Actor("test", int(time.time()))
    add_domain(store, "example.test", actor=actor)
    settings = PasswordsSection(policy="source")
    for address in ("ann@example.test", "off@example.test"):
        new = prepare_password(settings, parse_address(address), password=Secret("Bright-pass-1x!"))
        add_mailbox(store, address, new, actor=actor)
    set_active(store, "off@example.test", False, actor=actor)
    store.close()
    return url


def login(relay: RelayRunner, user: str, password: str, *, mechanism: str = "PLAIN") -> int:
    """STARTTLS, then one AUTH attempt; the reply code."""
    with client(relay) as c:
        c.starttls(context=tls_context(relay))
        c.ehlo()
        c.user, c.password = user, password
        try:
            code, _ = c.auth(
                mechanism,
                getattr(c, f"auth_{mechanism.lower()}"),
                initial_response_ok=mechanism == "PLAIN",
            )
        except smtplib.SMTPAuthenticationError as exc:
            return exc.smtp_code
        return code


def test_auth_against_the_account_store(make_relay, account_store: str) -> None:
    """PLAIN and LOGIN succeed with the store's password; wrong or inactive accounts get 535."""
    relay = make_relay(store_url=account_store)
    assert login(relay, "ann@example.test", "Bright-pass-1x!") == 235
    assert login(relay, "ann@example.test", "Bright-pass-1x!", mechanism="LOGIN") == 235
    assert login(relay, "ann@example.test", "wrong") == 535
    assert login(relay, "off@example.test", "Bright-pass-1x!") == 535
    assert login(relay, "nobody@example.test", "x") == 535


def test_auth_user_is_its_own_mailbox(make_relay, tmp_path: Path) -> None:
    """Mail sent after AUTH is also filed under the AUTH user's mailbox."""
    creds = tmp_path / "users"
    creds.write_text(f"sender@example.test:{hash_password('s3cret-Pass!', 'SHA512-CRYPT')}\n")
    relay = make_relay(credentials_file=creds)
    with client(relay) as c:
        c.starttls(context=tls_context(relay))
        c.login("sender@example.test", "s3cret-Pass!")
        c.sendmail("sender@example.test", ["dest@example.test"], b"Subject: authed\r\n\r\nx\r\n")
    mine = relay.messages(to="sender@example.test")
    assert [m.subject for m in mine] == ["authed"]
    assert mine[0].summary.auth_user == "sender@example.test"
    assert relay.messages(user="sender@example.test")[0].id == mine[0].id


def test_auth_before_tls_is_refused(make_relay, tmp_path: Path) -> None:
    """AUTH on a plain connection gets 538 unless plaintext AUTH is explicitly allowed."""
    creds = tmp_path / "users"
    creds.write_text(f"u@example.test:{hash_password('pw-Secret-1', 'SHA512-CRYPT')}\n")
    relay = make_relay(credentials_file=creds)
    with client(relay) as c:
        c.ehlo()
        code, text = c.docmd("AUTH", "PLAIN AHVAZXhhbXBsZS50ZXN0AHB3LVNlY3JldC0x")
        assert (code, b"Encryption required" in text) == (538, True)
    relaxed = make_relay(credentials_file=creds, allow_auth_without_tls=True)
    with client(relaxed) as c:
        c.ehlo()
        assert c.login("u@example.test", "pw-Secret-1")[0] == 235


def test_require_auth_refuses_anonymous_mail(make_relay, tmp_path: Path) -> None:
    """With require_auth, MAIL without AUTH gets 530 and nothing is stored."""
    creds = tmp_path / "users"
    creds.write_text(f"u@example.test:{hash_password('pw-Secret-1', 'SHA512-CRYPT')}\n")
    relay = make_relay(credentials_file=creds, require_auth=True)
    with client(relay) as c:
        c.ehlo()
        code, _ = c.mail("a@client.test")
        assert code == 530
    with client(relay) as c:
        c.starttls(context=tls_context(relay))
        c.login("u@example.test", "pw-Secret-1")
        c.sendmail("u@example.test", ["d@example.test"], b"Subject: ok\r\n\r\nx\r\n")
    assert [m.subject for m in relay.messages()] == ["ok"]


def test_implicit_tls_listener(make_relay, tmp_path: Path) -> None:
    """The implicit-TLS listener completes a verified handshake and accepts AUTH and mail."""
    creds = tmp_path / "users"
    creds.write_text(f"u@example.test:{hash_password('pw-Secret-1', 'SHA512-CRYPT')}\n")
    relay = make_relay(credentials_file=creds, tls_listen=("127.0.0.1", 0))
    assert relay.server is not None
    assert relay.server.tls_port is not None
    with smtplib.SMTP_SSL(
        "127.0.0.1",
        relay.server.tls_port,
        context=tls_context(relay),
        local_hostname="client.test",
        timeout=10,
    ) as c:
        c.login("u@example.test", "pw-Secret-1")
        c.sendmail("u@example.test", ["d@example.test"], b"Subject: tls\r\n\r\nx\r\n")
    assert relay.messages()[0].subject == "tls"


def test_starttls_with_configured_certificate(
    make_relay, tmp_path: Path, test_ca: CertAuthority
) -> None:
    """relay.tls = files presents the configured certificate (test CA) in a real handshake."""
    issued = test_ca.issue(tmp_path, "relay.test", "127.0.0.1")
    relay = make_relay(tls="files", tls_cert_file=issued.cert_file, tls_key_file=issued.key_file)
    with client(relay) as c:
        assert c.starttls(context=test_ca.client_context())[0] == 220
        c.sendmail("a@client.test", ["d@example.test"], b"Subject: trusted\r\n\r\nx\r\n")
    assert relay.messages()[0].subject == "trusted"
