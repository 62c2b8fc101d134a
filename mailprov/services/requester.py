"""The requester's own way through provisioning: an address check, secret handles, status, history.

A request's number (``TA87-TFM8``) is short enough to read over the phone, so it
is no secret: anyone may guess one. What lets a person follow *their* request is
its **handle**, 32 random bytes shown once when the request is opened and stored
only as an HMAC with the site pepper (``requests.handle_mac``), so a copy of the
store opens no request. Every later step names the number and gives the handle;
a wrong handle, a missing one, a request opened without one (by the administrator's
CLI) and an unknown number all get the same :class:`~mailprov.errors.RequestUnknown`
after the same work (one query, one MAC, one constant-time comparison).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mailprov.errors import AddressTaken, RequestUnknown, UnknownDomain
from mailprov.model import LIVE_REQUEST_STATES, Secret, iso
from mailprov.rules.addresses import parse_address
from mailprov.services import accounts, ownership, provisioning
from mailprov.store import audit
from mailprov.store.schema import domains, requests

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mailprov.rules.addresses import Address
    from mailprov.services.accounts import Actor
    from mailprov.services.provisioning import Request, Sender
    from mailprov.settings import SiteConfig
    from mailprov.store import Store

HANDLE_BYTES = 32
#: The longest handle worth hashing (a real one is 43 characters).
HANDLE_MAX = 128
_ALPHABET = re.escape(provisioning.ID_ALPHABET)
NUMBER_RE = re.compile(f"[{_ALPHABET}]{{4}}-[{_ALPHABET}]{{4}}")
_NO_MAC = "0" * 64


def handle_mac(pepper: bytes, handle: str) -> str:
    """The stored form of a request handle: HMAC-SHA256 with the site pepper, hex."""
    data = b"request-handle|" + handle.encode("utf-8", "replace")
    return hmac.new(pepper, data, hashlib.sha256).hexdigest()


def open_request(
    store: Store,
    settings: SiteConfig,
    pepper: bytes,
    *,
    send: Sender,
    actor: Actor,
    domain_handle: Secret | None = None,
    **fields: Any,
) -> tuple[Request, Secret]:
    """Open a request (``fields`` as :func:`provisioning.open_request` takes them) with a new
    handle; returns the request and the handle, to be shown once and never stored.

    At a domain proven through the portal (``domains.proof_mac`` set), ``domain_handle``
    must be that proof's (:func:`ownership.holds`), else
    :class:`~mailprov.errors.DomainHandleRequired`.
    """
    handle = Secret(secrets.token_urlsafe(HANDLE_BYTES))
    request = provisioning.open_request(
        store,
        settings,
        send=send,
        actor=actor,
        handle_mac=handle_mac(pepper, handle.reveal()),
        per_actor_hour=settings.web.requests_per_client_hour,
        domain_bound=lambda mac: mac is None or ownership.holds(pepper, mac, domain_handle),
        **fields,
    )
    return request, handle


def find(store: Store, pepper: bytes, raw_number: str, handle: Secret | None) -> str:
    """The request ID that ``raw_number`` and ``handle`` name together.

    Raises:
        RequestUnknown: the same for an unknown number and a wrong or missing handle.
    """
    number = provisioning.normalise_id(raw_number)
    well_formed = NUMBER_RE.fullmatch(number) is not None
    given = handle.reveal().strip() if handle is not None else ""
    expected = handle_mac(pepper, given[:HANDLE_MAX])
    stored = None
    if well_formed:  # anything else cannot be an ID (and must not reach the database)
        with store.read() as conn:
            stored = conn.execute(
                select(requests.c.handle_mac).where(requests.c.id == number)
            ).scalar_one_or_none()
    same = hmac.compare_digest(stored or _NO_MAC, expected)
    if not (same and stored and given):
        raise RequestUnknown(request_id=number if well_formed else None)
    return number


@dataclass(frozen=True)
class Availability:
    """Whether an address can be requested now, and free alternatives when it cannot."""

    address: str
    available: bool
    suggestions: list[str]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "address": self.address,
            "available": self.available,
            "suggestions": self.suggestions,
        }


def _pending(conn: Connection, candidates: list[str]) -> set[str]:
    """Which of ``candidates`` a live request holds."""
    rows = conn.execute(
        select(requests.c.address).where(
            requests.c.address.in_(candidates), requests.c.state.in_(LIVE_REQUEST_STATES)
        )
    ).scalars()
    return set(rows)


def _suggestions(conn: Connection, address: Address) -> list[str]:
    candidates = accounts.free_suggestions(conn, address, count=accounts.SUGGESTIONS * 2)
    held = _pending(conn, candidates)
    return [c for c in candidates if c not in held][: accounts.SUGGESTIONS]


def check_address(store: Store, raw: str) -> Availability:
    """Check ``raw`` as ``request open`` would: the address rules, a domain served here and
    active, and no mailbox, alias or live request holding it.

    Raises:
        InvalidAddress: a rule is broken (or a role address).
        UnknownDomain: the domain is not served here, or its ownership proof is pending.
    """
    try:
        address = accounts.check_available(store, raw)
    except AddressTaken:
        address = None
    parsed = address or parse_address(raw)
    with store.read() as conn:
        active = conn.execute(
            select(domains.c.active).where(domains.c.name == parsed.domain)
        ).scalar_one()
        if not active:
            raise UnknownDomain(
                f"{parsed.domain} is not active here (its ownership proof is pending)"
            )
        free = address is not None and not _pending(conn, [str(parsed)])
        return Availability(str(parsed), free, [] if free else _suggestions(conn, parsed))


@dataclass(frozen=True)
class RequestStatus:
    """A request as its requester sees it: the request and its history."""

    request: Request
    history: list[dict[str, Any]]


def _event(record: Any) -> dict[str, Any]:
    details = record.details
    event: dict[str, Any] = {"at": iso(record.at), "event": record.action.removeprefix("request.")}
    state = details.get("to") or details.get("state")
    if state:
        event["state"] = state
    reason = details.get("idg") or details.get("error")
    if reason:
        event["reason"] = reason
    return event


def history(store: Store, request_id: str) -> list[dict[str, Any]]:
    """What happened to a request, oldest first: time, event, new state, reason code.

    Built from the audit log; the evidence (issuer, subject, key fingerprint) and
    who acted stay out of it.
    """
    with store.read() as conn:
        records = audit.records(conn, target=request_id, action="request.")
    return [_event(r) for r in records]


def status(
    store: Store, settings: SiteConfig, request_id: str, *, send: Sender, actor: Actor
) -> RequestStatus:
    """The request and its history; a request past its time is expired first (and its
    recovery contact told), so the state shown is the real one.
    """
    warnings = provisioning.expire_if_late(store, settings, request_id, send=send, actor=actor)
    request = replace(provisioning.get_request(store, request_id), warnings=tuple(warnings))
    return RequestStatus(request, history(store, request_id))
