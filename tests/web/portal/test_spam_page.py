"""The spam settings on the portal, in a real browser: reached from the account page, the form
shows the mailbox's own values and the defaults it would take; a save is shown again and is
the API's; "default" and an empty threshold hand both back; a threshold at the reject score
is refused and changes nothing. In English without JavaScript, in Russian with it (and axe)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import OwnerSite
from tests.web.portal.test_two_factor_page import sign_in

WORDS = {
    "en": {"saved": "Saved", "refused": "not accepted", "junk": "Junk folder"},
    "ru": {"saved": "Сохранено", "refused": "не принято", "junk": "«Спам»"},
}


def _spam(owner: OwnerSite, address: str, password: str) -> Any:
    """GET /api/v1/account/spam."""
    with owner.client() as api:
        owner.sign_in(api, address, password)
        return api.get("/api/v1/account/spam").json()


@pytest.mark.parametrize(("lang", "javascript"), [("en", False), ("ru", True)])
def test_spam_settings_saved_shown_and_in_the_api(
    visit: Any, owner: OwnerSite, lang: str, javascript: bool
) -> None:
    """The form starts on the defaults; a threshold and "the inbox" are saved as the
    mailbox's own; clearing both goes back; a refused threshold changes nothing."""
    address, password = owner.mailbox()
    person = visit(lang, javascript=javascript)
    page, words = person.page, WORDS[lang]
    sign_in(person, address, password)
    page.click("a[href='/account/spam']")
    assert page.url.endswith("/account/spam")
    site = owner.services.settings.rspamd
    assert page.input_value("#to_junk") == "default"
    assert page.input_value("#threshold") == ""
    assert page.get_attribute("#threshold", "placeholder") == f"{site.spam_threshold:g}"
    assert words["junk"] in person.text("#now")

    page.fill("#threshold", "4.5")
    page.select_option("#to_junk", "no")
    person.submit("#save")
    assert words["saved"] in person.text("#saved")
    if javascript:
        person.shot("spam")
    assert page.input_value("#threshold") == "4.5"
    assert page.input_value("#to_junk") == "no"
    saved = _spam(owner, address, password)
    assert saved["own"] == {"threshold": 4.5, "to_junk": False}
    assert (saved["threshold_from"], saved["to_junk_from"]) == ("mailbox", "mailbox")

    # At the reject score: the browser's own check holds it back (max is below it)...
    page.fill("#threshold", f"{site.reject_score:g}")
    assert page.get_attribute("#threshold", "max") == f"{site.reject_score - 0.01:g}"
    if javascript:
        assert page.eval_on_selector("#threshold", "e => e.validity.rangeOverflow")
        # ...and a browser without that check is refused by the server: the typed value
        # is shown again, nothing changed.
        page.eval_on_selector("#threshold", "e => e.removeAttribute('max')")
        person.submit("#save")
        assert words["refused"] in person.text("#problem")
        assert page.input_value("#threshold") == f"{site.reject_score:g}"
    assert _spam(owner, address, password)["own"] == saved["own"]

    page.fill("#threshold", "")
    page.select_option("#to_junk", "default")
    person.submit("#save")
    assert words["saved"] in person.text("#saved")
    assert _spam(owner, address, password)["own"] == {"threshold": None, "to_junk": None}
    if javascript:
        person.check_accessible()
    person.assert_clean(password)
