"""Password reset by identity, by redirect, over the API: ``POST
/api/v1/password-reset/identity/oidc`` starts it (the same answer for any address) and sends
the browser to the OpenID Connect provider (``oidc-provider-mock``) with the reset's nonce;
the provider's return through the shared callback checks the ID token, and the code goes
to the recovery contact; the callback works once, in the browser that started it."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import update

from mailprov.store.schema import mailboxes
from mailprov.testing import RelayRunner
from tests.web.conftest import OidcProvider, OwnerSite
from tests.web.recovery_kit import (
    RESET_SUBJECT,
    anonymous,
    audit_actions,
    audit_text,
    code_in,
    with_contact,
)
from tests.web.test_oidc import verified_claims

START = "/api/v1/password-reset/identity/oidc"
JSON = {"Accept": "application/json"}


def bound(owner: OwnerSite, provider: OidcProvider) -> tuple[str, str, str]:
    """A mailbox with a verified contact bound to a person at the provider: (address,
    contact, subject)."""
    address, _, contact = with_contact(owner)
    sub = f"sub-{secrets.token_hex(6)}"
    provider.set_user(sub, {"verified_claims": verified_claims(), "jti": secrets.token_urlsafe(16)})
    with owner.services.store.begin() as conn:
        conn.execute(
            update(mailboxes)
            .where(mailboxes.c.address == address)
            .values(identity=f"{provider.url}|{sub}")
        )
    return address, contact, sub


def at_provider(client: httpx.Client, url: str, sub: str) -> str:
    """Sign in at the provider's page as ``sub``; the callback URL it sends the browser to."""
    page = client.get(url)
    assert page.status_code == 200, page.text
    back = client.post(url, data={"sub": sub})
    assert back.status_code in {302, 303}, back.text
    return str(back.headers["location"])


def test_a_json_client_resets_by_redirect(
    owner: OwnerSite, oidc_provider: OidcProvider, mail_relay: RelayRunner
) -> None:
    """Start (binding cookie, the reset's nonce in the URL) -> provider -> callback as JSON: the
    code reaches the contact and gives a grant that sets the password; the callback does not
    work a second time."""
    address, contact, sub = bound(owner, oidc_provider)
    with anonymous(owner) as client:  # its own IP: the per-client limit counts by address
        started = client.post(START, json={"address": address}, headers=JSON)
        assert started.status_code == 202, started.text
        answer = started.json()
        assert answer["via"] == "identity"
        cookie = started.headers["set-cookie"]
        assert "mailprov_reset_oidc=" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie
        assert "Path=/api/v1" in cookie
        sent = parse_qs(urlsplit(answer["authorization_url"]).query)
        assert sent["nonce"] == [answer["nonce"]]
        assert sent["code_challenge_method"] == ["S256"]

        callback = at_provider(client, answer["authorization_url"], sub)
        assert urlsplit(callback).path == "/api/v1/identity/oidc/callback"
        binding = client.cookies.get("mailprov_reset_oidc", path="/api/v1")
        assert binding
        done = client.get(callback, headers=JSON)
        assert done.status_code == 200, done.text
        assert done.json()["return_url"] == "/password-reset/identity?identity=verified"
        assert "a code was sent" in done.json()["message"]

        code = code_in(mail_relay, contact, RESET_SUBJECT)
        grant = client.post(
            "/api/v1/password-reset/confirm", json={"address": address, "code": code}
        )
        assert grant.status_code == 200, grant.text
        fresh = f"Redirect-{secrets.token_hex(4)}-Pw!3"
        changed = client.put(
            "/api/v1/password-reset/password", json={"grant": grant.json()["grant"], "new": fresh}
        )
        assert changed.status_code == 200, changed.text
        with owner.client() as other:
            owner.sign_in(other, address, fresh)

        again = client.get(callback, headers=JSON)  # the binding cookie is gone: not a reset's
        assert again.status_code == 404, again.text
        assert again.json()["error"]["code"] == "oidc-state-invalid"
        client.cookies.set("mailprov_reset_oidc", binding, path="/api/v1")
        replayed = client.get(callback, headers=JSON)  # with it: the reset's nonce is spent
        assert replayed.status_code >= 400, replayed.text
        assert replayed.json()["error"]["code"] in {"reset-ended", "oidc-provider-refused"}


def test_the_start_answers_alike_for_any_address(
    owner: OwnerSite, oidc_provider: OidcProvider
) -> None:
    """A bound mailbox and an address that is no mailbox get the same kind of answer; a browser
    (a form post) is sent to the provider."""
    address, _, _ = bound(owner, oidc_provider)
    unknown = f"nobody-{secrets.token_hex(4)}@example.test"
    answers: dict[str, Any] = {}
    with anonymous(owner) as client:  # its own IP: the per-client limit counts by address
        for each in (address, unknown):
            answer = client.post(START, json={"address": each}, headers=JSON)
            assert answer.status_code == 202, answer.text
            answers[each] = answer.json()
        form = client.post(
            START,
            data={"address": f"other-{secrets.token_hex(3)}@example.test"},
            headers={"Origin": owner.url},
        )
        assert form.status_code == 303
        assert form.headers["location"].startswith(oidc_provider.url + "/oauth2/authorize")
    known, nobody = answers[address], answers[unknown]
    assert set(known) == set(nobody)
    assert known["message"] == nobody["message"]
    assert abs(known["expires_at"] - nobody["expires_at"]) <= 2


def test_a_denied_sign_in_is_refused_and_audited(
    owner: OwnerSite, oidc_provider: OidcProvider
) -> None:
    """The provider's 'access_denied' for a reset: a browser lands on the portal's page with the
    error, the refusal is audited (its code only), and no code is sent."""
    address, _, _ = bound(owner, oidc_provider)
    with anonymous(owner) as client:  # its own IP: the per-client limit counts by address
        started = client.post(START, json={"address": address}, headers=JSON)
        state = parse_qs(urlsplit(started.json()["authorization_url"]).query)["state"][0]
        back = client.get(
            "/api/v1/identity/oidc/callback", params={"error": "access_denied", "state": state}
        )
    assert back.status_code == 303
    assert back.headers["location"] == "/password-reset/identity?error=oidc-provider-refused"
    assert "owner.reset-identity-failed" in audit_actions(owner, address)
    assert "access_denied" in audit_text(owner, address)
