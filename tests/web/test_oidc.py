"""Identity by redirect over real HTTP: ``mailprov serve`` as an OpenID Connect relying party
against a provider this project did not write (``oidc-provider-mock``, its own process, PKCE
and the client secret enforced in front of it), driven by httpx following redirects like a
browser, on both store backends. The ID token meets the gate's own checks and IDG codes;
bad input (replayed or stale state, another browser, a provider error, another audience, a
low level, a replayed token, a foreign nonce, a swapped code) is refused with nothing changed."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mailprov.errors import OidcUnavailable
from mailprov.testing import RelayRunner
from tests.web.conftest import OidcProvider, OwnerSite

HANDLE = "X-Request-Handle"
_counter = itertools.count(1)


def verified_claims(level: str = "ial2", framework: str = "nist_800_63A") -> dict[str, Any]:
    """OpenID Connect for Identity Assurance ``verified_claims`` as a provider sends them."""
    return {
        "verification": {
            "trust_framework": framework,
            "assurance_level": level,
            "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "evidence": [{"type": "document"}],
        },
        "claims": {"given_name": "Anna", "family_name": "Lee", "birthdate": "1990-02-03"},
    }


@dataclass
class Applicant:
    """One person in a browser (an httpx client that follows redirects and keeps cookies)."""

    site: OwnerSite
    provider: OidcProvider
    relay: RelayRunner
    client: httpx.Client
    urls: list[str]
    local: str = field(default_factory=lambda: f"oidc{next(_counter)}-{secrets.token_hex(3)}")
    number: str = ""
    handle: str = ""
    #: The person's subject at the provider (the same for each request they open).
    sub: str = field(default_factory=lambda: f"sub-{secrets.token_hex(6)}")

    @property
    def recovery(self) -> str:
        """Where codes and notices go."""
        return f"{self.local}@recovery.example"

    def open(self, **changes: Any) -> None:
        """Open a request for ``LOCAL@example.test``; keep its number and handle."""
        body = {
            "address": f"{self.local}@example.test",
            "kind": "personal",
            "recovery": self.recovery,
            "accept_terms": True,
            **changes,
        }
        answer = self.client.post("/api/v1/requests", json=body)
        assert answer.status_code == 201, answer.text
        self.number, self.handle = answer.json()["request"]["id"], answer.json()["handle"]

    def at_provider(self, **claims: Any) -> None:
        """The person's record at the provider: verified claims and a fresh ``jti``."""
        person = {"verified_claims": verified_claims(), "jti": secrets.token_urlsafe(16)}
        self.provider.set_user(self.sub, {**person, **claims})

    @property
    def start_path(self) -> str:
        """Where the portal's button posts."""
        return f"/api/v1/requests/{self.number}/identity/oidc"

    def start(self) -> httpx.Response:
        """Press the button: a form post (the handle in the form), followed to the provider."""
        return self.client.post(
            self.start_path, data={"handle": self.handle}, headers={"Origin": self.site.url}
        )

    def authorize(self, page: httpx.Response, *, deny: bool = False) -> httpx.Response:
        """Sign in at the provider's page (or deny), followed back through the callback."""
        assert page.status_code == 200, page.text
        assert urlsplit(str(page.url)).path == "/oauth2/authorize"
        form = {"action": "deny"} if deny else {"sub": self.sub}
        return self.client.post(str(page.url), data=form)

    def state(self) -> dict[str, Any]:
        """The request as its requester sees it."""
        answer = self.client.get(f"/api/v1/requests/{self.number}", headers={HANDLE: self.handle})
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()["request"]
        return data

    def codes(self) -> list[str]:
        """Confirmation codes mailed to the recovery contact so far."""
        found = self.relay.messages(to=self.recovery, subject="Confirmation code")
        return [m.group(1) for m in (re.search(r"is (\d{6})\.", x.text) for x in found) if m]


@pytest.fixture
def applicant(
    owner: OwnerSite, oidc_provider: OidcProvider, mail_relay: RelayRunner
) -> Iterator[Applicant]:
    """A person with a fresh browser whose every URL is recorded."""
    urls: list[str] = []
    hooks = {"request": [lambda request: urls.append(str(request.url))]}
    with owner.client(follow_redirects=True, event_hooks=hooks) as client:
        yield Applicant(owner, oidc_provider, mail_relay, client, urls)


def callback_of(answer: httpx.Response) -> httpx.Response:
    """The callback's own answer in a followed chain."""
    hops = [h for h in answer.history if h.url.path == "/api/v1/identity/oidc/callback"]
    assert len(hops) == 1, [str(h.url) for h in answer.history]
    return hops[0]


