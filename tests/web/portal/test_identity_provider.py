"""Identity by redirect from the portal, in a real browser, against a third-party OpenID
Connect provider (``oidc-provider-mock``): the application page's button goes to the
provider, its sign-in comes back through the API's callback to the portal's return page,
and the application goes on to the code; a denied sign-in comes back as a refusal."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from mailprov.testing import RelayRunner
from tests.web.conftest import OidcProvider, OwnerSite
from tests.web.test_oidc import verified_claims


def _apply(person: Any) -> str:
    recovery = f"idp-{secrets.token_hex(4)}@home.example"
    person.open("/apply")
    person.page.fill("#local", f"idp-{secrets.token_hex(4)}")
    person.page.fill("#recovery", recovery)
    person.page.check("#accept_terms")
    person.submit("button[value=apply]")
    return recovery


def test_sign_in_at_the_provider_and_back(
    visit: Any, owner: OwnerSite, oidc_provider: OidcProvider, mail_relay: RelayRunner
) -> None:
    """Button → the provider's page → sign in → the return page → the code step with the
    verified name; the code then provisions."""
    person = visit("en")
    page = person.page
    recovery = _apply(person)
    sub = f"sub-{secrets.token_hex(6)}"
    oidc_provider.set_user(
        sub, {"verified_claims": verified_claims(), "jti": secrets.token_urlsafe(16)}
    )
    person.submit("a[href='/application/identity-provider']")
    assert page.url.startswith(oidc_provider.url + "/oauth2/authorize")
    page.fill("input[name=sub]", sub)
    person.submit("button:has-text('Authorize')")
    assert "/requests/" in page.url
    assert "Your identity is verified." in person.text()
    person.shot("provider-return")
    person.submit("#continue")
    assert "Identity verified; waiting for the code" in person.text()
    code = mail_relay.wait_for(to=recovery, subject="Confirmation code").code(r"is (\d{6})\.")
    page.fill("#code", code)
    person.submit("form[action='/application/confirm'] button")
    assert page.url.endswith("/application/credentials")
    person.assert_clean(code)


def test_a_denied_sign_in_comes_back_as_a_refusal(visit: Any, oidc_provider: OidcProvider) -> None:
    """Deny at the provider: the return page says what happened and names the application,
    which stays open for another try."""
    person = visit("ru")
    _apply(person)
    person.submit("a[href='/application/identity-provider']")
    assert person.page.url.startswith(oidc_provider.url + "/oauth2/authorize")
    # The mock's own "Deny" drops the state (RFC 6749 wants it back; tests/web/test_oidc.py
    # shows the API's answer to that): come back as a conformant provider would.
    state = parse_qs(urlsplit(person.page.url).query)["state"][0]
    callback = "/api/v1/identity/oidc/callback?" + urlencode(
        {"error": "access_denied", "state": state}
    )
    person.open(callback)
    problem = person.text("#problem")
    assert "Поставщик идентификации отказал во входе." in problem
    assert "oidc-provider-refused" in problem
    assert "Номер заявки" in problem
    person.check_accessible()
    person.submit("#continue")
    assert "Ожидается подтверждение личности" in person.text()
