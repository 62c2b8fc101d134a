"""Domain ownership proof for corporate mailboxes: a DNS TXT challenge.

``start`` stores a random token on the domain (adding the domain *inactive* if
it is not served yet, so nothing is delivered for it before the proof) and
returns the record to publish: ``_mailprov-challenge.DOMAIN TXT "mailprov-verify=TOKEN"``.
``verify`` asks DNS (dnspython) and, when the record is there, marks the domain
verified and active.

Proven through the portal (``web/ownership.py``: ``pepper`` given), a proof is bound to
whoever started it: starting answers a secret **domain handle** once (32 random bytes),
stored only as an HMAC with the site pepper (``domains.proof_mac``). Looking at or checking
that proof needs the handle (a wrong or missing one answers as an unknown domain), and so
does every request at the domain (:func:`holds`, checked when a request is opened) until
the administrator opens it to all (:func:`open_requests`). Domains the administrator
added or proved (``proof_mac`` NULL) bind nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update

from mailprov.errors import (
    AlreadyExists,
    ClientRateLimited,
    DomainNotVerified,
    NotFound,
    TemporaryFailure,
    WrongRequestState,
)
from mailprov.model import Secret
from mailprov.rules.addresses import normalise_domain
from mailprov.rules.dnscheck import Outcome
from mailprov.store import audit
from mailprov.store.schema import audit_log, domains
from mailprov.system.dns import Querier, system_nameserver

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mailprov.rules.dnscheck import Nameserver
    from mailprov.services.accounts import Actor
    from mailprov.store import Store

RECORD_PREFIX = "_mailprov-challenge"
VALUE_PREFIX = "mailprov-verify="
#: How long 'domain verify-start' keeps a token instead of making a new one (30 days): a
#: re-run must not replace a record that may already be published, but a token left
#: lying around for longer is not worth keeping. 'domain verify' does not check it.
TOKEN_KEEP_SECONDS = 30 * 86_400
HOUR = 3600
HANDLE_BYTES = 32
#: The longest domain handle worth hashing (a real one is 43 characters).
HANDLE_MAX = 128
_NO_MAC = "0" * 64


def handle_mac(pepper: bytes, handle: str) -> str:
    """The stored form of a domain handle: HMAC-SHA256 with the site pepper, hex."""
    data = b"domain-handle|" + handle.encode("utf-8", "replace")
    return hmac.new(pepper, data, hashlib.sha256).hexdigest()


def holds(pepper: bytes, proof_mac: str | None, handle: Secret | None) -> bool:
    """Whether ``handle`` is the one whose MAC is ``proof_mac`` (False when either is
    missing), after the same work either way (one MAC, one constant-time comparison)."""
    given = handle.reveal().strip() if handle is not None else ""
    expected = handle_mac(pepper, given[:HANDLE_MAX])
    same = hmac.compare_digest(proof_mac or _NO_MAC, expected)
    return bool(same and proof_mac and given)


@dataclass(frozen=True)
class Challenge:
    """The TXT record to publish."""

    domain: str
    name: str
    value: str
    added: bool
    changed: bool = True
    #: A new self-service proof's domain handle (shown once, never stored).
    handle: Secret | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "domain": self.domain,
            "record": {"name": self.name, "type": "TXT", "value": self.value},
            "domain_added": self.added,
        }


def start(
    store: Store,
    name: str,
    *,
    actor: Actor,
    renew: bool = False,
    per_actor_hour: int | None = None,
    pepper: bytes | None = None,
    handle: Secret | None = None,
) -> Challenge:
    """Create the domain's ownership challenge, or return the one it has.

    A token younger than ``TOKEN_KEEP_SECONDS`` is kept (it may already be
    published), and nothing is written (``Challenge.changed`` is False); ``renew``
    replaces it, as does its age. ``per_actor_hour``: refuse a new challenge when ``actor``
    (e.g. one client address) started this many in the last hour — each may add a domain —
    counted in the transaction that writes.

    ``pepper``: a self-service proof (the portal's). A domain not served here yet is added
    bound to a new domain handle (``Challenge.handle``, shown once); an existing one only
    for the ``handle`` of its own self-service proof (then no new handle), or when another's
    self-service proof was never finished and is older than 30 days (a new token and a new
    handle: it is taken over).

    Raises:
        ClientRateLimited: ``actor`` started ``per_actor_hour`` challenges within the hour.
        AlreadyExists: self-service, and the domain is served here already (the
            administrator's) or another's proof of it was started (the handle is not its).
    """
    a_label = normalise_domain(name)
    new_handle = None
    with store.begin() as conn:
        row = conn.execute(select(domains).where(domains.c.name == a_label)).first()
        stale = row is not None and _abandoned(row, actor.now)
        if pepper is not None and stale:  # another's proof, never finished: a new one
            renew = True
        elif pepper is not None and row is not None and not holds(pepper, row.proof_mac, handle):
            raise AlreadyExists(
                f"{a_label} is served here already, or another person started proving it; "
                "nothing was changed",
                hint="give the domain handle shown when this proof was started "
                "(X-Domain-Handle), or ask the administrator of this site",
            )
        if (
            row is not None
            and row.challenge
            and not renew
            and actor.now - (row.challenge_created_at or 0) < TOKEN_KEEP_SECONDS
        ):
            return _challenge(a_label, row.challenge, added=False, changed=False)
        if per_actor_hour is not None:
            _check_rate(conn, actor, per_actor_hour)
        token = secrets.token_urlsafe(24)
        added = row is None
        proof_mac = None
        if pepper is not None and (added or stale):
            new_handle = Secret(secrets.token_urlsafe(HANDLE_BYTES))
            proof_mac = handle_mac(pepper, new_handle.reveal())
        if added:
            conn.execute(
                insert(domains).values(
                    name=a_label,
                    active=False,
                    created_at=actor.now,
                    challenge=token,
                    challenge_created_at=actor.now,
                    proof_mac=proof_mac,
                )
            )
        else:
            values: dict[str, Any] = {"challenge": token, "challenge_created_at": actor.now}
            if new_handle is not None:
                values["proof_mac"] = proof_mac
            conn.execute(update(domains).where(domains.c.name == a_label).values(**values))
        audit.append(
            conn,
            at=actor.now,
            actor=actor.name,
            action="domain.verify-start",
            target=a_label,
            details={"added_inactive": added, "bound": new_handle is not None},
        )
    found = _challenge(a_label, token, added=added, changed=True)
    return replace(found, handle=new_handle)


def _abandoned(row: Any, now: int) -> bool:
    """A self-service proof never finished, whose token is older than TOKEN_KEEP_SECONDS:
    anyone may start a new one (bound to a new handle), so that starting a proof of a
    domain one does not own holds it back from its owner for 30 days at most."""
    return (
        row.proof_mac is not None
        and row.verified_at is None
        and not row.active
        and now - (row.challenge_created_at or 0) >= TOKEN_KEEP_SECONDS
    )


@dataclass(frozen=True)
class Proof:
    """Where a domain's ownership proof stands: the record asked for (None: no challenge),
    and whether it is proven (the domain verified and active)."""

    domain: str
    challenge: Challenge | None
    verified: bool

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        record = self.challenge.to_json()["record"] if self.challenge else None
        return {"domain": self.domain, "record": record, "verified": self.verified}


def proof(
    store: Store, name: str, *, pepper: bytes | None = None, handle: Secret | None = None
) -> Proof:
    """The domain's ownership proof as it stands (reads only).

    ``pepper``: a self-service look, which sees only the proof ``handle`` opens; any other
    domain (the administrator's, another's proof, a wrong or missing handle) answers as
    one unknown here.
    """
    a_label = normalise_domain(name)
    with store.read() as conn:
        row = conn.execute(select(domains).where(domains.c.name == a_label)).first()
    if pepper is not None and not holds(pepper, row.proof_mac if row else None, handle):
        row = None
    if row is None:
        return Proof(a_label, None, verified=False)
    found = None
    if row.challenge:
        found = _challenge(a_label, row.challenge, added=False, changed=False)
    return Proof(a_label, found, verified=row.verified_at is not None and bool(row.active))


def _check_rate(conn: Connection, actor: Actor, per_hour: int) -> None:
    """Refuse a challenge beyond ``per_hour`` from one actor within the last hour (the audit
    log's records of them; its ``at`` is indexed, so this reads only the last hour)."""
    started = conn.execute(
        select(func.count()).where(
            audit_log.c.at > actor.now - HOUR,
            audit_log.c.action == "domain.verify-start",
            audit_log.c.actor == actor.name,
        )
    ).scalar_one()
    if started >= per_hour:
        raise ClientRateLimited(
            f"{per_hour} domain ownership proofs were started from this client within the "
            "last hour; nothing was changed",
            hint="wait an hour, or finish the proofs already started",
        )


def _challenge(a_label: str, token: str, *, added: bool, changed: bool) -> Challenge:
    return Challenge(a_label, f"{RECORD_PREFIX}.{a_label}.", VALUE_PREFIX + token, added, changed)


def verify(
    store: Store,
    name: str,
    *,
    actor: Actor,
    nameserver: Nameserver | None = None,
    pepper: bytes | None = None,
    handle: Secret | None = None,
) -> bool:
    """Check the TXT record; mark the domain verified and active. Returns whether it changed.

    ``nameserver`` defaults to the first one of /etc/resolv.conf. ``pepper``: a self-service
    check, of the proof ``handle`` opens only (any other: as an unknown domain).
    """

    a_label = normalise_domain(name)
    with store.read() as conn:
        row = conn.execute(select(domains).where(domains.c.name == a_label)).first()
    if pepper is not None and not holds(pepper, row.proof_mac if row else None, handle):
        row = None
    if row is None or not row.challenge:
        raise WrongRequestState(
            f"no ownership challenge for {a_label}",
            hint=f"start one with 'mailprov domain verify-start {a_label}'",
        )
    qname = f"{RECORD_PREFIX}.{a_label}."
    answer = Querier(nameserver or system_nameserver(), timeout=5.0).query(qname, "TXT")
    if answer.outcome is Outcome.FAILED:
        raise TemporaryFailure(f"DNS did not answer for {qname}: {answer.detail}")
    values = set(answer.values)
    expected = VALUE_PREFIX + row.challenge
    if expected not in values:
        raise DomainNotVerified(
            f'{qname} has no TXT record "{expected}" (found {len(values)} other value(s))',
            hint="publish the record 'domain verify-start' showed, wait for DNS, then retry",
        )
    changed = row.verified_at is None or not row.active
    with store.begin() as conn:
        conn.execute(
            update(domains)
            .where(domains.c.name == a_label)
            .values(verified_at=actor.now, active=True)
        )
        audit.append(
            conn,
            at=actor.now,
            actor=actor.name,
            action="domain.verify",
            target=a_label,
            details={"record": qname},
        )
    return changed


def bound(store: Store, name: str) -> bool:
    """Whether requests at the domain need its self-service proof's domain handle."""
    with store.read() as conn:
        found = conn.execute(
            select(domains.c.proof_mac).where(domains.c.name == normalise_domain(name))
        ).scalar_one_or_none()
    return found is not None


def open_requests(store: Store, name: str, *, actor: Actor) -> bool:
    """Open the domain to every verified applicant: forget the domain handle its
    self-service proof bound it to. Returns whether it changed (False: nothing bound).

    Raises:
        NotFound: the domain is not served here.
    """
    a_label = normalise_domain(name)
    with store.begin() as conn:
        row = conn.execute(select(domains).where(domains.c.name == a_label)).first()
        if row is None:
            raise NotFound(
                f"domain {a_label} does not exist", hint="list domains with 'mailprov domain list'"
            )
        if row.proof_mac is None:
            return False
        conn.execute(update(domains).where(domains.c.id == row.id).values(proof_mac=None))
        audit.append(
            conn,
            at=actor.now,
            actor=actor.name,
            action="domain.set",
            target=a_label,
            details={"open_requests": {"before": False, "after": True}},
        )
    return True
