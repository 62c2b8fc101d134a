"""The personal-mailbox journey through the portal in a real browser, in English and Russian,
on a desktop and a phone screen: apply, a taken address and a picked suggestion (checked
live by the page's script), the TEST identity provider, the code caught by the relay, the
credentials shown once, the first sign-in's forced change, and the account page. On the
desktop it goes on to the real mail servers (``owner_stack``: Postfix + Dovecot on the
portal's own store and mail homes): IMAP with the new password, two-factor authentication
turned on (the main password then refused over IMAP), an app password that opens IMAP, and
a vacation reply set on the filters page answering a message sent through the real Postfix
(the reply caught where that Postfix relays). Every page passes axe-core; the main pages
are photographed (``make screenshots`` writes them for the README)."""

from __future__ import annotations

import imaplib
import plistlib
import re
import secrets
import smtplib
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from mailprov.testing import RelayRunner
from tests.integration.stack import MailStack
from tests.web.conftest import OwnerSite
from tests.web.portal.test_two_factor_page import turn_on

#: The desktop runs go on to the real Postfix + Dovecot.
STACK = (pytest.mark.requires_postfix, pytest.mark.requires_dovecot)
NUMBER = re.compile(r"[2-9A-Z]{4}-[2-9A-Z]{4}")
#: Words each language must show at some steps (the catalogue really is used).
WORDS = {
    "en": {
        "taken": "is taken",
        "verified": "Identity verified; waiting for the code",
        "once": "shown once",
        "forced": "temporary password",
        "events": ("Signed in", "Password changed"),
        "provisioned": "Complete: the mailbox exists",
        "saved": "Saved",
    },
    "ru": {
        "taken": "занят",
        "verified": "Личность подтверждена; ожидается код",
        "once": "показывается один раз",
        "forced": "временным паролем",
        "events": ("Вход", "Пароль изменён"),
        "provisioned": "Выполнена: ящик создан",
        "saved": "Сохранено",
    },
}
PEOPLE = {
    ("en", False): ("Anna", "Smith"),
    ("ru", False): ("Анна", "Иванова"),
    ("en", True): ("Ben", "Jones"),
    ("ru", True): ("Борис", "Петров"),
}


def _apply_with_a_suggestion(person: Any, taken: str, recovery: str) -> tuple[str, str, str]:
    """Type a taken address, see it refused live, pick a suggestion, apply.

    Returns the chosen address, the application's number and its key (shown once)."""
    page, words = person.page, WORDS[person.lang]
    person.open("/")
    assert page.locator("html").get_attribute("lang") == person.lang
    person.shot("home")
    person.open("/apply")
    page.fill("#local", taken.partition("@")[0])
    page.wait_for_selector("#availability .taken")
    assert words["taken"] in person.text("#availability")
    suggestions = page.locator("#availability button.suggestion")
    assert suggestions.count() >= 3
    person.shot("apply-taken")
    chosen = suggestions.first.inner_text()
    suggestions.first.click()
    page.wait_for_selector("#availability .free")
    assert chosen.partition("@")[0] == page.input_value("#local")
    page.fill("#recovery", recovery)
    page.check("#accept_terms")
    person.submit("button[value=apply]")
    assert page.url.endswith("/application")
    number = NUMBER.search(person.text("h1"))
    assert number is not None
    handle = person.text(".keep code.secret")
    assert len(handle) >= 40
    person.shot("identity")
    page.reload()
    assert 0 == page.locator(".keep").count()  # the key is shown once
    return chosen, number.group(0), handle


def _prove_and_confirm(
    person: Any, relay: RelayRunner, recovery: str, name: tuple[str, str]
) -> str:
    """The TEST identity provider, then the code from the relay; returns the code."""
    page = person.page
    person.submit("a[href='/identity/test-provider']")
    person.shot("test-provider")
    page.fill("#given_name", name[0])
    page.fill("#family_name", name[1])
    person.submit("main button[type=submit]")
    assert WORDS[person.lang]["verified"] in person.text()
    assert f"{name[0]} {name[1]}" in person.text(".facts >> nth=1")
    assert page.locator("input[name=name]").count() == 0  # the verified name is read-only
    person.shot("confirm")
    code: str = relay.wait_for(to=recovery, subject="Confirmation code").code(r"is (\d{6})\.")
    page.fill("#code", code)
    person.submit("form[action='/application/confirm'] button")
    return code


def _credentials_once(person: Any, chosen: str, number: str) -> str:
    """The credentials page with the client settings and profiles, then never again."""
    page = person.page
    assert page.url.endswith("/application/credentials")
    password: str = person.text("#temporary-password")
    shown = person.text()
    assert chosen in shown
    for port in ("993", "995", "465", "587", "mail.example.test"):
        assert port in shown
    assert "autoconfig.example.test/mail/config-v1.1.xml" in shown
    assert WORDS[person.lang]["once"] in shown
    person.shot("credentials")
    with page.expect_download() as download:
        page.click("a[href='/profile/apple.mobileconfig']")
    profile = Path(download.value.path()).read_bytes()
    assert chosen in str(plistlib.loads(profile))
    assert password.encode() not in profile
    page.go_back()  # the back button: the application's page, without the password
    assert page.url.endswith("/application")
    assert WORDS[person.lang]["provisioned"] in person.text()
    assert password not in page.content()
    forward = page.go_forward()  # and forward again: not shown a second time
    assert 410 == forward.status
    assert password not in page.content()
    assert number in person.text()  # the error names the application
    person.check_accessible()
    again = page.reload()
    assert 410 == again.status
    assert password not in page.content()
    return password


