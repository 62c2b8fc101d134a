"""Failed sign-ins: counted per address and per client, locked past the limit, the owner told.

Over real HTTP on the session's ``mailprov serve`` (both store backends). Each test signs
in as its own client (X-Forwarded-For from the trusted 127.0.0.1 peer), so the
per-client counts of different tests never meet.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from mailprov.errors import SignInFailed, SignInLocked
from mailprov.model import Secret
from mailprov.services import owner as owner_service
from mailprov.services.audit import list_records
from mailprov.store.schema import owner_sessions, recovery_contacts
from mailprov.testing import RelayRunner
from tests.web.conftest import OwnerSite

_clients = itertools.count(1)
LIMIT = 5  # [web] signin_max_failures (the default)


def _client_ip() -> str:
    """A fresh documentation address (TEST-NET-3) per use."""
    n = next(_clients)
    return f"203.0.113.{n % 250 + 1}" if n < 250 else f"198.51.100.{n % 250 + 1}"


def _attempt(client: httpx.Client, address: str, password: str, ip: str) -> httpx.Response:
    return client.post(
        "/api/v1/session",
        json={"address": address, "password": password},
        headers={"X-Forwarded-For": ip},
    )


def _add_contact(site: OwnerSite, address: str, contact: str) -> None:
    now = int(site.clock())
    with site.services.store.begin() as conn:
        conn.execute(
            insert(recovery_contacts).values(
                address=address, contact=contact, kind="email", verified_at=now, created_at=now
            )
        )


def _shape(answer: httpx.Response) -> tuple[int, str, bool]:
    return answer.status_code, answer.json()["error"]["code"], "retry-after" in answer.headers


def test_account_locks_refuses_the_right_password_and_tells_the_owner(
    owner: OwnerSite, mail_relay: RelayRunner
) -> None:
    """The fifth failure locks (429, Retry-After); then even the right password is refused;
    the owner's verified contact gets the notice and the audit log has owner.locked."""
    address, password = owner.mailbox()
    contact = f"rescue-{address.split('@')[0]}@example.org"
    _add_contact(owner, address, contact)
    ip = _client_ip()
    with owner.client() as client:
        shapes = [_shape(_attempt(client, address, "Wrong-1!", ip)) for _ in range(LIMIT)]
        right = _attempt(client, address, password, ip)
    assert shapes == [(401, "sign-in-failed", False)] * (LIMIT - 1) + [
        (429, "sign-in-locked", True)
    ]
    assert _shape(right) == (429, "sign-in-locked", True)
    assert 0 < int(right.headers["retry-after"]) <= 900
    assert right.json()["error"]["retry_after"] == int(right.headers["retry-after"])
    notice = mail_relay.wait_for(to=contact, timeout=10)
    assert address in notice.text and "locked" in notice.text
    assert password not in notice.text
    locked = list_records(owner.services.store, target=address, action="owner.locked")
    assert len(locked) == 1
    assert locked[0].details == {"client": ip, "seconds": 900}


def _without_seconds(answer: httpx.Response) -> tuple[int, dict[str, Any], bool]:
    """The answer with the seconds left replaced by "about the lockout" (the clock runs on)."""
    document = answer.json()
    seconds = document["error"].pop("retry_after", None)
    header = answer.headers.get("retry-after")
    assert (seconds is None) == (header is None)
    assert seconds is None or (895 <= seconds <= 900 and str(seconds) == header)
    return answer.status_code, document, header is not None


def test_unknown_address_is_locked_the_same_way(owner: OwnerSite) -> None:
    """No enumeration: an address with no mailbox gives the same answers, in the same order."""
    known, _ = owner.mailbox()
    unknown = f"nobody-{known}"
    answers: dict[str, list[Any]] = {}
    with owner.client() as client:
        for address in (known, unknown):
            ip = _client_ip()
            seen = [_attempt(client, address, "Wrong-2!", ip) for _ in range(LIMIT + 1)]
            answers[address] = [_without_seconds(a) for a in seen]
    assert answers[known] == answers[unknown]
    assert answers[known][-1][0] == 429


def test_lock_ends_after_lockout_seconds(owner: OwnerSite) -> None:
    """After [web] signin_lockout_seconds the right password signs in again."""
    address, password = owner.mailbox()
    ip = _client_ip()
    with owner.client() as client:
        for _ in range(LIMIT):
            _attempt(client, address, "Wrong-3!", ip)
        assert _attempt(client, address, password, ip).status_code == 429
        owner.clock.offset = 901
        assert _attempt(client, address, password, ip).status_code == 201


def test_a_successful_sign_in_clears_the_count(owner: OwnerSite) -> None:
    """Failures before a successful sign-in no longer count towards the lock."""
    address, password = owner.mailbox()
    ip = _client_ip()
    with owner.client() as client:
        for _ in range(LIMIT - 1):
            assert _attempt(client, address, "Wrong-4!", ip).status_code == 401
        assert _attempt(client, address, password, ip).status_code == 201
        codes = [_attempt(client, address, "Wrong-4!", ip).status_code for _ in range(LIMIT - 1)]
    assert codes == [401] * (LIMIT - 1)


def test_clear_failures_unlocks_as_a_reset_does(owner: OwnerSite) -> None:
    """owner.clear_failures (what a password reset calls) ends the lock at once."""
    address, password = owner.mailbox()
    ip = _client_ip()
    with owner.client() as client:
        for _ in range(LIMIT):
            _attempt(client, address, "Wrong-5!", ip)
        assert _attempt(client, address, password, ip).status_code == 429
        with owner.services.store.begin() as conn:
            assert owner_service.clear_failures(conn, address) == 1
        assert _attempt(client, address, password, ip).status_code == 201


def test_one_client_is_locked_across_addresses(owner: OwnerSite) -> None:
    """signin_max_failures_per_client failures from one IP, each on another address, lock that
    IP (even for a right password); another IP is not affected."""
    web = dataclasses.replace(owner.services.settings.web, signin_max_failures_per_client=3)
    settings = dataclasses.replace(owner.services.settings, web=web)
    store, now = owner.services.store, int(owner.clock())
    address, password = owner.mailbox()
    ip, other = _client_ip(), _client_ip()
    outcomes = []
    for n in range(3):
        try:
            owner_service.sign_in(
                store, settings, f"x{n}-{address}", Secret("Wrong-6!"), client=ip, now=now
            )
        except (SignInFailed, SignInLocked) as exc:
            outcomes.append(exc.code)
    assert outcomes == ["sign-in-failed", "sign-in-failed", "sign-in-locked"]
    with pytest.raises(SignInLocked):
        owner_service.sign_in(store, settings, address, Secret(password), client=ip, now=now)
    signed = owner_service.sign_in(
        store, settings, address, Secret(password), client=other, now=now
    )
    assert signed.session.address == address


def test_client_address_comes_from_the_trusted_proxy(owner: OwnerSite) -> None:
    """Behind the proxy (127.0.0.1, trusted), the session records X-Forwarded-For's address."""
    address, password = owner.mailbox()
    ip = _client_ip()
    with owner.client() as client:
        answer = _attempt(client, address, password, ip)
    assert answer.status_code == 201
    with owner.services.store.read() as conn:
        clients = conn.execute(
            select(owner_sessions.c.client).where(owner_sessions.c.address == address)
        ).scalars()
        assert list(clients) == [ip]
