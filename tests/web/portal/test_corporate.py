"""A corporate mailbox in a real browser, its domain's ownership proven by DNS against a real
name server (knot, ``owner_dns``): from the application form to the domain page, the TXT
record to publish, a check before it is published (refused, nothing changed), the record
published in the knot zone, the check passing, and the application (corporate, that
domain) through the TEST identity provider and the code to the credentials. In English and
Russian; axe on every page. The proof binds the domain to its prover (the domain handle the
portal keeps for that browser): another browser, or an API client without the handle, sees
no proof and cannot apply there until the administrator opens the domain to all."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from mailprov.errors import AlreadyExists, DomainHandleRequired, RateLimited
from mailprov.services import ownership
from mailprov.services.accounts import Actor
from mailprov.store.schema import domains
from mailprov.testing import RelayRunner
from tests.conftest import invoke
from tests.integration.knot import Knot
from tests.web.conftest import OwnerSite
from tests.web.portal.test_journey import NUMBER, _prove_and_confirm

WORDS = {
    "en": {
        "not-yet": "DNS does not show the record yet",
        "proven": "is proven",
        "bound": "only by whoever proved its ownership here",
        "taken": "someone else has started proving it",
    },
    "ru": {
        "not-yet": "DNS пока не показывает запись",
        "proven": "подтверждено",
        "bound": "только тот, кто подтвердил",
        "taken": "начал кто-то другой",
    },
}
DOMAIN_HANDLE = "X-Domain-Handle"
PEOPLE = {"en": ("Clara", "Berg"), "ru": ("Ольга", "Смирнова")}


def publish(knot: Knot, domain: str, *records: str) -> None:
    """Serve zone ``domain`` from knot with ``records`` (a new serial each time)."""
    serial = publish.__dict__.setdefault("serial", {}).get(domain, 0) + 1
    publish.__dict__["serial"][domain] = serial
    lines = [
        f"$ORIGIN {domain}.",
        "$TTL 60",
        f"@ IN SOA ns.{domain}. admin.{domain}. {serial} 60 60 600 60",
        f"@ IN NS ns.{domain}.",
        "ns IN A 127.0.0.1",
        *records,
    ]
    knot.load_zone(domain, "\n".join(lines) + "\n")


def _prove_domain(person: Any, owner: OwnerSite, knot: Knot, domain: str) -> str:
    """The domain page: the record, a check too early, the record published, the check.
    Returns the TXT record's value."""
    page, words = person.page, WORDS[person.lang]
    person.open("/apply")
    person.submit("#prove-domain")
    page.fill("#domain", domain.upper())  # normalised by the service
    person.submit("#start")
    assert page.url.endswith(f"/apply/domain?domain={domain}")
    assert person.text("#record-name") == f"_mailprov-challenge.{domain}."
    assert person.text("#record-type") == "TXT"
    value = person.text("#record-value")
    assert value.startswith("mailprov-verify=")
    person.shot("domain-record")
    publish(knot, domain)  # the zone, without the record yet
    person.submit("#check")
    assert words["not-yet"] in person.text("#not-yet")
    assert "domain-not-verified" in person.text("#problem")
    page.reload()  # the same record: a re-start never replaces one that may be published
    assert person.text("#record-value") == value
    with owner.client() as api:  # without the browser's domain handle: nothing to see
        shown = api.get(f"/api/v1/domains/{domain}/ownership").json()
    assert (shown["verified"], shown["record"]) == (False, None)

    publish(knot, domain, f'_mailprov-challenge 60 IN TXT "{value}"')
    person.submit("#check")
    assert page.url.endswith("/apply")
    assert words["proven"] in person.text("#domain-proven")
    assert page.is_checked("#kind-corporate")
    assert page.input_value("#domain") == domain
    person.shot("domain-proven")
    return value