def _first_sign_in(person: Any, chosen: str, password: str) -> str:
    """Sign in with the temporary password: only the password page opens until it is changed;
    then the account page shows the events. Returns the new password."""
    page, words = person.page, WORDS[person.lang]
    person.open("/signin")
    page.fill("#address", chosen)
    page.fill("#password", password)
    person.submit("main button[type=submit]")
    assert page.url.endswith("/account/password")
    assert words["forced"] in person.text()
    person.shot("forced-change")
    person.open("/account")
    assert page.url.endswith("/account/password")  # nothing else until the change
    own = f"Own-{secrets.token_hex(4)}-Pass!7"
    page.fill("#current", password)
    page.fill("#new", own)
    page.fill("#repeat", own)
    person.submit("main button[type=submit]")
    assert page.url.endswith("/account")
    events = person.text("#events-title + table")
    for event in words["events"]:
        assert event in events
    person.shot("account")
    return own


def imap_login(stack: MailStack, address: str, password: str) -> bool:
    """Whether the stack's Dovecot lets ``address`` in with ``password`` over IMAPS (its
    certificate verified); a yes also selects the INBOX."""
    with imaplib.IMAP4_SSL(
        stack.host, stack.ports["imaps"], ssl_context=stack.tls_context(), timeout=10
    ) as imap:
        try:
            imap.login(address, password)
        except imaplib.IMAP4.error:
            return False
        return imap.select("INBOX", readonly=True)[0] == "OK"


def inbox_has(stack: MailStack, address: str, password: str, token: str) -> bool:
    """Whether a message whose subject has ``token`` reached the INBOX (waits up to 15 s)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with imaplib.IMAP4_SSL(
            stack.host, stack.ports["imaps"], ssl_context=stack.tls_context(), timeout=10
        ) as imap:
            imap.login(address, password)
            imap.select("INBOX", readonly=True)
            if imap.search(None, "SUBJECT", token)[1][0]:
                return True
        time.sleep(0.2)
    return False


def _two_factor_and_app_password(
    person: Any, owner: OwnerSite, stack: MailStack, chosen: str, own: str
) -> str:
    """The own password opens IMAP; two-factor on: it no longer does; an app password made
    on the portal does. Returns the app password."""
    page = person.page
    assert imap_login(stack, chosen, own), stack.log()
    page.click("a[href='/account/two-factor']")
    turn_on(person, owner, own)
    assert not imap_login(stack, chosen, own)  # the main password opens no mail client now
    person.open("/account/app-passwords")
    page.fill("#label", "IMAP")
    person.submit("#create")
    app_password: str = person.text("#new-app-password")
    assert imap_login(stack, chosen, app_password)
    assert not imap_login(stack, chosen, own)
    return app_password


def _vacation_answers(
    person: Any, stack: MailStack, relay: RelayRunner, chosen: str, app_password: str
) -> None:
    """A vacation reply set on the filters page answers a message that came in through the
    real Postfix; the reply goes out through it to the relay, and the message is kept."""
    page = person.page
    person.open("/account/filters")
    subject = "Отпуск до понедельника" if person.lang == "ru" else "Away until Monday"
    page.check("#vacation")
    page.fill("#vacation_subject", subject)
    page.fill("#vacation_body", "I read mail on Monday.")
    person.submit("#save")
    assert WORDS[person.lang]["saved"] in person.text("#saved")
    sender, token = f"friend-{secrets.token_hex(4)}@example.net", uuid.uuid4().hex
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, chosen, f"Hello {token}"
    message["Message-ID"] = f"<{token}@example.net>"
    message.set_content("Are you there?")
    with smtplib.SMTP(
        stack.host, stack.ports["smtp"], local_hostname="mx.example.net", timeout=10
    ) as smtp:
        smtp.send_message(message)
    reply = relay.wait_for(to=sender, timeout=30)
    assert subject == reply.subject
    assert "I read mail on Monday." in reply.text
    assert "<>" == reply.sender  # RFC 5230: the null envelope sender
    assert inbox_has(stack, chosen, app_password, token), stack.log()


@pytest.mark.parametrize(
    ("lang", "phone"),
    [
        pytest.param("en", False, marks=STACK),
        pytest.param("ru", False, marks=STACK),
        ("en", True),
        ("ru", True),
    ],
    ids=["en-desktop", "ru-desktop", "en-phone", "ru-phone"],
)
def test_personal_mailbox_journey(
    visit: Any,
    owner: OwnerSite,
    mail_relay: RelayRunner,
    request: pytest.FixtureRequest,
    lang: str,
    phone: bool,
) -> None:
    """Apply → taken address → suggestion → TEST provider → code → credentials once →
    forced change → account; on the desktop then IMAP on the real Dovecot, two-factor (the
    main password refused over IMAP), an app password (accepted) and a vacation reply
    answering through the real Postfix; axe on every page, no secret in any URL, no CSP
    violation."""
    person = visit(lang, phone=phone)
    taken, _ = owner.mailbox()
    recovery = f"portal-{secrets.token_hex(4)}@home.example"
    chosen, number, handle = _apply_with_a_suggestion(person, taken, recovery)
    code = _prove_and_confirm(person, mail_relay, recovery, PEOPLE[lang, phone])
    password = _credentials_once(person, chosen, number)
    own = _first_sign_in(person, chosen, password)
    secrets_seen = [handle, password, code, own]
    if not phone:  # the phone runs check the small screen's layout; the servers once a language
        stack: MailStack = request.getfixturevalue("owner_stack")
        app_password = _two_factor_and_app_password(person, owner, stack, chosen, own)
        _vacation_answers(person, stack, mail_relay, chosen, app_password)
        secrets_seen.append(app_password)
    person.assert_clean(*secrets_seen)
