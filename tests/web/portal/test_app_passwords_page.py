"""App passwords on the portal, in a real browser: created with a label, the password shown
once (gone on reload, never in a URL), listed by label, revoked. In English without
JavaScript, in Russian with it (and axe)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import OwnerSite
from tests.web.portal.test_two_factor_page import sign_in

WORDS = {
    "en": {"once": "shown once", "revoked": "was revoked", "none": "No app passwords yet."},
    "ru": {
        "once": "показывается один раз",
        "revoked": "отозван",
        "none": "Паролей приложений пока нет.",
    },
}


@pytest.mark.parametrize(("lang", "javascript"), [("en", False), ("ru", True)])
def test_app_password_shown_once_and_revoked(
    visit: Any, owner: OwnerSite, lang: str, javascript: bool
) -> None:
    """Create: the password once, the label in the list (and in the API's); reload: the password
    is gone, the label stays; revoke: the list is empty again."""
    address, password = owner.mailbox()
    person = visit(lang, javascript=javascript)
    page, words = person.page, WORDS[lang]
    sign_in(person, address, password)
    page.click("a[href='/account/app-passwords']")
    assert page.url.endswith("/account/app-passwords")
    assert words["none"] in person.text()
    label = "Thunderbird на ноутбуке" if lang == "ru" else "Thunderbird on the laptop"
    page.fill("#label", label)
    person.submit("#create")
    secret = person.text("#new-app-password")
    assert len(secret) >= 16
    assert words["once"] in person.text("#created")
    assert label in person.text("#app-passwords")
    if javascript:
        person.shot("app-password-created")
    page.reload()
    assert page.locator("#new-app-password").count() == 0  # shown once
    assert secret not in page.content()
    assert label in person.text("#app-passwords")
    with owner.client() as api:
        owner.sign_in(api, address, password)
        listed = api.get("/api/v1/account/app-passwords").json()["app_passwords"]
    assert [p["label"] for p in listed] == [label]
    assert "password" not in listed[0]

    person.submit("#app-passwords button[type=submit]")
    assert words["revoked"] in person.text()
    assert page.locator("#app-passwords").count() == 0
    assert words["none"] in person.text()
    if javascript:
        person.check_accessible()
    person.assert_clean(password, secret)
