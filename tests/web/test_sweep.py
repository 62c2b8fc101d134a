"""The sweep's owner-side steps on the session's site: password-age reminders and ended sessions.

The sweep is run as the timer runs it (``services.sweep.sweep``) with ``now`` moved
forward, so a password ages without waiting; reminders go by SMTP to the session relay.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from mailprov.services.audit import list_records
from mailprov.services.sweep import sweep
from mailprov.store.schema import mailboxes, owner_sessions, recovery_contacts
from mailprov.testing import RelayRunner
from tests.conftest import invoke
from tests.web.conftest import OwnerSite

DAY = 86_400


def _contact(site: OwnerSite, address: str, contact: str, *, verified: bool = True) -> None:
    now = int(site.clock())
    with site.services.store.begin() as conn:
        conn.execute(
            insert(recovery_contacts).values(
                address=address,
                contact=contact,
                kind="email",
                verified_at=now if verified else None,
                created_at=now,
            )
        )


def _age(site: OwnerSite, address: str, days: int) -> int:
    """Make the password ``days`` old; returns its new password_changed_at."""
    changed = int(site.clock()) - days * DAY
    with site.services.store.begin() as conn:
        conn.execute(
            update(mailboxes)
            .where(mailboxes.c.address == address)
            .values(password_changed_at=changed)
        )
    return changed


def _step(site: OwnerSite, name: str, now: int) -> dict[str, Any]:
    steps = sweep(site.services.store, site.services.settings, now=now)
    return next(s.to_json() for s in steps if s.name == name)


def _mine(step: dict[str, Any], address: str) -> list[dict[str, Any]]:
    return [i for i in step["items"] if i["address"] == address]


def test_reminder_once_per_password_to_verified_contacts(
    owner: OwnerSite, mail_relay: RelayRunner
) -> None:
    """76 days into a 90-day policy (14 days left) the verified contact is reminded, with the
    date and the portal; an unverified one is not; the next sweep does not remind again."""
    address, _ = owner.mailbox()
    contact, unverified = f"r1-{address}".replace("@", "-at-") + "@example.org", "u@example.org"
    _contact(owner, address, contact)
    _contact(owner, address, unverified, verified=False)
    now = int(owner.clock())
    changed = _age(owner, address, 75)
    assert _mine(_step(owner, "password-reminders", now), address) == []
    first = _step(owner, "password-reminders", now + DAY)
    assert _mine(first, address) == [
        {"address": address, "expires_at": changed + 90 * DAY, "result": "sent"}
    ]
    message = mail_relay.wait_for(to=contact, timeout=10)
    assert address in message.subject
    assert owner.services.settings.portal_url() in message.text
    assert mail_relay.messages(to=unverified) == []
    assert _mine(_step(owner, "password-reminders", now + 2 * DAY), address) == []
    assert len(mail_relay.messages(to=contact)) == 1
    records = list_records(owner.services.store, target=address, action="owner.password-reminder")
    assert [r.details for r in records] == [{"expires_at": changed + 90 * DAY, "contacts": 1}]


def test_a_new_password_is_reminded_again(owner: OwnerSite, mail_relay: RelayRunner) -> None:
    """After a reminder, a new password ages from its own change and gets its own reminder."""
    address, _ = owner.mailbox()
    contact = f"r2-{address}".replace("@", "-at-") + "@example.org"
    _contact(owner, address, contact)
    now = int(owner.clock())
    _age(owner, address, 80)
    assert _mine(_step(owner, "password-reminders", now), address)[0]["result"] == "sent"
    _age(owner, address, 0)  # the owner set a new password now
    assert _mine(_step(owner, "password-reminders", now + 10 * DAY), address) == []
    later = _step(owner, "password-reminders", now + 80 * DAY)
    assert _mine(later, address)[0]["result"] == "sent"
    assert len(mail_relay.messages(to=contact)) == 2


def test_unsent_reminder_is_tried_again_and_no_contact_is_listed(
    owner: OwnerSite, mail_relay: RelayRunner
) -> None:
    """A refused reminder is 'failed' and not recorded, so the next sweep sends it; a mailbox
    without a verified contact is listed as 'no-contact'."""
    address, _ = owner.mailbox()
    lonely, _ = owner.mailbox()
    contact = f"r3-{address}".replace("@", "-at-") + "@example.org"
    _contact(owner, address, contact)
    now = int(owner.clock())
    _age(owner, address, 80)
    _age(owner, lonely, 80)
    mail_relay.fault(f"rcpt:{contact}=550 5.1.1 no such user")
    step = _step(owner, "password-reminders", now)
    assert _mine(step, address)[0]["result"] == "failed"
    assert _mine(step, lonely)[0]["result"] == "no-contact"
    assert list_records(owner.services.store, target=address, action="owner.password-") == []
    mail_relay.clear_faults()
    assert _mine(_step(owner, "password-reminders", now), address)[0]["result"] == "sent"
    mail_relay.wait_for(to=contact, timeout=10)


def test_ended_sessions_are_deleted(owner: OwnerSite) -> None:
    """An idle session is deleted by the sweep; a live one stays."""
    address, password = owner.mailbox()
    with owner.client() as client:
        owner.sign_in(client, address, password)
    now = int(owner.clock())
    assert _mine(_step(owner, "expired-sessions", now), address) == []
    idle = owner.services.settings.web.session_idle_minutes * 60
    ended = _step(owner, "expired-sessions", now + idle + 1)
    assert _mine(ended, address) == [{"address": address, "sessions": 1}]
    with owner.services.store.read() as conn:
        left = conn.execute(
            select(owner_sessions.c.id_hash).where(owner_sessions.c.address == address)
        ).all()
    assert left == []


def test_sweep_command_lists_the_new_steps(owner: OwnerSite) -> None:
    """'mailprov sweep --json' runs the reminder and session steps too."""
    result = invoke("sweep", config=owner.config, state_dir=owner.folder / "state", json=True)
    assert result.exit_code == 0, result.output
    names = [s["step"] for s in result.data["steps"]]
    assert names[-2:] == ["password-reminders", "expired-sessions"]
