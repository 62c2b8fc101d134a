"""A corporate mailbox in a real browser, its domain's ownership proven by DNS against a real
name server (knot, ``owner_dns``): from the application form to the domain page, the TXT
record to publish, a check before it is published (refused, nothing changed), the record
published in the knot zone, the check passing, and the application (corporate, that
domain) through the TEST identity provider and the code to the credentials. In English and
Russian; axe on every page."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest

from mailprov.errors import RateLimited
from mailprov.services import ownership
from mailprov.services.accounts import Actor
from mailprov.testing import RelayRunner
from tests.integration.knot import Knot
from tests.web.conftest import OwnerSite
from tests.web.portal.test_journey import NUMBER, _prove_and_confirm

WORDS = {
    "en": {"not-yet": "DNS does not show the record yet", "proven": "is proven"},
    "ru": {"not-yet": "DNS пока не показывает запись", "proven": "подтверждено"},
}
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
    with owner.client() as api:
        shown = api.get(f"/api/v1/domains/{domain}/ownership").json()
    assert (shown["verified"], shown["record"]["value"]) == (False, value)

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
    with owner.client() as api:
        shown = api.get(f"/api/v1/domains/{domain}/ownership").json()
    assert (shown["domain"], shown["verified"]) == (domain, True)

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


def test_domain_proof_api_refusals(owner: OwnerSite) -> None:
    """Over the API: a malformed domain is refused (422); a check with no proof started is
    refused (409) and adds nothing; a started proof answers the same record twice."""
    domain = f"api-{secrets.token_hex(3)}.test"
    with owner.client() as api:
        bad = api.post("/api/v1/domains/not a domain/ownership")
        assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid-address")
        early = api.post(f"/api/v1/domains/{domain}/ownership/check")
        assert (early.status_code, early.json()["error"]["code"]) == (409, "request-state")
        none = api.get(f"/api/v1/domains/{domain}/ownership").json()
        assert (none["record"], none["verified"]) == (None, False)
        first = api.post(f"/api/v1/domains/{domain}/ownership")
        again = api.post(f"/api/v1/domains/{domain}/ownership")
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
