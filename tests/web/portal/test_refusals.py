"""Refusals shown as pages in a real browser: what happened, what to do, and the application's
number — low assurance, an unverified identity, a name that does not match, five wrong codes
(Russian plurals on the way), an expired code, a taken address and unaccepted terms; and the
whole way without JavaScript."""

from __future__ import annotations

import re
import secrets
from typing import Any

from mailprov.services import provisioning
from mailprov.testing import RelayRunner
from tests.web.conftest import OwnerSite
from tests.web.portal.test_journey import NUMBER


def _recovery() -> str:
    return f"refused-{secrets.token_hex(4)}@home.example"


def _apply(person: Any, recovery: str, *, local: str | None = None, name: str = "") -> str:
    """Fill the application form and send it; returns the application's number."""
    page = person.page
    person.open("/apply")
    page.fill("#local", local or f"ref-{secrets.token_hex(4)}")
    page.fill("#recovery", recovery)
    if name:
        page.fill("#name", name)
    page.check("#accept_terms")
    person.submit("button[value=apply]")
    found = NUMBER.search(person.text("h1"))
    assert found is not None, person.text()
    return found.group(0)


def _prove(
    person: Any, *, given: str = "Test", family: str = "Person", level: str = "ial2"
) -> None:
    """Go through the TEST identity provider."""
    person.submit("a[href='/identity/test-provider']")
    person.page.fill("#given_name", given)
    person.page.fill("#family_name", family)
    person.page.select_option("#level", level)
    person.submit("main button[type=submit]")


def _problem(person: Any) -> str:
    return person.text("#problem")


def test_low_assurance_is_refused_and_the_application_stays_open(visit: Any) -> None:
    """An identity verified below the required level (ial1): the page says so, names the
    number and the check, and the application stays open for a better proof."""
    person = visit("en")
    number = _apply(person, _recovery())
    _prove(person, given="Low", family=secrets.token_hex(3), level="ial1")
    problem = _problem(person)
    assert "Your identity is verified at too low a level." in problem
    assert "Raise the level of your account" in problem
    assert number in problem
    assert "IDG-V02" in problem
    assert "Waiting for proof of identity" in person.text(".state")
    person.shot("refused-low-assurance")
    person.assert_clean()


def test_unverified_identity_by_pasted_token_without_javascript(
    visit: Any, owner: OwnerSite
) -> None:
    """A pasted token whose identity is not verified under an accepted framework (eIDAS, when
    only NIST 800-63A is trusted) is refused in Russian, naming the number."""
    from mailprov.services import testissuer

    person = visit("ru", javascript=False)
    number = _apply(person, _recovery())
    nonce = person.page.locator("#token-hint code").text_content()
    token = testissuer.issue_token(
        owner.folder / "test-issuer",
        nonce=nonce,
        sub=f"unverified-{secrets.token_hex(3)}",
        level="high",
        framework="eidas",
        now=int(owner.clock()),
    )
    person.page.click("summary >> nth=0")
    person.page.fill("#token", token)
    person.submit("form[action='/application/token'] button")
    problem = _problem(person)
    assert "Ваша личность не подтверждена." in problem
    assert number in problem
    assert "IDG-V01" in problem
    person.assert_clean(token)


def test_name_mismatch_rejects_the_application(visit: Any) -> None:
    """A name given on the form that the verified identity does not carry: rejected, with the
    reason in words, and a way to apply again."""
    person = visit("en")
    number = _apply(person, _recovery(), name="Boris Petrov")
    _prove(person, family=secrets.token_hex(3))
    problem = _problem(person)
    assert "The verified name does not match the name in the application." in problem
    assert number in problem
    state = person.text(".state")
    assert "State: Rejected" in state
    assert "IDG-V05" in state
    assert person.page.locator("a[href='/apply'].button").count() == 1
    person.shot("refused-name-mismatch")


def test_five_wrong_codes_lock_then_a_new_code_unlocks(
    visit: Any, owner: OwnerSite, mail_relay: RelayRunner
) -> None:
    """Each wrong code says how many tries are left in correct Russian plurals; the fifth locks
    the application (the code form goes, 'send a new code' stays); a new code unlocks it."""
    person = visit("ru")
    recovery = _recovery()
    _apply(person, recovery)
    _prove(person, family=secrets.token_hex(3))
    code = mail_relay.wait_for(to=recovery, subject="Confirmation code").code(r"is (\d{6})\.")
    wrong = "000000" if code != "000000" else "111111"
    expected = {
        4: "Осталось 4 попытки.",
        3: "Осталось 3 попытки.",
        2: "Осталось 2 попытки.",
        1: "Осталась 1 попытка.",
        0: "Осталось 0 попыток.",
    }
    for left in (4, 3, 2, 1, 0):
        person.page.fill("#code", wrong)
        person.submit("form[action='/application/confirm'] button")
        problem = _problem(person)
        assert "Неверный код." in problem
        assert expected[left] in problem
    assert "Заблокирована после неверных кодов" in person.text(".state")
    assert person.page.locator("#code").count() == 0
    person.shot("refused-locked")

    owner.clock.offset = 61  # a new code may be asked for a minute after the last
    person.submit("form[action='/application/resend'] button")
    fresh = mail_relay.wait_for(to=recovery, subject="Confirmation code", count=2)[1]
    person.page.fill("#code", fresh.code(r"is (\d{6})\."))
    person.submit("form[action='/application/confirm'] button")
    assert person.page.url.endswith("/application/credentials")


