"""The periodic expiry sweep (run by the mailprov-sweep systemd timer).

``SWEEP_STEPS`` is the list of steps; each takes the store, the settings and
``now`` and returns a :class:`StepResult`. Other areas add their steps here
(e.g. expiring provisioning requests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mailprov.model import iso
from mailprov.services import reminders
from mailprov.services.provisioning import expire_requests
from mailprov.services.request_notices import sender_for
from mailprov.store.schema import mailboxes

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig
    from mailprov.store import Store


@dataclass(frozen=True)
class StepResult:
    """What one sweep step found and did."""

    name: str
    changed: bool
    items: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "step": self.name,
            "changed": self.changed,
            "count": len(self.items),
            "items": self.items,
        }


def expired_temporary_passwords(store: Store, settings: SiteConfig, now: int) -> StepResult:
    """Report mailboxes whose temporary password expired unchanged (they can no longer log in).

    Nothing is changed: the passdb query already refuses them; an administrator
    gives them a new password with 'mailprov mailbox passwd'.
    """
    del settings
    query = (
        select(mailboxes.c.address, mailboxes.c.temp_password_expires_at)
        .where(mailboxes.c.temp_password_expires_at.is_not(None))
        .where(mailboxes.c.temp_password_expires_at <= now)
        .order_by(mailboxes.c.address)
    )
    with store.read() as conn:
        rows = conn.execute(query).all()
    items = [{"address": r.address, "expired_at": iso(r.temp_password_expires_at)} for r in rows]
    return StepResult("expired-temporary-passwords", changed=False, items=items)


def expired_requests(store: Store, settings: SiteConfig, now: int) -> StepResult:
    """Expire provisioning requests past their time (identity's ``expire_requests``); each
    recovery contact is told, and a notice that could not be sent is a warning on its item.
    """
    done = expire_requests(store, settings, now=now, send=sender_for(settings))
    items = [
        {"request": r.id, **({"warnings": list(r.warnings)} if r.warnings else {})} for r in done
    ]
    return StepResult("expired-requests", changed=bool(done), items=items)


def password_reminders(store: Store, settings: SiteConfig, now: int) -> StepResult:
    """Remind owners [passwords] reminder_days before their password's maximum age, once
    per password, at their verified recovery contacts (:mod:`~mailprov.services.reminders`)."""
    items = reminders.send_reminders(store, settings, now)
    return StepResult(
        "password-reminders", changed=any(i["result"] == "sent" for i in items), items=items
    )


def expired_sessions(store: Store, settings: SiteConfig, now: int) -> StepResult:
    """Delete the owners' ended sessions (and sign-in failure counts that are over)."""
    items, pruned = reminders.end_sessions(store, settings, now)
    return StepResult("expired-sessions", changed=bool(items or pruned), items=items)


Step = Callable[["Store", "SiteConfig", int], StepResult]

SWEEP_STEPS: list[Step] = [
    expired_temporary_passwords,
    expired_requests,
    password_reminders,
    expired_sessions,
]


def sweep(store: Store, settings: SiteConfig, *, now: int) -> list[StepResult]:
    """Run every sweep step in order."""
    return [step(store, settings, now) for step in SWEEP_STEPS]
