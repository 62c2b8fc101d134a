"""A mailbox's recovery contacts: where reset codes and security notices go.

A contact is a mail address, or an E.164 phone number when ``[notify] hook`` (an
SMS gateway) is set (:mod:`mailprov.rules.contacts`). Only *verified* contacts
are used: the request's contact becomes the first at provisioning (it received
the gate's code), and a contact added later is verified only when the code sent
to it comes back (:mod:`mailprov.services.owner_codes`). An administrator may mark
a contact verified directly; the audit log says who.

The last verified contact cannot be removed (``allow_last`` lifts that for the
administrator): without one, a forgotten password has no way back but the
administrator, and a session taken over by someone else could silence every later
security notice. Adding or removing a verified contact is a security event,
notified to the contacts (the removed one included: it is the one to warn).
Audit records show contacts masked (``a***@example.org``, ``+79*****4567``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, delete, func, insert, select, update

from mailprov.errors import (
    AlreadyExists,
    ContactNotPending,
    InvalidValue,
    LastRecoveryContact,
    MailprovError,
    NotFound,
)
from mailprov.model import ContactKind, iso
from mailprov.rules.addresses import parse_address
from mailprov.rules.contacts import is_phone, mask, parse_contact
from mailprov.services import owner, owner_codes
from mailprov.services.accounts import mailbox_row
from mailprov.store import audit
from mailprov.store.schema import mailboxes, recovery_contacts
from mailprov.system import notify

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mailprov.settings import SiteConfig
    from mailprov.store import Store

log = logging.getLogger(__name__)

#: At most this many contacts (verified or waiting) per mailbox.
MAX_CONTACTS = 10


@dataclass(frozen=True)
class RecoveryContact:
    """One recovery contact of a mailbox."""

    contact: str
    kind: ContactKind
    verified_at: int | None
    created_at: int

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "contact": self.contact,
            "kind": self.kind.value,
            "verified": self.verified_at is not None,
            "verified_at": iso(self.verified_at),
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True)
class ContactChange:
    """What an add or remove did: the contact, whether anything changed, when a code expires."""

    contact: RecoveryContact
    changed: bool
    code_expires_at: int | None = None


def _contact(row: Any) -> RecoveryContact:
    return RecoveryContact(row.contact, ContactKind(row.kind), row.verified_at, row.created_at)


def _row(conn: Connection, address: str, contact: str) -> Any:
    return conn.execute(
        select(recovery_contacts).where(
            recovery_contacts.c.address == address, recovery_contacts.c.contact == contact
        )
    ).first()


def verified_contacts(conn: Connection, address: str) -> list[str]:
    """The verified contacts of ``address`` (empty for an unknown address)."""
    rows = conn.execute(
        select(recovery_contacts.c.contact)
        .where(recovery_contacts.c.address == address, recovery_contacts.c.verified_at.is_not(None))
        .order_by(recovery_contacts.c.created_at, recovery_contacts.c.contact)
    )
    return [str(r.contact) for r in rows]


def bind_provisioned(
    conn: Connection, address: str, *, identity: str | None, contact: str, now: int
) -> None:
    """At provisioning: bind the gate account, and make the request's contact the first one."""
    conn.execute(update(mailboxes).where(mailboxes.c.address == address).values(identity=identity))
    kind = ContactKind.PHONE if is_phone(contact) else ContactKind.EMAIL
    conn.execute(
        insert(recovery_contacts).values(
            address=address, contact=contact, kind=kind, verified_at=now, created_at=now
        )
    )


#: Built once with a bind parameter: building a statement per call costs more than the query.
_CONTACTS = (
    select(recovery_contacts)
    .where(recovery_contacts.c.address == bindparam("address"))
    .order_by(recovery_contacts.c.created_at, recovery_contacts.c.contact)
)


