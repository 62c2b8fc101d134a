"""The filters API over real HTTP: forms saved, checked by Pigeonhole's own sievec, written
into the mailbox's script storage (owned by vmail, active); refusals change nothing; a
change of forwarding is told to the verified recovery contacts. Both store backends."""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select

from mailprov.store.schema import audit_log, recovery_contacts
from mailprov.testing import RelayRunner
from tests.web.conftest import OwnerSite

pytestmark = pytest.mark.requires_dovecot

FORMS: dict[str, Any] = {
    "forwarding": {"to": ["copy@example.net"], "keep": True},
    "vacation": {
        "subject": "Away",
        "body": "Back on Monday.\nRegards",
        "days": 3,
        "start": "2026-07-01",
        "end": None,
    },
    "rules": [
        {"field": "subject", "contains": "[news]", "action": "move", "folder": "Lists/News"},
        {"field": "from", "contains": "spam@", "action": "discard"},
    ],
}


def home(owner: OwnerSite, address: str) -> Path:
    """The mailbox's mail home under the site's [dovecot] mail_root."""
    local, domain = address.split("@")
    return owner.mail_root / domain / local


@contextmanager
def signed_in(owner: OwnerSite) -> Iterator[tuple[str, httpx.Client]]:
    """A new mailbox and a client signed in to it."""
    address, password = owner.mailbox()
    with owner.client() as client:
        owner.sign_in(client, address, password)
        yield address, client


def test_no_filters_yet(owner: OwnerSite) -> None:
    """Before anything is saved: empty forms, nothing active."""
    with signed_in(owner) as (_, client):
        answer = client.get("/api/v1/filters")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["kind"], body["forwarding"], body["vacation"], body["rules"]) == (
        "forms",
        None,
        None,
        [],
    )
    assert body["active_script"] is None
    assert body["updated_at"] is None


def test_saved_forms_are_installed_as_the_active_script(owner: OwnerSite) -> None:
    """PUT compiles the forms and writes ~/sieve/mailprov.sieve (vmail, 0600) with the
    ~/.dovecot.sieve link naming it; GET gives the same forms back."""
    with signed_in(owner) as (address, client):
        saved = client.put("/api/v1/filters", json=FORMS)
        assert saved.status_code == 200, saved.text
        shown = client.get("/api/v1/filters").json()
    assert FORMS["rules"][0]["folder"] == shown["rules"][0]["folder"]
    assert FORMS["forwarding"] == shown["forwarding"]
    assert FORMS["vacation"] == shown["vacation"]
    assert ("forms", "mailprov") == (shown["kind"], shown["active_script"])
    script = home(owner, address) / "sieve" / "mailprov.sieve"
    assert shown["script"].encode() == script.read_bytes()
    assert 'fileinto :create "Lists/News";' in script.read_text()
    info = script.stat()
    assert (info.st_mode & 0o777, info.st_uid) == (0o600, pwd.getpwnam("vmail").pw_uid)
    assert "sieve/mailprov.sieve" == os.readlink(home(owner, address) / ".dovecot.sieve")


def test_invalid_script_is_refused_and_nothing_changes(owner: OwnerSite) -> None:
    """A script Pigeonhole cannot compile: 422 sieve-invalid naming the line; the saved
    forms and the installed script stay as they were."""
    with signed_in(owner) as (address, client):
        assert client.put("/api/v1/filters", json=FORMS).status_code == 200
        before = (home(owner, address) / "sieve" / "mailprov.sieve").read_bytes()
        refused = client.put(
            "/api/v1/filters/script",
            json={"script": 'require ["fileinto"];\r\nif true {\r\n  fileintoo "x";\r\n}\r\n'},
        )
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert "sieve-invalid" == error["code"]
        assert any("line 3" in p and "fileintoo" in p for p in error["problems"])
        assert "forms" == client.get("/api/v1/filters").json()["kind"]
    assert before == (home(owner, address) / "sieve" / "mailprov.sieve").read_bytes()


