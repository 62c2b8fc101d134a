"""Recovery contacts on the portal, in a real browser: add one (the code, caught by the relay,
is sent to it), a wrong code refused, the right one confirms it, the API lists it verified,
and it is removed; the last verified contact stays. In English without JavaScript, in
Russian with it (and axe)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from mailprov.testing import RelayRunner
from tests.web.conftest import OwnerSite
from tests.web.portal.test_two_factor_page import sign_in

WORDS = {
    "en": {
        "sent": "A code was sent to",
        "waiting": "waiting for the code",
        "confirmed": "is confirmed",
        "removed": "was removed",
        "wrong": "The code is incorrect.",
        "last": "last confirmed",
    },
    "ru": {
        "sent": "Код отправлен на",
        "waiting": "ожидает код",
        "confirmed": "подтверждён",
        "removed": "удалён",
        "wrong": "Неверный код.",
        "last": "последний подтверждённый",
    },
}


def _contacts(owner: OwnerSite, address: str, password: str) -> dict[str, bool]:
    """The API's list: contact -> verified."""
    with owner.client() as api:
        owner.sign_in(api, address, password)
        listed = api.get("/api/v1/account/contacts").json()["contacts"]
    return {c["contact"]: c["verified"] for c in listed}


def _add_and_confirm(person: Any, relay: RelayRunner, contact: str, *, wrong: bool) -> str:
    """Add ``contact``; optionally a wrong code first; then the code from the relay."""
    page, words = person.page, WORDS[person.lang]
    page.fill("#contact", contact)
    person.submit("#add")
    assert words["sent"] in person.text()
    assert words["waiting"] in person.text("#contacts")
    code: str = relay.wait_for(to=contact).code(r"contact for the mailbox \S+ is (\w+)\.")
    item = page.locator("#contacts li", has_text=contact)
    if wrong:
        item.locator("input[name=code]").fill("999999" if code != "999999" else "111111")
        person.submit(f"#contacts li:has-text('{contact}') button.confirm")
        assert words["wrong"] in person.text("#problem")
        item = page.locator("#contacts li", has_text=contact)
    item.locator("input[name=code]").fill(code)
    person.submit(f"#contacts li:has-text('{contact}') button.confirm")
    assert words["confirmed"] in person.text()
    return code


@pytest.mark.parametrize(("lang", "javascript"), [("en", False), ("ru", True)])
def test_contact_added_confirmed_removed(
    visit: Any, owner: OwnerSite, mail_relay: RelayRunner, lang: str, javascript: bool
) -> None:
    """The full round: add, the code from the relay, confirm; a second one; remove one; the
    last verified one cannot be removed."""
    address, password = owner.mailbox()
    person = visit(lang, javascript=javascript)
    page, words = person.page, WORDS[lang]
    sign_in(person, address, password)
    page.click("a[href='/account/recovery']")
    assert page.url.endswith("/account/recovery")
    first = f"first-{secrets.token_hex(4)}@elsewhere.test"
    second = f"second-{secrets.token_hex(4)}@elsewhere.test"
    code = _add_and_confirm(person, mail_relay, first, wrong=True)
    if javascript:
        person.shot("recovery")
    assert _contacts(owner, address, password) == {first: True}
    # The only verified contact stays.
    person.submit(f"#contacts li:has-text('{first}') button.remove")
    assert words["last"] in person.text("#problem")
    assert first in person.text("#contacts")
    owner.clock.offset += owner.services.settings.identity.resend_seconds  # one code a minute
    _add_and_confirm(person, mail_relay, second, wrong=False)
    person.submit(f"#contacts li:has-text('{first}') button.remove")
    assert words["removed"] in person.text()
    assert first not in person.text("#contacts")
    assert _contacts(owner, address, password) == {second: True}
    if javascript:
        person.check_accessible()
    person.assert_clean(password, code)