@pytest.mark.requires_dns_server
@pytest.mark.parametrize("lang", ["en", "ru"])
def test_corporate_mailbox_with_domain_proven_by_dns(
    visit: Any, owner: OwnerSite, owner_dns: Knot, mail_relay: RelayRunner, lang: str
) -> None:
    """Apply → prove the domain (record shown, refused before it is published, passed after)
    → corporate application for that domain → TEST provider → code → credentials."""
    person = visit(lang)
    page = person.page
    domain = f"corp-{secrets.token_hex(3)}.test"
    value = _prove_domain(person, owner, owner_dns, domain)
    with owner.client() as api:  # proven, but not to a client without the handle
        shown = api.get(f"/api/v1/domains/{domain}/ownership").json()
    assert shown == {"domain": domain, "record": None, "verified": False}
    (handle_cookie,) = [
        c for c in person.context.cookies(owner.url + "/apply") if c["name"] == "mailprov_domain"
    ]
    assert (handle_cookie["httpOnly"], handle_cookie["sameSite"]) == (True, "Strict")
    assert handle_cookie["path"] == "/apply"

    address = f"ceo@{domain}"
    recovery = f"corp-{secrets.token_hex(4)}@home.example"
    page.fill("#local", "ceo")
    page.wait_for_selector("#availability .free")
    page.fill("#recovery", recovery)
    page.check("#accept_terms")
    person.submit("button[value=apply]")
    assert page.url.endswith("/application")
    number = NUMBER.search(person.text("h1"))
    assert number is not None
    handle = person.text(".keep code.secret")
    assert ("Corporate" if lang == "en" else "Корпоративный") in person.text(".facts")
    code = _prove_and_confirm(person, mail_relay, recovery, PEOPLE[lang])
    assert page.url.endswith("/application/credentials")
    password = person.text("#temporary-password")
    assert address in person.text()
    with owner.client() as api:
        answer = api.post("/api/v1/session", json={"address": address, "password": password})
    assert answer.status_code == 201, answer.text  # the mailbox exists, with that password
    person.check_accessible()
    person.assert_clean(handle, code, password)
    assert value not in "".join(person.urls)  # the check is a form: no value in any URL

    _stranger_is_refused(visit(lang), domain)


def _stranger_is_refused(stranger: Any, domain: str) -> None:
    """Another browser, without the proof's domain handle: the domain is in the list (it is
    active), but an application there is refused, with words and nothing requested; it sees
    no record and cannot start the proof again."""
    lang = stranger.lang
    stranger.open("/apply")
    stranger.page.check("#kind-corporate")
    stranger.page.select_option("#domain", domain)
    stranger.page.fill("#local", "cfo")
    stranger.page.fill("#recovery", f"x-{secrets.token_hex(4)}@home.example")
    stranger.page.check("#accept_terms")
    stranger.submit("button[value=apply]")
    assert stranger.page.url.endswith("/apply")
    problem = stranger.text("#problem")
    assert "domain-handle-required" in problem
    assert WORDS[lang]["bound"] in problem
    assert "mailprov_application" not in stranger.cookies()
    stranger.check_accessible()
    stranger.open(f"/apply/domain?domain={domain}")  # no record to see from here either
    assert stranger.page.query_selector("#record") is None
    stranger.page.fill("#domain", domain)  # nor a proof to start again
    stranger.submit("#start")
    assert "already-exists" in stranger.text("#problem")
    assert WORDS[lang]["taken"] in stranger.text("#problem")
    assert stranger.page.query_selector("#record") is None


def test_domain_proof_api_refusals(owner: OwnerSite) -> None:
    """Over the API: a malformed domain is refused (422); a check with no proof started is
    refused (409) and adds nothing; a started proof answers the same record twice (again
    with its domain handle); the administrator's domain cannot be proven from here."""
    domain = f"api-{secrets.token_hex(3)}.test"
    with owner.client() as api:
        bad = api.post("/api/v1/domains/not a domain/ownership")
        assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid-address")
        early = api.post(f"/api/v1/domains/{domain}/ownership/check")
        assert (early.status_code, early.json()["error"]["code"]) == (409, "request-state")
        none = api.get(f"/api/v1/domains/{domain}/ownership").json()
        assert (none["record"], none["verified"]) == (None, False)
        first = api.post(f"/api/v1/domains/{domain}/ownership")
        handle = {DOMAIN_HANDLE: first.json()["handle"]}
        again = api.post(f"/api/v1/domains/{domain}/ownership", headers=handle)
        served = api.post("/api/v1/domains/example.test/ownership")
        assert (served.status_code, served.json()["error"]["code"]) == (409, "already-exists")
    assert first.status_code == again.status_code == 200, first.text
    assert first.json()["record"] == again.json()["record"]
    assert first.json()["record"]["name"] == f"_mailprov-challenge.{domain}."


