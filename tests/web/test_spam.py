"""The owner's spam settings over real HTTP (GET/PUT /api/v1/account/spam): the mailbox's own
values, the domain's and the site's defaults and the effective ones; a save is kept with an
audit record naming the owner; refusals change nothing. Both store backends."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import select

from mailprov.rules.spam import DEFAULT
from mailprov.services import spam
from mailprov.services.accounts import Actor
from mailprov.store.schema import audit_log, mailboxes
from tests.web.conftest import OwnerSite

SPAM = "/api/v1/account/spam"


@contextmanager
def signed_in(owner: OwnerSite) -> Iterator[tuple[str, httpx.Client]]:
    """A new mailbox and a client signed in to it."""
    address, password = owner.mailbox()
    with owner.client() as client:
        owner.sign_in(client, address, password)
        yield address, client


def _columns(owner: OwnerSite, address: str) -> tuple[object, object]:
    with owner.services.store.read() as conn:
        row = conn.execute(
            select(mailboxes.c.spam_threshold, mailboxes.c.spam_to_junk).where(
                mailboxes.c.address == address
            )
        ).one()
    return row.spam_threshold, None if row.spam_to_junk is None else bool(row.spam_to_junk)


def test_a_new_mailbox_has_the_sites_defaults(owner: OwnerSite) -> None:
    """Nothing set on the mailbox or its domain: the site's [rspamd] defaults, said so."""
    with signed_in(owner) as (address, client):
        answer = client.get(SPAM)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    site = owner.services.settings.rspamd
    assert body["address"] == address
    assert (body["threshold"], body["to_junk"]) == (site.spam_threshold, site.spam_to_junk)
    assert (body["threshold_from"], body["to_junk_from"]) == ("site", "site")
    assert body["own"] == {"threshold": None, "to_junk": None}
    assert body["reject_score"] == site.reject_score
    assert body["active"] is site.enabled


def test_saved_settings_are_the_mailboxs_own_with_an_audit_record(owner: OwnerSite) -> None:
    """PUT stores both values in the mailbox's row, GET shows them as its own, one
    mailbox.set record names the owner; null goes back to the default."""
    with signed_in(owner) as (address, client):
        saved = client.put(SPAM, json={"threshold": 4.5, "to_junk": False})
        assert saved.status_code == 200, saved.text
        shown = client.get(SPAM).json()
        assert _columns(owner, address) == (4.5, False)
        for body in (saved.json(), shown):
            assert (body["threshold"], body["to_junk"]) == (4.5, False)
            assert (body["threshold_from"], body["to_junk_from"]) == ("mailbox", "mailbox")
        with owner.services.store.read() as conn:
            record = conn.execute(
                select(audit_log)
                .where(audit_log.c.target == address, audit_log.c.action == "mailbox.set")
                .order_by(audit_log.c.id.desc())
            ).first()
        assert record is not None
        assert record.actor == f"owner:{address}"
        assert json.loads(record.details) == {
            "spam_threshold": {"before": None, "after": 4.5},
            "spam_to_junk": {"before": None, "after": False},
        }
        back = client.put(SPAM, json={"threshold": None, "to_junk": None})
        assert back.status_code == 200, back.text
        assert back.json()["threshold_from"] == "site"
        assert _columns(owner, address) == (None, None)


def test_the_domains_default_applies_until_the_mailbox_sets_its_own(owner: OwnerSite) -> None:
    """A default of the domain is the effective value of a mailbox with none of its own."""
    store = owner.services.store
    actor = Actor("tester", int(time.time()))
    spam.update_domain(store, "example.test", actor=actor, spam_threshold=9.25)
    try:
        with signed_in(owner) as (_, client):
            body = client.get(SPAM).json()
            assert (body["threshold"], body["threshold_from"]) == (9.25, "domain")
            assert body["domain"] == {"threshold": 9.25, "to_junk": None}
            assert body["to_junk_from"] == "site"
            own = client.put(SPAM, json={"threshold": 3, "to_junk": None}).json()
            assert (own["threshold"], own["threshold_from"]) == (3, "mailbox")
    finally:
        spam.update_domain(store, "example.test", actor=actor, spam_threshold=DEFAULT)


def test_refused_thresholds_change_nothing(owner: OwnerSite) -> None:
    """At or above the reject score, more than two decimals (422), 0 or a string (400):
    refused with the error's code, and the row keeps its values."""
    reject = owner.services.settings.rspamd.reject_score
    with signed_in(owner) as (address, client):
        assert client.put(SPAM, json={"threshold": 5, "to_junk": True}).status_code == 200
        for threshold, status, code in (
            (reject, 422, "invalid-value"),
            (5.125, 422, "invalid-value"),
            (0, 400, "malformed-request"),
            ("6", 400, "malformed-request"),
        ):
            answer = client.put(SPAM, json={"threshold": threshold, "to_junk": False})
            assert answer.status_code == status, (threshold, answer.text)
            assert answer.json()["error"]["code"] == code
        missing = client.put(SPAM, json={"threshold": 5})
        assert missing.status_code == 400, missing.text
        assert _columns(owner, address) == (5.0, True)


def test_signed_out_callers_are_refused(owner: OwnerSite) -> None:
    """Without a session: 401, for reading and writing."""
    with owner.client() as client:
        assert client.get(SPAM).status_code == 401
        put = client.put(SPAM, json={"threshold": 5, "to_junk": True})
        assert put.status_code in (401, 403), put.text