def test_expired_code(visit: Any, owner: OwnerSite, mail_relay: RelayRunner) -> None:
    """A code typed after its ten minutes: the page says it expired and to ask for another."""
    person = visit("en")
    recovery = _recovery()
    number = _apply(person, recovery)
    _prove(person, family=secrets.token_hex(3))
    code = mail_relay.wait_for(to=recovery, subject="Confirmation code").code(r"is (\d{6})\.")
    owner.clock.offset = 601
    person.page.fill("#code", code)
    person.submit("form[action='/application/confirm'] button")
    problem = _problem(person)
    assert "The code has expired." in problem
    assert "Ask for a new code" in problem
    assert number in problem
    person.shot("refused-expired-code")


def test_taken_address_and_terms_without_javascript(
    visit: Any, owner: OwnerSite, mail_relay: RelayRunner
) -> None:
    """Without JavaScript: the server checks the address, offers suggestions as buttons, keeps
    the form's fields after a refusal (unaccepted terms, a taken address), and the whole way
    to the account works with plain forms and a pasted token."""
    person = visit("en", javascript=False)
    page = person.page
    taken, _ = owner.mailbox()
    recovery = _recovery()
    person.open("/apply")
    page.fill("#local", taken)
    page.fill("#recovery", recovery)
    person.submit("button[value=apply]")  # terms not ticked
    assert "The terms of service were not accepted." in _problem(person)
    assert taken == page.input_value("#local")
    assert recovery == page.input_value("#recovery")
    page.check("#accept_terms")
    person.submit("button[value=apply]")
    assert "That address is already taken." in _problem(person)
    before = len(provisioning.list_requests(owner.services.store))

    person.submit("#check-button")
    assert "is taken" in person.text("#availability")
    buttons = page.locator("#availability button.suggestion")
    assert buttons.count() >= 3
    chosen = buttons.first.inner_text()
    person.submit("#availability button.suggestion >> nth=0")
    assert f"{chosen} is free." in person.text("#availability")
    assert before == len(provisioning.list_requests(owner.services.store))
    page.check("#accept_terms")
    page.fill("#recovery", recovery)
    person.submit("button[value=apply]")
    assert page.url.endswith("/application")

    token, code, password, own = _rest_without_javascript(
        person, owner, mail_relay, chosen, recovery
    )
    assert page.url.endswith("/account")
    assert re.search(r"Password changed", person.text())
    person.assert_clean(token, password, code, own)


def _rest_without_javascript(
    person: Any, owner: OwnerSite, mail_relay: RelayRunner, chosen: str, recovery: str
) -> tuple[str, str, str, str]:
    """A pasted token, the code, the credentials, the first sign-in's change, without scripts.

    Returns the token, the code, the temporary password and the new one."""
    from mailprov.services import testissuer

    page = person.page
    nonce = person.page.locator("#token-hint code").text_content()
    token = testissuer.issue_token(
        owner.folder / "test-issuer",
        nonce=nonce,
        sub=f"nojs-{secrets.token_hex(3)}",
        level="ial2",
        now=int(owner.clock()),
    )
    page.click("summary >> nth=0")
    page.fill("#token", token)
    person.submit("form[action='/application/token'] button")
    code = mail_relay.wait_for(to=recovery, subject="Confirmation code").code(r"is (\d{6})\.")
    page.fill("#code", code)
    person.submit("form[action='/application/confirm'] button")
    password = person.text("#temporary-password")
    person.open("/signin")
    page.fill("#address", chosen)
    page.fill("#password", password)
    person.submit("main button[type=submit]")
    own = f"Own-{secrets.token_hex(4)}-Pass!7"
    page.fill("#current", password)
    page.fill("#new", own)
    page.fill("#repeat", own + "x")
    person.submit("main button[type=submit]")
    assert "The two new passwords are not the same." in _problem(person)
    assert "" == page.input_value("#new")  # a password is never filled in again
    page.fill("#current", password)
    page.fill("#new", own)
    page.fill("#repeat", own)
    person.submit("main button[type=submit]")
    return token, code, password, own
