"""Sweep steps of the owner's side: password-age reminders, and ending expired sessions.

**Reminders.** ``[passwords] reminder_days`` (14) before a password reaches the policy's
maximum age (``max_age_days``, or the policy's own: 90 days for "source", none for
"nist"), the owner's verified recovery contacts are told, with the portal's address.
Once per password: each reminder is an ``owner.password-reminder`` audit record, and a
mailbox with such a record newer than its ``password_changed_at`` is not reminded
again; a new password starts over (no new column: the audit log already says it). A
reminder that reached no contact (the smarthost was down, say) is not recorded, so the
next sweep tries again. Mailboxes with a temporary password (they have their own
expiry) are left out; those without a verified contact are listed, not reminded.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, or_, select

from mailprov.errors import MailprovError
from mailprov.services import lockout
from mailprov.services.accounts import effective_max_age
from mailprov.store import audit
from mailprov.store.schema import audit_log, mailboxes, owner_sessions, recovery_contacts
from mailprov.system import notify

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig
    from mailprov.store import Store

log = logging.getLogger(__name__)

DAY = 86_400
REMINDER = "owner.password-reminder"


def _due(store: Store, settings: SiteConfig, now: int) -> list[tuple[Any, list[str]]]:
    """(mailbox row, verified contacts) of each password due a reminder and not yet reminded."""
    max_age = effective_max_age(settings.passwords)
    days = settings.passwords.reminder_days
    if not max_age or not days:
        return []
    cutoff = now - max(max_age - days, 0) * DAY
    with store.read() as conn:
        rows = conn.execute(
            select(mailboxes.c.address, mailboxes.c.password_changed_at)
            .where(mailboxes.c.active, ~mailboxes.c.must_change)
            .where(mailboxes.c.password_changed_at <= cutoff)
            .order_by(mailboxes.c.address)
        ).all()
        if not rows:
            return []
        # Reminders sent since the oldest of these passwords was set (the 'at' index).
        oldest = min(r.password_changed_at for r in rows)
        reminded: dict[str, int] = {}
        for record in conn.execute(
            select(audit_log.c.target, audit_log.c.at).where(
                audit_log.c.at >= oldest, audit_log.c.action == REMINDER
            )
        ):
            reminded[record.target] = max(reminded.get(record.target, 0), record.at)
        contacts: dict[str, list[str]] = {}
        for contact in conn.execute(
            select(recovery_contacts.c.address, recovery_contacts.c.contact)
            .where(recovery_contacts.c.verified_at.is_not(None))
            .order_by(recovery_contacts.c.contact)
        ):
            contacts.setdefault(contact.address, []).append(contact.contact)
    return [
        (r, contacts.get(r.address, []))
        for r in rows
        # A reminder counts for the password it was sent about: one set before it.
        if reminded.get(r.address, -1) <= r.password_changed_at
    ]


def _message(settings: SiteConfig, address: str, expires: int, contact: str) -> notify.Message:
    day = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d")
    enforced = settings.passwords.enforce_max_age
    after = "it will no longer open your mail" if enforced else "it counts as stale"
    body = (
        f"The password of your mailbox {address} reaches its maximum age on {day}; "
        f"after that {after}.\n\n"
        f"Set a new password at {settings.portal_url()} before then.\n"
    )
    return notify.Message(contact, f"Your password for {address} expires on {day}", body)


def send_reminders(store: Store, settings: SiteConfig, now: int) -> list[dict[str, Any]]:
    """Remind each due owner once per password; one item per due mailbox, with its result
    (``sent``, ``failed``: no contact reached, retried next time; ``no-contact``)."""
    max_age = effective_max_age(settings.passwords) or 0
    items = []
    for row, contacts in _due(store, settings, now):
        expires = row.password_changed_at + max_age * DAY
        item: dict[str, Any] = {"address": row.address, "expires_at": expires}
        sent = 0
        for contact in contacts:
            try:
                notify.send(
                    settings.notify,
                    _message(settings, row.address, expires, contact),
                    base_dir=settings.base_dir,
                )
                sent += 1
            except MailprovError as exc:
                log.warning("password reminder for %s not sent: %s", row.address, exc.code)
        if sent:
            with store.begin() as conn:
                audit.append(
                    conn,
                    at=now,
                    actor="sweep",
                    action=REMINDER,
                    target=row.address,
                    details={"expires_at": expires, "contacts": sent},
                )
        item["result"] = "sent" if sent else ("failed" if contacts else "no-contact")
        items.append(item)
    return items


def end_sessions(store: Store, settings: SiteConfig, now: int) -> tuple[list[dict[str, Any]], int]:
    """Delete the owners' sessions that ended (idle or past their maximum), and sign-in
    failure counts whose window and lock are over: (sessions per address, counts removed)."""
    idle = settings.web.session_idle_minutes * 60
    ended = or_(owner_sessions.c.expires_at <= now, owner_sessions.c.last_seen_at + idle <= now)
    with store.begin() as conn:
        addresses = list(conn.execute(select(owner_sessions.c.address).where(ended)).scalars())
        conn.execute(delete(owner_sessions).where(ended))
        pruned = lockout.prune(conn, settings.web, now=now)
    counts: dict[str, int] = {}
    for address in addresses:
        counts[address] = counts.get(address, 0) + 1
    return [{"address": a, "sessions": n} for a, n in sorted(counts.items())], pruned