def test_domain_proofs_from_one_client_are_limited(owner: OwnerSite) -> None:
    """Beyond ``per_actor_hour`` new proofs from one client within the hour: refused and
    nothing added; a proof already started is still answered, and another client may start."""
    store, now, tag = owner.services.store, int(time.time()), secrets.token_hex(3)
    client = Actor(f"requester:192.0.2.{tag}", now)
    names = [f"rate-{tag}-{n}.test" for n in range(3)]
    for name in names[:2]:
        assert ownership.start(store, name, actor=client, per_actor_hour=2).added
    with pytest.raises(RateLimited):
        ownership.start(store, names[2], actor=client, per_actor_hour=2)
    assert ownership.proof(store, names[2]).challenge is None
    assert not ownership.start(store, names[0], actor=client, per_actor_hour=2).changed
    other = Actor(f"requester:198.51.100.{tag}", now)
    assert ownership.start(store, names[2], actor=other, per_actor_hour=2).added


def _request(address: str, kind: str = "corporate") -> dict[str, Any]:
    recovery = f"bound-{secrets.token_hex(4)}@home.example"
    return {"address": address, "kind": kind, "recovery": recovery, "accept_terms": True}


@pytest.mark.requires_dns_server
def test_a_domain_proof_is_seen_only_with_its_handle(owner: OwnerSite, owner_dns: Knot) -> None:
    """Over the API: the proof's domain handle, shown once, is what sees, restarts and checks
    the proof; a missing or wrong one answers as for an unknown domain, and a restart
    without it is refused (nothing changed)."""
    _prove_over_api(owner, owner_dns, f"bound-{secrets.token_hex(3)}.test")


def _prove_over_api(owner: OwnerSite, knot: Knot, domain: str) -> str:
    """Prove ``domain`` over the API (checking what each client sees); its domain handle."""
    unknown = f"unknown-{secrets.token_hex(3)}.test"
    wrong = {DOMAIN_HANDLE: secrets.token_urlsafe(32)}
    with owner.client() as api:
        started = api.post(f"/api/v1/domains/{domain}/ownership")
        assert started.status_code == 200, started.text
        handle = started.json()["handle"]
        mine = {DOMAIN_HANDLE: handle}
        record = started.json()["record"]
        assert api.get(f"/api/v1/domains/{domain}/ownership", headers=mine).json() == {
            "domain": domain,
            "record": record,
            "verified": False,
        }
        # Starting again: with the handle, the same record and no handle shown again;
        # without it (or with a wrong one), refused and nothing changed.
        again = api.post(f"/api/v1/domains/{domain}/ownership", headers=mine).json()
        assert (again["record"], "handle" in again) == (record, False)
        for headers in ({}, wrong):
            taken = api.post(f"/api/v1/domains/{domain}/ownership", headers=headers)
            assert (taken.status_code, taken.json()["error"]["code"]) == (409, "already-exists")
            assert handle not in taken.text
        publish(knot, domain, f'_mailprov-challenge 60 IN TXT "{record["value"]}"')
        for headers in ({}, wrong):  # as for a domain nobody started proving
            refused = api.post(f"/api/v1/domains/{domain}/ownership/check", headers=headers)
            as_unknown = api.post(f"/api/v1/domains/{unknown}/ownership/check", headers=headers)
            assert refused.status_code == as_unknown.status_code == 409
            assert refused.json()["error"]["message"] == as_unknown.json()["error"][
                "message"
            ].replace(unknown, domain)
        checked = api.post(f"/api/v1/domains/{domain}/ownership/check", headers=mine)
        assert checked.status_code == 200, checked.text
        assert checked.json()["verified"] is True
        for headers in ({}, wrong):
            seen = api.get(f"/api/v1/domains/{domain}/ownership", headers=headers).json()
            blank = api.get(f"/api/v1/domains/{unknown}/ownership", headers=headers).json()
            assert seen == {**blank, "domain": domain}
            assert (seen["record"], seen["verified"]) == (None, False)
    return str(handle)


