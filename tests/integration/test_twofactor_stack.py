"""Two-factor authentication enforced by the real Dovecot (and Postfix's SASL through it).

With two-factor authentication on, IMAP, POP3 and SMTP AUTH refuse the main password
and accept app passwords, which Dovecot checks itself through the second passdb
query; a revoked app password is refused at the next login. Real clients: imaplib,
poplib, smtplib and swaks. Both store backends (the session's ``mailstack``).
"""

from __future__ import annotations

import imaplib
import poplib
import shutil
import smtplib
import subprocess
import time
import uuid
from typing import Any

import pyotp
import pytest

from mailprov.model import Secret
from mailprov.rules import hashing
from mailprov.services import app_passwords, owner, twofactor
from mailprov.services.accounts import Actor
from mailprov.settings import SiteConfig
from mailprov.store import open_store
from tests.integration.stack import MailStack

pytestmark = [pytest.mark.requires_postfix, pytest.mark.requires_dovecot]

PW = "Tr0ub4dor-and-3"
PEPPER = b"s" * 32


@pytest.fixture(name="stack_store")
def fixture_stack_store(mailstack: MailStack) -> Any:
    """The stack's account store, opened by mailprov's services."""
    opened = open_store(mailstack.store_url)
    yield opened
    opened.close()


def fresh(stack: MailStack) -> str:
    """A new mailbox with password PW."""
    address = f"tf{uuid.uuid4().hex[:8]}@{stack.domain}"
    stack.add_mailbox(address, PW)
    return address


def turn_on(store: Any, address: str) -> None:
    """Two-factor authentication on, as the owner does it (set-up, then a first code)."""
    settings = SiteConfig()
    now = int(time.time())
    signed = owner.sign_in(store, settings, address, Secret(PW), client="test", now=now)
    made = twofactor.start_enrolment(store, settings, PEPPER, address, now=now)
    code = Secret(pyotp.TOTP(made.secret.reveal()).at(now))
    twofactor.confirm_enrolment(store, settings, PEPPER, signed.session, code, Secret(PW), now=now)


def imap_answer(stack: MailStack, user: str, password: str) -> str:
    """'OK', or Dovecot's refusal as the client sees it (IMAPS, certificate verified)."""
    with imaplib.IMAP4_SSL(
        stack.host, stack.ports["imaps"], ssl_context=stack.tls_context(), timeout=10
    ) as client:
        try:
            client.login(user, password)
        except imaplib.IMAP4.error as exc:
            return str(exc)
        return "OK"


def pop3_ok(stack: MailStack, user: str, password: str) -> bool:
    """Whether POP3S takes the login."""
    client = poplib.POP3_SSL(
        stack.host, stack.ports["pop3s"], context=stack.tls_context(), timeout=10
    )
    try:
        client.user(user)
        client.pass_(password)
    except poplib.error_proto:
        return False
    finally:
        client.close()
    return True


def smtp_auth(stack: MailStack, user: str, password: str) -> int:
    """SMTP AUTH PLAIN on submission after STARTTLS: 235, or the refusal's code."""
    with smtplib.SMTP(
        stack.host, stack.ports["submission"], local_hostname="client.test", timeout=10
    ) as client:
        client.starttls(context=stack.tls_context())
        client.ehlo()
        try:
            return int(client.login(user, password)[0])
        except smtplib.SMTPAuthenticationError as exc:
            return int(exc.smtp_code)


