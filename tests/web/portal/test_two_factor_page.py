"""Two-factor authentication set up and turned off on the portal, in a real browser: the QR
code and the key shown on the page, a first code (computed with pyotp from that key) and the
password turn it on, the recovery codes are shown once, the next sign-in asks for a code, and
the password turns it off. In English without JavaScript, in Russian with it (and axe)."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest

from tests.web.conftest import OwnerSite
from tests.web.test_twofactor import next_code, server_time

WORDS = {
    "en": {"on": "is on", "off": "is off", "wrong": "code is wrong"},
    "ru": {"on": "включена", "off": "выключена", "wrong": "Код неверный."},
}


def sign_in(person: Any, address: str, password: str) -> None:
    """Address and password on the sign-in form."""
    person.open("/signin")
    person.page.fill("#address", address)
    person.page.fill("#password", password)
    person.submit("main button[type=submit]")


def turn_on(person: Any, owner: OwnerSite, password: str) -> tuple[str, str]:
    """Start the set-up, give a wrong code, then the right one; returns the key and the code."""
    page, words = person.page, WORDS[person.lang]
    person.submit("#start")
    secret = person.text("#totp-secret")
    assert len(secret) >= 16
    assert page.locator("img.qr").get_attribute("src").startswith("data:image/svg+xml;base64,")
    if person.javascript:
        person.shot("two-factor-setup")
    # A wrong code: refused, and the same key is still shown to try again.
    page.fill("#code", "000000")
    page.fill("#password", password)
    person.submit("#confirm")
    assert words["wrong"] in person.text("#problem")
    assert person.text("#totp-secret") == secret
    code = next_code(owner, secret)
    page.fill("#code", code)
    page.fill("#password", password)
    person.submit("#confirm")
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    assert len(set(codes)) == 10
    return secret, code


@pytest.mark.parametrize(("lang", "javascript"), [("en", False), ("ru", True)])
def test_two_factor_on_and_off(visit: Any, owner: OwnerSite, lang: str, javascript: bool) -> None:
    """Set up (QR code, key), a wrong code refused, the right one turns it on; the recovery
    codes are shown once; sign-in then asks for the code; the password turns it off."""
    address, password = owner.mailbox()
    person = visit(lang, javascript=javascript)
    page, words = person.page, WORDS[lang]
    sign_in(person, address, password)
    assert page.url.endswith("/account")
    page.click("a[href='/account/two-factor']")
    assert page.url.endswith("/account/two-factor")
    secret, code = turn_on(person, owner, password)
    assert WORDS[lang]["on"] in person.text()
    if javascript:
        person.shot("two-factor-codes")
    page.reload()
    assert page.locator("#recovery-codes").count() == 0  # shown once
    assert page.locator("#totp-secret").count() == 0
    assert words["on"] in person.text()

    # A new browser: the password alone no longer opens the account.
    other = visit(lang, javascript=javascript)
    sign_in(other, address, password)
    assert other.page.url.endswith("/signin/code")
    other.open("/account")
    assert other.page.url.endswith("/signin/code")
    owner.clock.offset += 30
    second = pyotp.TOTP(secret).at(server_time(owner))
    other.page.fill("#code", second)
    other.submit("main button[type=submit]")
    assert other.page.url.endswith("/account")

    other.open("/account/two-factor")
    other.page.fill("#off-password", password)
    other.submit("#turn-off")
    assert words["off"] in other.text()
    assert other.page.locator("#start").count() == 1
    if javascript:
        other.check_accessible()
    person.assert_clean(password, secret, code)
    other.assert_clean(password, second)
