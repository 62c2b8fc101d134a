"""Domain ownership proof for corporate mailboxes: a DNS TXT challenge.

``start`` stores a random token on the domain (adding the domain *inactive* if
it is not served yet, so nothing is delivered for it before the proof) and
returns the record to publish: ``_mailprov-challenge.DOMAIN TXT "mailprov-verify=TOKEN"``.
``verify`` asks DNS (dnspython) and, when the record is there, marks the domain
verified and active.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update

from mailprov.errors import DomainNotVerified, RateLimited, TemporaryFailure, WrongRequestState
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


@dataclass(frozen=True)
class Challenge:
    """The TXT record to publish."""

    domain: str
    name: str
    value: str
    added: bool
    changed: bool = True

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
) -> Challenge:
    """Create the domain's ownership challenge, or return the one it has.

    A token younger than ``TOKEN_KEEP_SECONDS`` is kept (it may already be
    published), and nothing is written (``Challenge.changed`` is False); ``renew``
    replaces it, as does its age. ``per_actor_hour``: refuse a new challenge when ``actor``
    (e.g. one client address) started this many in the last hour — each may add a domain —
    counted in the transaction that writes.

    Raises:
        RateLimited: ``actor`` started ``per_actor_hour`` challenges within the hour.
    """
    a_label = normalise_domain(name)
    with store.begin() as conn:
        row = conn.execute(select(domains).where(domains.c.name == a_label)).first()
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
        if added:
            conn.execute(
                insert(domains).values(
                    name=a_label,
                    active=False,
                    created_at=actor.now,
                    challenge=token,
                    challenge_created_at=actor.now,
                )
            )
        else:
            conn.execute(
                update(domains)
                .where(domains.c.name == a_label)
                .values(challenge=token, challenge_created_at=actor.now)
            )
        audit.append(
            conn,
            at=actor.now,
            actor=actor.name,
            action="domain.verify-start",
            target=a_label,
            details={"added_inactive": added},
        )
    return _challenge(a_label, token, added=added, changed=True)


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


def proof(store: Store, name: str) -> Proof:
    """The domain's ownership proof as it stands (reads only)."""
    a_label = normalise_domain(name)
    with store.read() as conn:
        row = conn.execute(select(domains).where(domains.c.name == a_label)).first()
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
        raise RateLimited(
            f"{per_hour} domain ownership proofs were started from this client within the "
            "last hour; nothing was changed",
            hint="wait an hour, or finish the proofs already started",
        )


def _challenge(a_label: str, token: str, *, added: bool, changed: bool) -> Challenge:
    return Challenge(a_label, f"{RECORD_PREFIX}.{a_label}.", VALUE_PREFIX + token, added, changed)


def verify(store: Store, name: str, *, actor: Actor, nameserver: Nameserver | None = None) -> bool:
    """Check the TXT record; mark the domain verified and active. Returns whether it changed.

    ``nameserver`` defaults to the first one of /etc/resolv.conf.
    """

    a_label = normalise_domain(name)
    with store.read() as conn:
        row = conn.execute(select(domains).where(domains.c.name == a_label)).first()
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