def swaks_auth(stack: MailStack, user: str, password: str) -> int:
    """swaks (an outside SMTP client) authenticating on submission; its exit status."""
    swaks = shutil.which("swaks")
    assert swaks is not None, "swaks is installed by make test-deps"
    done = subprocess.run(
        [
            swaks,
            "--server",
            f"{stack.host}:{stack.ports['submission']}",
            "--tls",
            "--tls-verify",
            "--tls-ca-path",
            str(stack.ca_file),
            "--auth",
            "PLAIN",
            "--auth-user",
            user,
            "--auth-password",
            password,
            "--quit-after",
            "AUTH",
            "--helo",
            "client.test",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.returncode


def test_main_password_refused_app_passwords_accepted(
    mailstack: MailStack, stack_store: Any
) -> None:
    """IMAP, POP3 and SMTP AUTH: the main password until 2FA is on, then app passwords only."""
    address = fresh(mailstack)
    assert imap_answer(mailstack, address, PW) == "OK"
    assert smtp_auth(mailstack, address, PW) == 235
    turn_on(stack_store, address)
    settings = SiteConfig()
    now = int(time.time())
    laptop = app_passwords.create(stack_store, settings, address, "laptop", now=now)[1].reveal()
    phone = app_passwords.create(stack_store, settings, address, "phone", now=now)[1].reveal()

    assert "AUTHENTICATIONFAILED" in imap_answer(mailstack, address, PW), mailstack.log()
    assert not pop3_ok(mailstack, address, PW)
    assert smtp_auth(mailstack, address, PW) == 535
    assert swaks_auth(mailstack, address, PW) != 0
    for secret in (laptop, phone):  # several app passwords for one mailbox
        assert imap_answer(mailstack, address, secret) == "OK", mailstack.log()
        assert pop3_ok(mailstack, address, secret)
        assert smtp_auth(mailstack, address, secret) == 235
    assert swaks_auth(mailstack, address, phone) == 0
    assert "AUTHENTICATIONFAILED" in imap_answer(mailstack, address, laptop + "x")


def test_revoked_app_password_is_refused_at_the_next_login(
    mailstack: MailStack, stack_store: Any
) -> None:
    """Revoking takes effect at once (nothing cached); the other app password still works."""
    address = fresh(mailstack)
    turn_on(stack_store, address)
    settings = SiteConfig()
    now = int(time.time())
    made, laptop = app_passwords.create(stack_store, settings, address, "laptop", now=now)
    phone = app_passwords.create(stack_store, settings, address, "phone", now=now)[1].reveal()
    assert imap_answer(mailstack, address, laptop.reveal()) == "OK"
    app_passwords.revoke(stack_store, settings, address, str(made.id), now=now)
    assert "AUTHENTICATIONFAILED" in imap_answer(mailstack, address, laptop.reveal())
    assert smtp_auth(mailstack, address, laptop.reveal()) == 535
    assert imap_answer(mailstack, address, phone) == "OK"


def test_app_password_opens_only_its_own_mailbox(mailstack: MailStack, stack_store: Any) -> None:
    """Another mailbox's app password is refused, with or without 2FA on that mailbox."""
    ann, bob = fresh(mailstack), fresh(mailstack)
    secret = app_passwords.create(stack_store, SiteConfig(), ann, "mail", now=int(time.time()))[1]
    assert imap_answer(mailstack, ann, secret.reveal()) == "OK"  # 2FA off: works as well
    assert "AUTHENTICATIONFAILED" in imap_answer(mailstack, bob, secret.reveal())
    turn_on(stack_store, bob)
    assert "AUTHENTICATIONFAILED" in imap_answer(mailstack, bob, secret.reveal())


def test_turning_off_gives_the_main_password_back(mailstack: MailStack, stack_store: Any) -> None:
    """After an administrator's reset the main password opens IMAP and SMTP again."""
    address = fresh(mailstack)
    turn_on(stack_store, address)
    assert "AUTHENTICATIONFAILED" in imap_answer(mailstack, address, PW)
    assert twofactor.admin_reset(stack_store, SiteConfig(), address, actor=Actor("admin", 1))
    assert imap_answer(mailstack, address, PW) == "OK"
    assert smtp_auth(mailstack, address, PW) == 235


def test_several_rows_fail_dovecots_sql_passdb(mailstack: MailStack) -> None:
    """Why the query looks the app password up by its hash: given two rows for one login,
    Dovecot 2.3's SQL passdb fails the login as a temporary error, whatever the password."""
    address = fresh(mailstack)
    same = hashing.app_password_hash("same-secret")
    for label in ("a", "b"):
        mailstack.sql(
            "INSERT INTO app_passwords (address, label, password_hash, created_at) "
            "VALUES (:a, :l, :h, 1)",
            a=address,
            l=label,
            h=same,
        )
    assert "UNAVAILABLE" in imap_answer(mailstack, address, "same-secret")
    assert "Password query returned multiple matches" in mailstack.log()
