"""Forwarding, the vacation reply and rules on the portal, in a real browser: the form filled
with what the API saved (dates it does not show survive a save), saved again with changes,
shown again as saved and returned by GET /api/v1/filters; a refused rule changes nothing.
Pigeonhole's own sievec checks every save. In English without JavaScript, in Russian with it
(and axe)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.web.conftest import OwnerSite
from tests.web.portal.test_two_factor_page import sign_in

pytestmark = pytest.mark.requires_dovecot

WORDS = {
    "en": {"saved": "Saved", "refused": "nothing was changed"},
    "ru": {"saved": "Сохранено", "refused": "ничего не изменено"},
}


def _filters(owner: OwnerSite, address: str, password: str, put: Any = None) -> Any:
    """GET /api/v1/filters (after a PUT of ``put``, if given)."""
    with owner.client() as api:
        owner.sign_in(api, address, password)
        if put is not None:
            answer = api.put("/api/v1/filters", json=put)
            assert answer.status_code == 200, answer.text
        return api.get("/api/v1/filters").json()


@pytest.mark.parametrize(("lang", "javascript"), [("en", False), ("ru", True)])
def test_filters_saved_shown_and_in_the_api(
    visit: Any, owner: OwnerSite, lang: str, javascript: bool
) -> None:
    """The form shows the API's filters; changes saved here are shown again and are the API's."""
    address, password = owner.mailbox()
    first = {
        "vacation": {"subject": "Away", "body": "Back soon.", "days": 3, "start": "2026-07-01"},
        "rules": [{"field": "from", "contains": "spam@", "action": "discard"}],
    }
    _filters(owner, address, password, put=first)
    person = visit(lang, javascript=javascript)
    page, words = person.page, WORDS[lang]
    sign_in(person, address, password)
    page.click("a[href='/account/filters']")
    assert page.url.endswith("/account/filters")
    assert page.input_value("#vacation_subject") == "Away"
    assert page.input_value("[name='rule-0-contains']") == "spam@"

    forward = f"copy-{secrets.token_hex(3)}@example.net"
    page.fill("#forward_to", forward)
    page.uncheck("#keep")
    page.fill("#vacation_subject", "Отпуск" if lang == "ru" else "On holiday")
    page.fill("#vacation_body", "Back on Monday.\nRegards")
    page.fill("#vacation_days", "5")
    page.fill("[name='rule-0-contains']", "")  # removes the discard rule
    page.select_option("[name='rule-1-field']", "subject")
    page.fill("[name='rule-1-contains']", "[news]")
    page.select_option("[name='rule-1-action']", "move")
    page.fill("[name='rule-1-folder']", "Lists/News")
    person.submit("#save")
    assert words["saved"] in person.text("#saved")
    if javascript:
        person.shot("filters")

    # Shown again as saved...
    assert page.input_value("#forward_to") == forward
    assert not page.is_checked("#keep")
    assert page.is_checked("#vacation")
    assert page.input_value("#vacation_days") == "5"
    assert page.input_value("[name='rule-0-contains']") == "[news]"
    assert page.input_value("[name='rule-0-folder']") == "Lists/News"
    assert page.input_value("[name='rule-1-contains']") == ""
    # ... and the API's (the vacation's start date, not on the form, survived).
    saved = _filters(owner, address, password)
    assert saved["kind"] == "forms"
    assert saved["forwarding"] == {"to": [forward], "keep": False}
    vacation = saved["vacation"]
    assert (vacation["subject"], vacation["days"], vacation["start"]) == (
        page.input_value("#vacation_subject"),
        5,
        "2026-07-01",
    )
    assert vacation["body"] == "Back on Monday.\nRegards"
    assert saved["rules"] == [
        {
            "field": "subject",
            "contains": "[news]",
            "action": "move",
            "folder": "Lists/News",
            "mark_read": False,
        }
    ]
    assert saved["active_script"] == saved["script_name"]

    # A move rule without a folder: refused, nothing changed.
    page.fill("[name='rule-1-contains']", "[ads]")
    page.select_option("[name='rule-1-action']", "move")
    person.submit("#save")
    assert words["refused"] in person.text("#problem")
    assert _filters(owner, address, password)["rules"] == saved["rules"]
    if javascript:
        person.check_accessible()
    person.assert_clean(password)


PROBLEM = {
    "en": {"forward": "Give whole mail addresses", "body": "at most 10,000 characters"},
    "ru": {"forward": "Укажите полные почтовые адреса", "body": "не длиннее 10 000 символов"},
}


@pytest.mark.parametrize(("lang", "javascript"), [("en", False), ("ru", True)])
def test_a_refused_form_keeps_what_was_typed(
    visit: Any, owner: OwnerSite, lang: str, javascript: bool
) -> None:
    """A bad forwarding address (and, with JavaScript to lift the field's limit, a vacation text
    too long for the API): the form comes back as typed, the refused field marked with what
    it needs; nothing was saved."""
    address, password = owner.mailbox()
    person = visit(lang, javascript=javascript)
    page, words = person.page, PROBLEM[lang]
    sign_in(person, address, password)
    person.open("/account/filters")
    page.fill("#forward_to", "not-an-address")
    page.check("#vacation")
    page.fill("#vacation_subject", "Away")
    page.fill("#vacation_body", "Back on Monday.\nRegards")
    page.fill("#vacation_days", "4")
    page.fill("[name='rule-0-contains']", "[news]")
    page.select_option("[name='rule-0-action']", "move")
    page.fill("[name='rule-0-folder']", "Lists/News")
    person.submit("#save")
    assert WORDS[lang]["refused"] in person.text("#problem")
    assert words["forward"] in person.text("#forward_to-problem")
    assert page.get_attribute("#forward_to", "aria-invalid") == "true"
    assert page.input_value("#forward_to") == "not-an-address"
    assert page.is_checked("#vacation")
    assert page.input_value("#vacation_subject") == "Away"
    assert page.input_value("#vacation_body") == "Back on Monday.\nRegards"
    assert page.input_value("#vacation_days") == "4"
    assert page.input_value("[name='rule-0-contains']") == "[news]"
    assert page.input_value("[name='rule-0-folder']") == "Lists/News"
    assert page.get_attribute("#vacation_body", "aria-invalid") is None
    if javascript:
        person.check_accessible()
        long = "x" * 10_001
        page.evaluate("document.querySelector('#vacation_body').removeAttribute('maxlength')")
        page.fill("#forward_to", "")
        page.fill("#vacation_body", long)
        person.submit("#save")
        assert words["body"] in person.text("#vacation_body-problem")
        assert page.input_value("#vacation_body") == long  # too large for a cookie: kept in memory
        assert page.input_value("#vacation_subject") == "Away"
        assert page.input_value("[name='rule-0-folder']") == "Lists/News"
        person.shot("filters-refused")
        person.open("/account/filters")  # a reload shows what is saved
        assert page.input_value("#vacation_body") == ""
    assert _filters(owner, address, password)["rules"] == []
    person.assert_clean(password)


def test_the_rules_on_a_phone_are_blocks(visit: Any, owner: OwnerSite) -> None:
    """On a phone each rule is a block whose cells are named by their column (in Russian,
    whose words are the longest), and the page passes axe."""
    address, password = owner.mailbox()
    rule = {"field": "to", "contains": "team@", "action": "mark-read"}
    _filters(owner, address, password, put={"rules": [rule]})
    phone = visit("ru", phone=True)
    sign_in(phone, address, password)
    phone.open("/account/filters")
    row = phone.page.locator("#rules tbody tr").first
    assert (
        phone.page.evaluate("row => getComputedStyle(row).display", row.element_handle()) == "grid"
    )
    cell = row.locator("td").nth(2)
    label = phone.page.evaluate(
        "cell => getComputedStyle(cell, '::before').content", cell.element_handle()
    )
    assert label == '"Действие"'
    phone.shot("filters")
    phone.assert_clean(password)