def list_contacts(store: Store, raw_address: str) -> list[RecoveryContact]:
    """The recovery contacts of a mailbox, oldest first.

    Raises:
        NotFound: there is no such mailbox.
    """
    address = str(parse_address(raw_address))
    with store.read() as conn:
        mailbox_row(conn, address)
        return [_contact(r) for r in conn.execute(_CONTACTS, {"address": address})]


def _code_message(address: str, contact: str, code: str, minutes: int) -> notify.Message:
    return notify.Message(
        contact,
        f"Code to confirm a recovery contact for {address}",
        f"Your code to confirm this recovery contact for the mailbox {address} is {code}.\n"
        f"It expires in {minutes} minutes. If you did not ask for this, ignore this message.\n",
    )


def add_contact(
    store: Store,
    settings: SiteConfig,
    pepper: bytes,
    raw_address: str,
    raw_contact: str,
    *,
    now: int,
    actor: str | None = None,
    verified: bool = False,
    dry_run: bool = False,
) -> ContactChange:
    """Add a recovery contact; a code is sent to it, unless ``verified`` (the administrator).

    A contact waiting for its code is sent a new one. ``actor`` None means the owner.

    Raises:
        RecoveryInvalid: a malformed contact, a phone number without an SMS gateway, or
            the mailbox itself.
        AlreadyExists: it is a verified contact already (an administrator's ``verified``
            add reports it unchanged instead).
        InvalidValue: the mailbox has the most contacts there may be.
        RateLimited: a code was sent to it (or for this mailbox) too recently or too often.
        RecoveryUnreachable, TemporaryFailure: the code could not be sent.
    """
    address = str(parse_address(raw_address))
    contact = parse_contact(raw_contact, phones=bool(settings.notify.hook), mailbox=address)
    kind = ContactKind(contact.kind)
    ident = settings.identity
    with store.begin() as conn:
        mailbox_row(conn, address)
        row = _row(conn, address, contact.value)
        if row is not None and row.verified_at is not None:
            if verified:
                return ContactChange(_contact(row), changed=False)
            raise AlreadyExists(f"{contact.value} is already a verified recovery contact")
        count = conn.execute(
            select(func.count()).where(recovery_contacts.c.address == address)
        ).scalar_one()
        if row is None and count >= MAX_CONTACTS:
            raise InvalidValue(
                f"{address} has {count} recovery contacts, the most there may be",
                hint="remove one first",
            )
        if dry_run:
            return ContactChange(RecoveryContact(contact.value, kind, None, now), changed=True)
        if row is None:
            conn.execute(
                insert(recovery_contacts).values(
                    address=address, contact=contact.value, kind=kind, created_at=now
                )
            )
        details = {"contact": mask(contact.value), "kind": kind.value}
        if verified:
            conn.execute(
                update(recovery_contacts)
                .where(
                    recovery_contacts.c.address == address,
                    recovery_contacts.c.contact == contact.value,
                )
                .values(verified_at=now)
            )
            notices = owner.security_event(
                conn,
                address,
                "contact-added",
                now=now,
                actor=actor,
                details={**details, "verified_by": "administrator"},
            )
            issued = None
        else:
            owner_codes.check_rate(
                conn,
                ident,
                purposes=(owner_codes.CONTACT,),
                now=now,
                address=address,
                destination=contact.value,
            )
            owner_codes.supersede(conn, address, (owner_codes.CONTACT,), contact.value)
            issued = owner_codes.issue(
                conn,
                pepper,
                address=address,
                purpose=owner_codes.CONTACT,
                destination=contact.value,
                now=now,
                ttl=ident.code_ttl_seconds,
            )
            audit.append(
                conn,
                at=now,
                actor=actor or f"owner:{address}",
                action="owner.contact-pending",
                target=address,
                details=details,
            )
        added = _contact(_row(conn, address, contact.value))
    if issued is None:
        owner.send_security_notices(settings, address, "contact-added", notices)
        return ContactChange(added, changed=True)
    message = _code_message(
        address, contact.value, issued.secret.reveal(), ident.code_ttl_seconds // 60
    )
    try:
        notify.send(settings.notify, message, base_dir=settings.base_dir)
    except MailprovError:
        with store.begin() as conn:
            owner_codes.undelivered(conn, issued.cid)
        raise
    return ContactChange(added, changed=True, code_expires_at=issued.expires_at)


