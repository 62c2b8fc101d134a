"""[passwords] temporary_login on the real stack: a temporary password opens no mail client.

The default ("portal") is rendered into the session's stack (both store backends).
Real clients (imaplib, aioimaplib, poplib, smtplib) see the refusal and the reason naming
the portal; after the owner sets their own password over the real HTTP API
(``mailprov serve`` on the stack's store), the same clients log in.
"""

from __future__ import annotations

import asyncio
import imaplib
import poplib
import smtplib
import uuid
from collections.abc import Iterator
from pathlib import Path

import aioimaplib
import httpx
import pytest

from mailprov.settings import SiteConfig, load_settings
from mailprov.store import open_store
from tests.integration.conftest import _require_servers
from tests.integration.stack import MailStack, start_stack
from tests.web.serving import serving

TEMP = "Temp-Passw0rd!x7"
OWN = "Own-Chosen-Passw0rd!"


def _settings(stack: MailStack) -> SiteConfig:
    return load_settings(config_file=stack.config_file, env={})


def _imap(stack: MailStack, user: str, password: str) -> tuple[bool, str]:
    """imaplib over STARTTLS: (logged in, the server's text)."""
    with imaplib.IMAP4(stack.host, stack.ports["imap"]) as client:
        client.starttls(stack.tls_context())
        try:
            typ, data = client.login(user, password)
        except imaplib.IMAP4.error as exc:
            return False, str(exc)
        return typ == "OK", repr(data)


async def _aioimap(stack: MailStack, user: str, password: str) -> tuple[str, str]:
    client = aioimaplib.IMAP4_SSL(
        stack.host, stack.ports["imaps"], ssl_context=stack.tls_context(), timeout=10
    )
    await client.wait_hello_from_server()
    try:
        answer = await client.login(user, password)
    finally:
        transport = client.protocol.transport
        await client.logout()  # LOGOUT is valid in every state
        # aioimaplib may leave the TLS transport open after LOGOUT: close it for good before
        # asyncio.run ends, or its ResourceWarning lands in some later test.
        if transport is not None:
            transport.abort()
    text = b" ".join(line for line in answer.lines if isinstance(line, bytes)).decode()
    return answer.result, text


def _pop3(stack: MailStack, user: str, password: str) -> tuple[bool, str]:
    client = poplib.POP3(stack.host, stack.ports["pop3"], timeout=10)
    try:
        client.stls(stack.tls_context())
        client.user(user)
        try:
            return True, client.pass_(password).decode()
        except poplib.error_proto as exc:
            return False, str(exc)
    finally:
        client.close()


def _smtp(stack: MailStack, user: str, password: str) -> tuple[int, str]:
    with smtplib.SMTP(stack.host, stack.ports["submission"], timeout=10) as client:
        client.starttls(context=stack.tls_context())
        try:
            code, text = client.login(user, password)
        except smtplib.SMTPAuthenticationError as exc:
            code, text = exc.smtp_code, exc.smtp_error
        return code, text.decode("utf-8", "replace")


def _temporary(stack: MailStack) -> str:
    user = f"t{uuid.uuid4().hex[:8]}@{stack.domain}"
    stack.add_mailbox(user, TEMP, "--temporary")
    return user


def test_temporary_password_refused_with_the_portal_named(mailstack: MailStack) -> None:
    """IMAP (NO [ALERT]), IMAPS, POP3 and SMTP AUTH refuse it, each naming the portal URL."""
    portal = _settings(mailstack).portal_url()
    user = _temporary(mailstack)
    ok, text = _imap(mailstack, user, TEMP)
    assert not ok
    assert "[ALERT]" in text and portal in text, text
    result, text = asyncio.run(_aioimap(mailstack, user, TEMP))
    assert (result, portal in text) == ("NO", True), text
    ok, text = _pop3(mailstack, user, TEMP)
    assert not ok
    assert portal in text, text
    code, text = _smtp(mailstack, user, TEMP)
    assert code == 535
    assert portal in text, text


def test_wrong_password_learns_nothing_about_the_temporary_one(mailstack: MailStack) -> None:
    """A wrong password gets the plain failure: the reason is given only after the password."""
    portal = _settings(mailstack).portal_url()
    user = _temporary(mailstack)
    ok, imap_text = _imap(mailstack, user, "Wrong-Passw0rd!")
    pop_ok, pop_text = _pop3(mailstack, user, "Wrong-Passw0rd!")
    code, smtp_text = _smtp(mailstack, user, "Wrong-Passw0rd!")
    assert (ok, pop_ok, code) == (False, False, 535)
    assert "AUTHENTICATIONFAILED" in imap_text
    assert [t for t in (imap_text, pop_text, smtp_text) if portal in t] == []


def test_after_the_owner_sets_a_password_over_the_api_mail_clients_log_in(
    mailstack: MailStack,
) -> None:
    """PUT /api/v1/account/password on a real mailprov serve; then IMAP, POP3 and SMTP accept it."""
    user = _temporary(mailstack)
    settings = _settings(mailstack)
    store = open_store(mailstack.store_url)
    try:
        with serving(settings, store) as url, httpx.Client(base_url=url, timeout=30) as web:
            signed = web.post("/api/v1/session", json={"address": user, "password": TEMP})
            assert signed.status_code == 201, signed.text
            assert signed.json()["stage"] == "change-password"
            changed = web.put(
                "/api/v1/account/password",
                json={"current": TEMP, "new": OWN},
                headers={"X-CSRF-Token": signed.json()["csrf_token"]},
            )
            assert changed.status_code == 200, changed.text
    finally:
        store.close()
    assert _imap(mailstack, user, OWN)[0], mailstack.log()
    assert asyncio.run(_aioimap(mailstack, user, OWN))[0] == "OK"
    assert _pop3(mailstack, user, OWN)[0]
    assert _smtp(mailstack, user, OWN)[0] == 235
    ok, text = _imap(mailstack, user, TEMP)
    assert not ok
    assert "AUTHENTICATIONFAILED" in text


def test_ordinary_password_is_not_held_up(mailstack: MailStack) -> None:
    """The second passdb lets an ordinary password through on every protocol."""
    user = f"p{uuid.uuid4().hex[:8]}@{mailstack.domain}"
    mailstack.add_mailbox(user, OWN)
    assert _imap(mailstack, user, OWN)[0]
    assert _pop3(mailstack, user, OWN)[0]
    assert _smtp(mailstack, user, OWN)[0] == 235


@pytest.fixture(scope="module", name="lenient_stack")
def fixture_lenient_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailStack]:
    """A SQLite stack rendered with temporary_login = "until-expiry" (today's behaviour)."""
    _require_servers()
    folder: Path = tmp_path_factory.mktemp("lenient")
    stack = start_stack(
        f"sqlite:///{folder}/mailprov.sqlite",
        name="ue",
        extra_toml='\n[passwords]\ntemporary_login = "until-expiry"\n',
    )
    try:
        yield stack
    finally:
        stack.stop()


def test_until_expiry_lets_a_temporary_password_log_in(lenient_stack: MailStack) -> None:
    """With "until-expiry" an unexpired temporary password works in IMAP, POP3 and SMTP AUTH."""
    assert "dovecot-sql-temporary" not in lenient_stack.dovecot_conf.read_text()
    user = _temporary(lenient_stack)
    assert _imap(lenient_stack, user, TEMP)[0]
    assert _pop3(lenient_stack, user, TEMP)[0]
    assert _smtp(lenient_stack, user, TEMP)[0] == 235
