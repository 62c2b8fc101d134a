"""The sign-in's second step in a real browser: with two-factor authentication on (turned on
through the API), the portal asks for the authenticator's code before the account opens; a
wrong code is a page that says so, in Russian."""

from __future__ import annotations

from typing import Any

from tests.web.conftest import OwnerSite
from tests.web.test_twofactor import enrol, next_code


def test_sign_in_asks_for_the_code(visit: Any, owner: OwnerSite) -> None:
    """Address and password lead to the code page; nothing else opens before the code; a wrong
    code is refused; the right one opens the account."""
    address, password = owner.mailbox()
    with owner.client() as api:
        owner.sign_in(api, address, password)
        secret, _ = enrol(owner, api, address)
    person = visit("ru")
    page = person.page
    person.open("/signin")
    page.fill("#address", address)
    page.fill("#password", password)
    person.submit("main button[type=submit]")
    assert page.url.endswith("/signin/code")
    person.open("/account")
    assert page.url.endswith("/signin/code")  # the account waits for the code
    page.fill("#code", "000000")
    person.submit("main button[type=submit]")
    assert "Код неверный." in person.text("#problem")
    person.shot("second-factor")
    code = next_code(owner, secret)
    page.fill("#code", code)
    person.submit("main button[type=submit]")
    assert page.url.endswith("/account")
    person.assert_clean(password, code)