def test_oversized_script_is_refused_before_it_is_compiled(owner: OwnerSite) -> None:
    """A script over [dovecot] sieve_max_script_size (64K): 413 sieve-too-large."""
    with signed_in(owner) as (address, client):
        refused = client.put("/api/v1/filters/script", json={"script": "# " + "x" * 70_000})
    assert refused.status_code == 422, refused.text
    assert ("sieve-too-large", 65536) == (
        refused.json()["error"]["code"],
        refused.json()["error"]["limit"],
    )
    assert not (home(owner, address) / "sieve").exists()


def test_own_script_is_installed_when_pigeonhole_accepts_it(owner: OwnerSite) -> None:
    """A valid script of the owner's own replaces the forms' script as 'mailprov'."""
    text = 'require "fileinto";\r\nif header :is "x-list" "a" { fileinto "A"; }\r\n'
    with signed_in(owner) as (address, client):
        saved = client.put("/api/v1/filters/script", json={"script": text})
        assert saved.status_code == 200, saved.text
        shown = client.get("/api/v1/filters").json()
    assert ("script", text) == (shown["kind"], shown["script"])
    assert text.encode() == (home(owner, address) / "sieve" / "mailprov.sieve").read_bytes()


def test_bad_forms_name_the_field_and_change_nothing(owner: OwnerSite) -> None:
    """Forwarding to the mailbox itself, or a folder with an empty level: 422
    filters-invalid naming it."""
    with signed_in(owner) as (address, client):
        own = client.put("/api/v1/filters", json={"forwarding": {"to": [address.upper()]}})
        bad = {"field": "from", "contains": "x", "action": "move", "folder": "a//b"}
        folder = client.put("/api/v1/filters", json={"rules": [bad]})
        shown = client.get("/api/v1/filters").json()
    assert (422, "forwarding/to/0") == (own.status_code, own.json()["error"]["field"])
    assert (422, "rules/0/folder") == (folder.status_code, folder.json()["error"]["field"])
    assert "filters-invalid" == own.json()["error"]["code"]
    assert shown["updated_at"] is None
    assert not home(owner, address).exists()


def test_filters_need_a_session(owner: OwnerSite) -> None:
    """Without signing in: 401 for reading and writing."""
    with owner.client() as client:
        assert client.get("/api/v1/filters").status_code == 401
        assert client.put("/api/v1/filters", json={}).status_code == 401


def _forwarding_events(owner: OwnerSite, address: str) -> int:
    with owner.services.store.read() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    audit_log.c.target == address, audit_log.c.action == "owner.forwarding-changed"
                )
            ).scalar_one()
        )


def test_forwarding_change_is_told_to_the_recovery_contacts(
    owner: OwnerSite, mail_relay: RelayRunner
) -> None:
    """Setting forwarding sends a security notice to the verified contact and is audited;
    saving other forms with the same forwarding does not."""
    with signed_in(owner) as (address, client):
        contact = f"me-{address.split('@')[0]}@example.net"
        now = int(time.time())
        with owner.services.store.begin() as conn:
            conn.execute(
                insert(recovery_contacts).values(
                    address=address, contact=contact, kind="email", verified_at=now, created_at=now
                )
            )
        forwarding = {"forwarding": {"to": ["away@example.net"], "keep": False}}
        assert client.put("/api/v1/filters", json=forwarding).status_code == 200
        notice = mail_relay.wait_for(to=contact)
        assert "forwarding" in notice.text and address in notice.text
        assert 1 == _forwarding_events(owner, address)
        same = {**forwarding, "vacation": FORMS["vacation"]}
        assert client.put("/api/v1/filters", json=same).status_code == 200
        assert 1 == _forwarding_events(owner, address)
        assert client.put("/api/v1/filters", json={}).status_code == 200
        assert 2 == _forwarding_events(owner, address)
