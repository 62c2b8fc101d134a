"""'Forgot password?' on the portal, in a real browser: a reset by a code to the recovery
contact (caught by the mail relay) or by signing in at the identity provider
(``oidc-provider-mock``), then a sign-in with the new password; a weak password refused
next to its field; wrong and expired codes; an unknown address looking exactly like a
known one; no code, grant or password in any URL; axe on every new page in both languages."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import update

from mailprov.store.schema import mailboxes
from mailprov.testing import RelayRunner
from tests.web.conftest import OidcProvider, OwnerSite
from tests.web.portal.conftest import ACCEPT
from tests.web.recovery_kit import RESET_SUBJECT, client_ip, code_in
from tests.web.recovery_kit import with_contact as _with_contact
from tests.web.test_oidc import verified_claims


def visitor(visit: Any, lang: str, **kwargs: Any) -> Any:
    """A visitor seen by the server as a fresh IP (the trusted proxy's header, as behind nginx):
    the per-client limit on reset starts counts by address, and other tests start resets too."""
    person = visit(lang, **kwargs)
    person.context.set_extra_http_headers(
        {"Accept-Language": ACCEPT[lang], "X-Forwarded-For": client_ip()}
    )
    return person


def with_contact(owner: OwnerSite) -> tuple[str, str, str]:
    """A mailbox with a verified contact, made in a thread: Playwright's loop runs in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_with_contact, owner).result()


WORDS = {
    "en": {
        "sent": "a code was sent to its recovery contacts",
        "weak": "That password cannot be used.",
        "done": "Your new password is set",
        "wrong": "The code is incorrect.",
        "expired": "The code has expired.",
        "mismatch": "is not the one this mailbox was created for",
    },
    "ru": {
        "sent": "резервные контакты отправлен код",
        "weak": "Этот пароль использовать нельзя.",
        "done": "Новый пароль установлен",
        "wrong": "Неверный код.",
        "expired": "Срок действия кода истёк.",
        "mismatch": "не та, для которой создан этот ящик",
    },
}


def start(person: Any, address: str, via: str = "contact") -> None:
    """From the sign-in page's link: the address and the route."""
    person.open("/signin")
    person.submit("#forgot")
    assert person.page.url.endswith("/password-reset")
    person.page.fill("#address", address)
    person.page.check(f"#via-{via}")
    person.submit("#start")


def new_password(person: Any, address: str, password: str) -> None:
    """The new password page: a weak one refused next to its field, then ``password``."""
    page, words = person.page, WORDS[person.lang]
    assert page.url.endswith("/password-reset/password")
    assert page.input_value("#username") == address
    page.fill("#new", "password1")
    page.fill("#repeat", "password1")
    person.submit("#set")
    assert page.url.endswith("/password-reset/password")
    assert words["weak"] in person.text("#new-problem")
    assert page.get_attribute("#new", "aria-invalid") == "true"
    assert page.input_value("#username") == address
    if person.javascript:
        person.check_accessible()
    page.fill("#new", password)
    page.fill("#repeat", password)
    person.submit("#set")
    assert page.url.endswith("/signin")
    assert words["done"] in person.text("#reset-done")
    assert page.input_value("#address") == address


def signs_in(person: Any, address: str, password: str) -> None:
    """The sign-in form with the new password opens the account."""
    person.page.fill("#address", address)
    person.page.fill("#password", password)
    person.submit("main button[type=submit]")
    assert person.page.url.endswith("/account"), person.text()


def test_reset_by_recovery_contact_then_sign_in(
    visit: Any, owner: OwnerSite, mail_relay: RelayRunner
) -> None:
    """Link → address → code from the relay → a weak password refused in place → a new one →
    sign in with it (the old one no longer works); no-store and no secret in a URL."""
    for lang, javascript in (("en", False), ("ru", True)):
        address, old, contact = with_contact(owner)
        person = visitor(visit, lang, javascript=javascript)
        answer = person.open("/password-reset")
        assert answer.headers["cache-control"] == "no-store"
        if javascript:
            person.shot("reset-start")
        start(person, address)
        assert person.page.url.endswith("/password-reset/code")
        assert WORDS[lang]["sent"] in person.text("#sent")
        if javascript:
            person.check_accessible()
        code = code_in(mail_relay, contact, RESET_SUBJECT)
        person.page.fill("#code", code)
        person.submit("#confirm")
        fresh = f"Fresh-{secrets.token_hex(4)}-Pass!9"
        new_password(person, address, fresh)
        signs_in(person, address, fresh)
        with owner.client() as api:
            refused = api.post("/api/v1/session", json={"address": address, "password": old})
            assert refused.status_code == 401
        person.assert_clean(code, fresh, old)


def _through_the_code_page(person: Any, address: str) -> str:
    """The code page's text for ``address`` (the address itself blanked) after a start."""
    start(person, address)
    assert person.page.url.endswith("/password-reset/code")
    return person.text().replace(address, "ADDRESS")


def test_unknown_address_looks_like_a_known_one_and_wrong_or_late_codes(
    visit: Any, owner: OwnerSite, mail_relay: RelayRunner
) -> None:
    """An address that is no mailbox gets the same pages and the same refusal of a wrong code
    as a mailbox; a wrong code says how many attempts are left; a code typed too late is
    refused as expired."""
    known, _, contact = with_contact(owner)
    unknown = f"nobody-{secrets.token_hex(4)}@example.test"
    people = {address: visitor(visit, "ru") for address in (known, unknown)}
    texts = {address: _through_the_code_page(p, address) for address, p in people.items()}
    assert texts[known] == texts[unknown]
    wrong = {}
    for address, person in people.items():
        person.page.fill("#code", "000000")
        person.submit("#confirm")
        assert person.page.url.endswith("/password-reset/code")
        wrong[address] = person.text("#problem")
    assert wrong[known] == wrong[unknown]
    assert WORDS["ru"]["wrong"] in wrong[known]
    assert "4" in wrong[known]  # attempts left
    people[unknown].check_accessible()

    code = code_in(mail_relay, contact, RESET_SUBJECT)
    owner.clock.offset = 11 * 60  # past [identity] code_ttl_seconds (600)
    person = people[known]
    person.page.fill("#code", code)
    person.submit("#confirm")
    assert WORDS["ru"]["expired"] in person.text("#problem")
    person.assert_clean(code)

    # A reset this server no longer knows (a restart, or 30 minutes): back to the start, in words.
    lost = visitor(visit, "ru")
    lost.context.add_cookies(
        [{"name": "mailprov_reset", "value": "x" * 43, "url": owner.url + "/password-reset"}]
    )
    lost.open("/password-reset/code")
    assert lost.page.url.endswith("/password-reset")
    assert "здесь больше неизвестен" in lost.text("#problem")


def _bound_mailbox(owner: OwnerSite, provider: OidcProvider) -> tuple[str, str, str]:
    """A mailbox with a verified contact, bound to a person at the provider; (address,
    contact, the person's subject there)."""
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


def _at_the_provider(person: Any, provider: OidcProvider, address: str, sub: str) -> None:
    """Start by identity, follow the link to the provider and sign in there as ``sub``."""
    start(person, address, via="identity")
    assert person.page.url.endswith("/password-reset/identity-provider")
    if person.javascript:
        person.shot("reset-provider")
    person.submit("#continue")
    assert person.page.url.startswith(provider.url + "/oauth2/authorize")
    person.page.fill("input[name=sub]", sub)
    person.submit("button:has-text('Authorize')")
    assert "/password-reset/identity?" in person.page.url


def test_reset_by_identity_provider_then_sign_in(
    visit: Any, owner: OwnerSite, oidc_provider: OidcProvider, mail_relay: RelayRunner
) -> None:
    """Sign in at the identity provider as the person bound to the mailbox → back → the code
    sent to the contact → a new password → sign in. Another person's sign-in is refused."""
    address, contact, sub = _bound_mailbox(owner, oidc_provider)
    person = visitor(visit, "en")
    person.open("/password-reset")
    person.shot("reset-start")
    _at_the_provider(person, oidc_provider, address, sub)
    person.check_accessible()
    person.submit("#continue")
    assert person.page.url.endswith("/password-reset/code")
    person.check_accessible()
    code = code_in(mail_relay, contact, RESET_SUBJECT)
    person.page.fill("#code", code)
    person.submit("#confirm")
    fresh = f"Proven-{secrets.token_hex(4)}-Pass!7"
    new_password(person, address, fresh)
    signs_in(person, address, fresh)
    person.assert_clean(code, fresh)

    other, _, _ = _bound_mailbox(owner, oidc_provider)
    stranger = visitor(visit, "ru")
    _at_the_provider(stranger, oidc_provider, other, sub)  # the first person, not its owner
    assert WORDS["ru"]["mismatch"] in stranger.text("#problem")
    assert "identity-mismatch" in stranger.text("#problem")
    stranger.shot("reset-refused-identity")
    stranger.assert_clean()