def returned_to(answer: httpx.Response) -> tuple[str, dict[str, list[str]]]:
    """Where the browser ended after the callback: path and query."""
    location = urlsplit(callback_of(answer).headers["location"])
    return location.path, parse_qs(location.query)


def audit_details(site: OwnerSite, number: str, action: str) -> list[dict[str, Any]]:
    """The details of the request's audit records of ``action``."""
    from mailprov.services.audit import list_records

    return [
        r.details
        for r in list_records(site.services.store)
        if r.target == number and r.action == action
    ]


# -- the flow ---------------------------------------------------------------------------------


def test_sign_in_at_the_provider_verifies_and_a_code_follows(applicant: Applicant) -> None:
    """Form post -> provider -> callback: the request is identity-verified with the provider's
    verified name, the code goes to the recovery contact and confirms the mailbox; the
    authorization URL asks for PKCE S256 and verified claims; no handle in any URL."""
    applicant.open()
    applicant.at_provider()
    page = applicant.start()
    assert [h.status_code for h in page.history] == [303]
    cookie = page.history[0].headers["set-cookie"]
    assert "mailprov_oidc=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/api/v1" in cookie
    assert page.history[0].headers["cache-control"] == "no-store"
    sent = parse_qs(urlsplit(str(page.url)).query)
    assert sent["response_type"] == ["code"]
    assert sent["client_id"] == [applicant.provider.client_id]
    assert sent["code_challenge_method"] == ["S256"]
    assert len(sent["code_challenge"][0]) == 43
    assert len(sent["state"][0]) >= 43
    assert len(sent["nonce"][0]) >= 43
    assert sent["scope"] == ["openid"]
    claims = json.loads(sent["claims"][0])["id_token"]["verified_claims"]
    assert set(claims["claims"]) == {"given_name", "family_name", "birthdate"}

    done = applicant.authorize(page)
    assert callback_of(done).status_code == 303
    assert returned_to(done) == (f"/requests/{applicant.number}", {"identity": ["verified"]})
    shown = applicant.state()
    assert (shown["state"], shown["name"]) == ("identity-verified", "Anna Lee")
    assert "identity-redirect" in [e["event"] for e in shown["history"]]
    evidence = audit_details(applicant.site, applicant.number, "request.verify")
    assert len(evidence) == 1
    assert (evidence[0]["via"], evidence[0]["iss"]) == ("oidc", applicant.provider.url)
    assert evidence[0]["sub"] == applicant.sub
    applicant.relay.wait_for(to=applicant.recovery, subject="Confirmation code")
    (code,) = applicant.codes()
    confirmed = applicant.client.post(
        f"/api/v1/requests/{applicant.number}/confirm",
        json={"code": code},
        headers={HANDLE: applicant.handle},
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["request"]["state"] == "provisioned"
    assert not any(applicant.handle in url for url in applicant.urls)


def test_an_api_client_gets_json_at_each_step(applicant: Applicant) -> None:
    """Without a browser: start answers the URL as JSON (handle in the header), the callback
    asked for JSON answers the verified request and where a browser would go."""
    applicant.open()
    applicant.at_provider()
    started = applicant.client.post(
        applicant.start_path, json={}, headers={HANDLE: applicant.handle}
    )
    assert started.status_code == 200, started.text
    assert started.json()["request_id"] == applicant.number
    url = started.json()["authorization_url"]
    assert url.startswith(applicant.provider.url + "/oauth2/authorize?")
    back = applicant.client.post(url, data={"sub": applicant.sub}, follow_redirects=False)
    assert back.status_code == 302
    answer = applicant.client.get(
        back.headers["location"], headers={"Accept": "application/json"}, follow_redirects=False
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["request"]["state"] == "identity-verified"
    assert answer.json()["return_url"] == f"/requests/{applicant.number}?identity=verified"


# -- bad input: each refused with a stable code, the request unchanged ------------------------


def test_a_replayed_callback_is_refused_and_changes_nothing(applicant: Applicant) -> None:
    """The same callback URL again (same state, same code): oidc-state-used, no second code."""
    applicant.open()
    applicant.at_provider()
    done = applicant.authorize(applicant.start())
    callback = str(callback_of(done).url)
    applicant.relay.wait_for(to=applicant.recovery, subject="Confirmation code")
    again = applicant.client.get(callback, headers={"Accept": "application/json"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "oidc-state-used"
    assert again.json()["error"]["request_id"] == applicant.number
    in_browser = applicant.client.get(callback)
    assert returned_to(in_browser)[1]["error"] == ["oidc-state-used"]
    assert applicant.state()["state"] == "identity-verified"
    time.sleep(0.3)
    assert len(applicant.codes()) == 1


def test_a_stale_sign_in_is_refused(applicant: Applicant) -> None:
    """A callback after [oidc] state_ttl_seconds: oidc-state-expired (410), request open."""
    applicant.open()
    applicant.at_provider()
    page = applicant.start()
    applicant.site.clock.offset = 601
    back = applicant.client.post(str(page.url), data={"sub": applicant.sub}, follow_redirects=False)
    late = applicant.client.get(back.headers["location"], headers={"Accept": "application/json"})
    assert late.status_code == 410
    assert late.json()["error"]["code"] == "oidc-state-expired"
    assert applicant.state()["state"] == "open"


def test_a_callback_in_another_browser_is_refused_and_does_not_burn_the_sign_in(
    applicant: Applicant,
) -> None:
    """The callback URL carried to a browser that did not start it: oidc-state-invalid, the
    same as an unknown state (no request named); the starting browser can still finish."""
    applicant.open()
    applicant.at_provider()
    back = applicant.client.post(
        str(applicant.start().url), data={"sub": applicant.sub}, follow_redirects=False
    )
    callback = back.headers["location"]
    with applicant.site.client() as stranger:
        refused = stranger.get(callback)
        forged = stranger.get(
            "/api/v1/identity/oidc/callback", params={"state": "x" * 43, "code": "y"}
        )
    assert refused.status_code == forged.status_code == 404
    assert refused.json()["error"]["code"] == forged.json()["error"]["code"] == "oidc-state-invalid"
    assert "request_id" not in refused.json()["error"]
    assert applicant.state()["state"] == "open"
    finished = applicant.client.get(callback, follow_redirects=False)
    assert finished.status_code == 303
    assert applicant.state()["state"] == "identity-verified"


def test_a_provider_error_is_refused_and_audited(applicant: Applicant) -> None:
    """The person denies at the provider: the mock's error redirect carries no state (RFC 6749
    §4.1.2.1 wants it), so it is a malformed callback; a conformant one (error=access_denied
    with the state) sends the browser back with error=oidc-provider-refused. The request
    stays open; the audit names the error only; the sign-in is used up."""
    applicant.open()
    applicant.at_provider()
    page = applicant.start()
    denied = applicant.authorize(page, deny=True)
    assert urlsplit(str(denied.url)).path == "/api/v1/identity/oidc/callback"
    assert "state" not in parse_qs(urlsplit(str(denied.url)).query)
    assert (denied.status_code, denied.json()["error"]["code"]) == (400, "malformed-request")

    state = parse_qs(urlsplit(str(page.url)).query)["state"][0]
    conformant = {"error": "access_denied", "error_description": "<b>phish</b>", "state": state}
    refused = applicant.client.get("/api/v1/identity/oidc/callback", params=conformant)
    path, query = returned_to(refused)
    assert (path, query["error"]) == (f"/requests/{applicant.number}", ["oidc-provider-refused"])
    assert applicant.state()["state"] == "open"
    assert audit_details(applicant.site, applicant.number, "request.verify-failed") == [
        {"error": "oidc-provider-refused", "via": "oidc", "provider_error": "access_denied"}
    ]
    again = applicant.client.get(
        "/api/v1/identity/oidc/callback",
        params={**conformant, "error": "<script>"},
        headers={"Accept": "application/json"},
    )
    assert (again.status_code, again.json()["error"]["code"]) == (409, "oidc-state-used")


@pytest.mark.parametrize(
    ("claims", "idg", "code", "status"),
    [
        ({"verified_claims": verified_claims("ial1")}, "IDG-V02", "identity-not-verified", 422),
        ({"aud": "another-client"}, "IDG-T08", "token-rejected", 422),
        ({"nonce": "a-nonce-of-another-sign-in"}, "IDG-T13", "token-wrong-request", 422),
        (
            {"verified_claims": verified_claims("ial2", "eidas_x")},
            "IDG-V01",
            "identity-not-verified",
            422,
        ),
        ({"jti": None}, "IDG-T12", "token-rejected", 422),
    ],
    ids=["low-level", "other-audience", "foreign-nonce", "unknown-framework", "no-jti"],
)
def test_the_gate_refuses_a_bad_id_token_with_its_idg_code(
    applicant: Applicant, claims: dict[str, Any], idg: str, code: str | None, status: int
) -> None:
    """An ID token the provider signed but the gate refuses (its claims patched through the
    provider's user API): the gate's IDG code, the browser told, the request still open."""
    applicant.open()
    applicant.at_provider(**claims)
    back = applicant.client.post(
        str(applicant.start().url), data={"sub": applicant.sub}, follow_redirects=False
    )
    refused = applicant.client.get(back.headers["location"], headers={"Accept": "application/json"})
    assert refused.status_code == status, refused.text
    error = refused.json()["error"]
    assert error["idg"] == idg
    assert error["request_id"] == applicant.number
    if code is not None:
        assert error["code"] == code
    assert applicant.state()["state"] == "open"
    assert applicant.codes() == []


def test_a_replayed_id_token_is_refused(applicant: Applicant, oidc_provider: OidcProvider) -> None:
    """The provider sends an ID token with a jti already used for another request: IDG-T14."""
    applicant.open()
    applicant.at_provider(jti="the-same-jti-" + applicant.local)
    assert returned_to(applicant.authorize(applicant.start()))[1] == {"identity": ["verified"]}
    first = applicant.number
    applicant.local += "b"
    applicant.open()
    again = applicant.authorize(applicant.start())
    assert returned_to(again)[1] == {"error": ["token-replayed"], "idg": ["IDG-T14"]}
    assert applicant.state()["state"] == "open"
    assert applicant.number != first


def test_a_code_swapped_into_another_sign_in_fails_pkce(applicant: Applicant) -> None:
    """A code issued for one sign-in, sent back with another sign-in's state (code
    injection): the provider refuses our PKCE verifier, nothing is verified."""
    applicant.open()
    applicant.at_provider()
    first = applicant.number
    state_a = parse_qs(urlsplit(str(applicant.start().url)).query)["state"][0]
    applicant.local += "b"
    applicant.open()
    back = applicant.client.post(
        str(applicant.start().url), data={"sub": applicant.sub}, follow_redirects=False
    )
    code_b = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
    swapped = applicant.client.get(
        "/api/v1/identity/oidc/callback",
        params={"state": state_a, "code": code_b},
        headers={"Accept": "application/json"},
    )
    assert swapped.status_code == 422, swapped.text
    assert swapped.json()["error"]["code"] == "oidc-provider-refused"
    assert swapped.json()["error"]["provider_error"] == "invalid_grant"
    assert swapped.json()["error"]["request_id"] == first
    assert applicant.state()["state"] == "open"


def test_a_newer_start_supersedes_the_older_one(applicant: Applicant) -> None:
    """Two starts for one request: the first sign-in's callback is oidc-state-used."""
    applicant.open()
    applicant.at_provider()
    first = applicant.client.post(
        str(applicant.start().url), data={"sub": applicant.sub}, follow_redirects=False
    )
    applicant.start()
    old = applicant.client.get(first.headers["location"], headers={"Accept": "application/json"})
    assert (old.status_code, old.json()["error"]["code"]) == (409, "oidc-state-used")
    assert applicant.state()["state"] == "open"


def test_a_mismatching_name_rejects_as_the_token_route_does(applicant: Applicant) -> None:
    """A requested name that differs from the provider's verified name: IDG-V05, rejected."""
    applicant.open(name="Someone Else")
    applicant.at_provider()
    done = applicant.authorize(applicant.start())
    assert returned_to(done)[1] == {"error": ["name-mismatch"], "idg": ["IDG-V05"]}
    assert applicant.state()["state"] == "rejected"


def test_start_needs_the_handle_and_a_same_site_form(applicant: Applicant) -> None:
    """A wrong handle is request-unknown (404); a form posted from another site is refused
    (403) before anything starts; a request no longer open cannot start (409)."""
    applicant.open()
    wrong = applicant.client.post(
        applicant.start_path, data={"handle": "not-it"}, headers={"Origin": applicant.site.url}
    )
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (404, "request-unknown")
    form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": applicant.site.url}
    for raw in (b"handle=%ff%fe", b"handle=\xff\xfe", b"handle=a&handle=b", b"other=1"):
        odd = applicant.client.post(applicant.start_path, content=raw, headers=form)
        assert odd.status_code in {400, 404}, (raw, odd.text)
    foreign = applicant.client.post(
        applicant.start_path,
        data={"handle": applicant.handle},
        headers={"Origin": "https://evil.example"},
    )
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (403, "origin-refused")
    assert audit_details(applicant.site, applicant.number, "request.identity-redirect") == []
    cancelled = applicant.client.post(
        f"/api/v1/requests/{applicant.number}/cancel", headers={HANDLE: applicant.handle}
    )
    assert cancelled.status_code == 200
    closed = applicant.client.post(
        applicant.start_path, json={}, headers={HANDLE: applicant.handle}
    )
    assert (closed.status_code, closed.json()["error"]["code"]) == (409, "request-state")


def test_two_requests_in_one_browser_share_its_binding(applicant: Applicant) -> None:
    """Two tabs, two requests: the second start keeps the browser's binding cookie, so the
    first request's sign-in still finishes in that browser."""
    applicant.open()
    applicant.at_provider()
    first, first_handle = applicant.number, applicant.handle
    page_a = applicant.start()
    cookie = applicant.client.cookies.get("mailprov_oidc")
    applicant.local += "b"
    applicant.open()
    applicant.start()
    assert cookie == applicant.client.cookies.get("mailprov_oidc")
    done = applicant.authorize(page_a)
    assert returned_to(done) == (f"/requests/{first}", {"identity": ["verified"]})
    applicant.number, applicant.handle = first, first_handle
    assert applicant.state()["state"] == "identity-verified"


def test_start_fails_clearly_without_a_usable_provider(applicant: Applicant) -> None:
    """No [oidc] issuer, a provider that does not answer, a discovery document of another
    issuer: oidc-unavailable (503) saying which, and nothing is started."""
    from mailprov.services import oidc
    from mailprov.services.accounts import Actor
    from mailprov.services.request_notices import sender_for
    from mailprov.web.errors import status_of
    from tests.conftest import free_port

    applicant.open()
    services = applicant.site.services
    settings = services.settings
    cases = {
        "": "not set up on this server",
        f"http://127.0.0.1:{free_port()}": "could not be used: ConnectionError",
        applicant.provider.url + "/": "names another issuer",
    }
    for issuer, words in cases.items():
        changed = replace(settings, oidc=replace(settings.oidc, issuer=issuer))
        with pytest.raises(OidcUnavailable) as refused:
            oidc.start(
                services.store,
                changed,
                services.pepper,
                applicant.number,
                binding=None,
                send=sender_for(changed),
                actor=Actor("tester", int(time.time())),
            )
        assert words in refused.value.message
        assert 503 == status_of(type(refused.value))
    assert audit_details(applicant.site, applicant.number, "request.identity-redirect") == []


def test_the_client_secret_file_is_checked_and_sent(applicant: Applicant) -> None:
    """A secret file others may read is a config error that leaves the sign-in usable; a
    wrong secret is refused by the provider (invalid_client); the request stays open."""
    from mailprov.errors import ConfigInvalid, OidcProviderRefused
    from mailprov.model import Secret
    from mailprov.services import oidc
    from mailprov.services.accounts import Actor
    from mailprov.services.request_notices import sender_for

    applicant.open()
    applicant.at_provider()
    back = applicant.client.post(
        str(applicant.start().url), data={"sub": applicant.sub}, follow_redirects=False
    )
    sent = parse_qs(urlsplit(back.headers["location"]).query)
    services = applicant.site.services
    folder = applicant.site.folder

    def finish(secret_file: str) -> Any:
        settings = replace(
            services.settings,
            oidc=replace(services.settings.oidc, client_secret_file=secret_file),
        )
        return oidc.finish(
            services.store,
            settings,
            services.pepper,
            state=sent["state"][0],
            code=Secret(sent["code"][0]),
            error=None,
            binding=Secret(applicant.client.cookies["mailprov_oidc"]),
            send=sender_for(settings),
            actor=Actor("tester", int(time.time())),
        )

    shared = folder / f"shared-secret-{applicant.local}"
    shared.write_text(applicant.provider.secret)
    shared.chmod(0o644)
    with pytest.raises(ConfigInvalid) as unsafe:
        finish(str(shared))
    assert "readable by others" in unsafe.value.message
    assert applicant.provider.secret not in unsafe.value.message
    wrong = folder / f"wrong-secret-{applicant.local}"
    wrong.touch(mode=0o600)
    wrong.write_text("not-the-secret\n")
    with pytest.raises(OidcProviderRefused) as refused:
        finish(str(wrong))
    assert refused.value.details["provider_error"] == "invalid_client"
    assert applicant.state()["state"] == "open"