def confirm_contact(
    store: Store,
    settings: SiteConfig,
    pepper: bytes,
    raw_address: str,
    raw_contact: str,
    code: str,
    *,
    now: int,
) -> RecoveryContact:
    """The owner gives the code sent to a new contact: it becomes verified.

    Raises:
        ContactNotPending: no such contact waits for a code (unknown, or verified already).
        CodeInvalid, CodeExpired, CodeUsed, RequestLocked: the IDG-K checks of the code.
    """
    address = str(parse_address(raw_address))
    contact = parse_contact(raw_contact, phones=True, mailbox=address).value
    with store.begin() as conn:
        row = _row(conn, address, contact)
        if row is None or row.verified_at is not None:
            raise ContactNotPending(f"{contact} is not a recovery contact waiting for its code")
        result = owner_codes.check(
            conn,
            settings.identity,
            pepper,
            address=address,
            purpose=owner_codes.CONTACT,
            code=code,
            now=now,
            destination=contact,
        )
        if result.error is None:
            conn.execute(
                update(recovery_contacts)
                .where(
                    recovery_contacts.c.address == address,
                    recovery_contacts.c.contact == contact,
                )
                .values(verified_at=now)
            )
            notices = owner.security_event(
                conn,
                address,
                "contact-added",
                now=now,
                details={"contact": mask(contact), "kind": row.kind},
            )
            done = _contact(_row(conn, address, contact))
    if result.error is not None:
        raise result.error
    owner.send_security_notices(settings, address, "contact-added", notices)
    return done


def remove_contact(
    store: Store,
    settings: SiteConfig,
    raw_address: str,
    raw_contact: str,
    *,
    now: int,
    actor: str | None = None,
    allow_last: bool = False,
    missing_ok: bool = False,
    dry_run: bool = False,
) -> ContactChange | None:
    """Remove a recovery contact; a verified one is a security event (notified to it too).

    Returns None when it is no contact and ``missing_ok``.

    Raises:
        NotFound: it is not a contact of the mailbox (or there is no such mailbox).
        LastRecoveryContact: it is the last verified one (and not ``allow_last``).
    """
    address = str(parse_address(raw_address))
    contact = parse_contact(raw_contact, phones=True).value
    with store.begin() as conn:
        mailbox_row(conn, address)
        row = _row(conn, address, contact)
        if row is None and missing_ok:
            return None
        if row is None:
            raise NotFound(
                f"{contact} is not a recovery contact of {address}",
                hint="list them with 'mailprov mailbox contact list ADDRESS'",
            )
        removed = _contact(row)
        verified = row.verified_at is not None
        if verified and not allow_last and len(verified_contacts(conn, address)) <= 1:
            raise LastRecoveryContact(
                f"{contact} is the last verified recovery contact of {address}"
            )
        if dry_run:
            return ContactChange(removed, changed=True)
        conn.execute(
            delete(recovery_contacts).where(
                and_(recovery_contacts.c.address == address, recovery_contacts.c.contact == contact)
            )
        )
        details = {"contact": mask(contact), "kind": row.kind}
        if verified:
            notices = owner.security_event(
                conn, address, "contact-removed", now=now, actor=actor, details=details
            )
        else:
            notices = []
            audit.append(
                conn,
                at=now,
                actor=actor or f"owner:{address}",
                action="owner.contact-remove-pending",
                target=address,
                details=details,
            )
    if verified:
        owner.send_security_notices(settings, address, "contact-removed", [*notices, contact])
    return ContactChange(removed, changed=True)