@pytest.mark.requires_dns_server
def test_a_proven_domain_takes_requests_only_with_its_handle(
    owner: OwnerSite, owner_dns: Knot, tmp_path: Path
) -> None:
    """Requests at a domain proven over the API, personal or corporate, need its domain handle
    (refused without it or with a wrong one: 403, nothing created); the administrator's
    example.test never did. 'domain set --open-requests' (a dry run first: nothing changed;
    audited; idempotent) opens the domain to everyone."""
    domain = f"bound-{secrets.token_hex(3)}.test"
    handle = _prove_over_api(owner, owner_dns, domain)
    mine, wrong = {DOMAIN_HANDLE: handle}, {DOMAIN_HANDLE: secrets.token_urlsafe(32)}
    with owner.client() as api:
        for kind, headers in (("corporate", {}), ("personal", {}), ("corporate", wrong)):
            body = _request(f"{kind}-{secrets.token_hex(2)}@{domain}", kind)
            refused = api.post("/api/v1/requests", json=body, headers=headers)
            assert refused.status_code == 403, refused.text
            error = refused.json()["error"]
            assert error["code"] == DomainHandleRequired.code
            assert error["exit_status"] == DomainHandleRequired.exit_status
            assert DOMAIN_HANDLE in error["hint"]
            assert "--open-requests" in error["hint"]
            assert handle not in refused.text
            status = api.get("/api/v1/addresses/check", params={"address": body["address"]})
            assert status.json()["available"] is True  # nothing was requested
        opened = api.post("/api/v1/requests", json=_request(f"ceo@{domain}"), headers=mine)
        assert opened.status_code == 201, opened.text
        open_site = api.post(
            "/api/v1/requests", json=_request(f"x{secrets.token_hex(3)}@example.test", "personal")
        )
        assert open_site.status_code == 201, open_site.text

    # The administrator opens the domain to everyone: a dry run changes nothing.
    def domain_set(*flags: str) -> Any:
        done = invoke(
            "domain",
            "set",
            domain,
            "--open-requests",
            *flags,
            config=owner.config,
            state_dir=tmp_path,
            json=True,
        )
        assert done.exit_code == 0, done.output
        return done.data

    def requests_open() -> bool:
        shown = invoke("domain", "show", domain, config=owner.config, state_dir=tmp_path, json=True)
        assert shown.exit_code == 0, shown.output
        return bool(shown.data["domain"]["open_requests"])

    assert requests_open() is False
    rehearsed = domain_set("--dry-run")
    assert rehearsed["changes"] == {"open_requests": {"before": False, "after": True}}
    with owner.client() as api:
        still = api.post("/api/v1/requests", json=_request(f"cto-{secrets.token_hex(2)}@{domain}"))
        assert still.status_code == 403, still.text
    assert requests_open() is False
    assert domain_set()["changed"] is True
    assert domain_set()["changed"] is False  # idempotent
    assert requests_open() is True
    audited = invoke(
        "audit",
        "list",
        "--target",
        domain,
        "--action",
        "domain.",
        config=owner.config,
        state_dir=tmp_path,
        json=True,
    )
    assert audited.exit_code == 0, audited.output
    records = audited.data["records"]
    assert [r["action"] for r in records] == ["domain.verify-start", "domain.verify", "domain.set"]
    assert records[-1]["details"] == {"open_requests": {"before": False, "after": True}}
    assert handle not in audited.output
    with owner.client() as api:
        anyone = api.post("/api/v1/requests", json=_request(f"cto-{secrets.token_hex(2)}@{domain}"))
        assert anyone.status_code == 201, anyone.text


def test_an_abandoned_domain_proof_is_taken_over_after_30_days(owner: OwnerSite) -> None:
    """Starting a proof of a domain one does not own holds it back from its owner for 30 days
    at most: until then another start is refused (nothing changed); after that, a new start
    gets a new record and a new handle, and the old handle sees nothing. A proven domain is
    never taken over, however old its token."""
    store, pepper, now = owner.services.store, owner.services.pepper, int(time.time())
    squatter, owner_now = Actor("requester:192.0.2.7", now), Actor("requester:192.0.2.8", now)
    later = Actor("requester:192.0.2.8", now + ownership.TOKEN_KEEP_SECONDS)
    domain, proven = (f"squat-{secrets.token_hex(3)}.test" for _ in range(2))
    first = ownership.start(store, domain, actor=squatter, pepper=pepper)
    assert first.handle is not None
    with pytest.raises(AlreadyExists):
        ownership.start(store, domain, actor=owner_now, pepper=pepper)
    taken = ownership.start(store, domain, actor=later, pepper=pepper)
    assert taken.handle is not None and taken.value != first.value
    assert ownership.proof(store, domain, pepper=pepper, handle=first.handle).challenge is None
    mine = ownership.proof(store, domain, pepper=pepper, handle=taken.handle)
    assert mine.challenge is not None and mine.challenge.value == taken.value

    ownership.start(store, proven, actor=squatter, pepper=pepper)
    with store.begin() as conn:  # as a check that found the record leaves it
        conn.execute(
            update(domains).where(domains.c.name == proven).values(verified_at=now, active=True)
        )
    with pytest.raises(AlreadyExists):
        ownership.start(store, proven, actor=later, pepper=pepper)
