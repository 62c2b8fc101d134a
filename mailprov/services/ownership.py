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

from sqlalchemy import insert, select, update

from mailprov.errors import DomainNotVerified, TemporaryFailure, WrongRequestState
from mailprov.rules.addresses import normalise_domain
from mailprov.rules.dnscheck import Outcome
from mailprov.store import audit
from mailprov.store.schema import domains
from mailprov.system.dns import Querier, system_nameserver

if TYPE_CHECKING:
    from mailprov.rules.dnscheck import Nameserver
    from mailprov.services.accounts import Actor
    from mailprov.store import Store

RECORD_PREFIX = "_mailprov-challenge"
VALUE_PREFIX = "mailprov-verify="


@dataclass(frozen=True)
class Challenge:
    """The TXT record to publish."""

    domain: str
    name: str
    value: str
    added: bool

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "domain": self.domain,
            "record": {"name": self.name, "type": "TXT", "value": self.value},
            "domain_added": self.added,
        }


def start(store: Store, name: str, *, actor: Actor) -> Challenge:
    """Create (or replace) the domain's ownership challenge."""
    a_label = normalise_domain(name)
    token = secrets.token_urlsafe(24)
    with store.begin() as conn:
        row = conn.execute(select(domains).where(domains.c.name == a_label)).first()
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
    return Challenge(a_label, f"{RECORD_PREFIX}.{a_label}.", VALUE_PREFIX + token, added)


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
