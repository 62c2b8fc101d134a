"""App passwords: one per mail client, random, shown once, revocable.

With two-factor authentication on, IMAP, POP3 and SMTP AUTH refuse the main
password (a mail client cannot ask for a code); the owner gives each client an
app password instead. Dovecot checks them itself, through a second passdb query
over ``app_passwords`` (``templates/dovecot/2.3/dovecot-app-passwords.conf.ext.j2``),
so revoking one takes effect at the next login, with nothing cached.

An app password is 120 random bits; the store keeps ``{SHA256.HEX}`` of it (why a
fast unsalted hash is right here: :data:`mailprov.rules.hashing.APP_PASSWORD_SCHEME`).
App passwords work whether or not two-factor authentication is on; turning it
off does not revoke them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select

from mailprov.errors import AlreadyExists, InvalidValue, NotFound
from mailprov.model import Secret
from mailprov.rules import hashing
from mailprov.rules import twofactor as rules
from mailprov.rules.addresses import parse_address
from mailprov.services import accounts, owner
from mailprov.store.schema import app_passwords

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mailprov.settings import SiteConfig
    from mailprov.store import Store

LABEL_MAX = 64
#: More would be a sign of a script creating them in a loop.
MAX_PER_MAILBOX = 20


@dataclass(frozen=True)
class AppPassword:
    """One app password as listed (never its hash)."""

    id: int
    address: str
    label: str
    created_at: int
    last_used_at: int | None

    def to_json(self) -> dict[str, Any]:
        """The listing's form."""
        return {
            "id": self.id,
            "label": self.label,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
        }


def clean_label(raw: str) -> str:
    """A label as stored: trimmed, 1-64 characters, no control characters.

    Raises:
        InvalidValue: empty, too long, or with control characters.
    """
    label = unicodedata.normalize("NFC", raw).strip()
    if not label or len(label) > LABEL_MAX:
        raise InvalidValue(
            f"an app password's label must be 1-{LABEL_MAX} characters",
            hint="name the client, e.g. 'Thunderbird on the laptop'",
            field="label",
        )
    if any(unicodedata.category(c).startswith("C") for c in label):
        raise InvalidValue(
            "an app password's label may not hold control characters",
            hint="use letters, digits, spaces and punctuation",
            field="label",
        )
    return label


def _row(row: Any) -> AppPassword:
    return AppPassword(row.id, row.address, row.label, row.created_at, row.last_used_at)


def list_for(store: Store, address: str) -> list[AppPassword]:
    """The app passwords of ``address`` (normalised), oldest first."""
    with store.read() as conn:
        rows = conn.execute(
            select(app_passwords)
            .where(app_passwords.c.address == address)
            .order_by(app_passwords.c.id)
        )
        return [_row(r) for r in rows]


def create(
    store: Store, settings: SiteConfig, address: str, raw_label: str, *, now: int
) -> tuple[AppPassword, Secret]:
    """A new app password for ``address``; the secret is returned once and never again.

    Raises:
        InvalidValue: a bad label, or the mailbox has MAX_PER_MAILBOX already.
        AlreadyExists: the mailbox has an app password with that label.
    """
    label = clean_label(raw_label)
    secret = rules.new_app_password()
    with store.begin() as conn:
        accounts.mailbox_row(conn, address)
        mine = select(app_passwords).where(app_passwords.c.address == address)
        count = conn.execute(select(func.count()).select_from(mine.subquery())).scalar_one()
        if count >= MAX_PER_MAILBOX:
            raise InvalidValue(
                f"a mailbox has at most {MAX_PER_MAILBOX} app passwords",
                hint="revoke one that is no longer used",
            )
        if conn.execute(mine.where(app_passwords.c.label == label)).first() is not None:
            raise AlreadyExists(
                f"there is already an app password labelled {label!r}",
                hint="choose another label, or revoke the old one first",
            )
        inserted = conn.execute(
            insert(app_passwords).values(
                address=address,
                label=label,
                password_hash=hashing.app_password_hash(secret),
                created_at=now,
                last_used_at=None,
            )
        ).inserted_primary_key
        new_id = int(inserted[0]) if inserted is not None else 0
        contacts = owner.security_event(
            conn, address, "app-password-created", now=now, details={"id": new_id, "label": label}
        )
    owner.send_security_notices(settings, address, "app-password-created", contacts)
    return AppPassword(int(new_id), address, label, now, None), Secret(secret)


def _find(conn: Connection, address: str, which: str, *, id_only: bool) -> Any:
    """The app password of ``address`` named by id (digits) or else (unless ``id_only``)
    by label."""
    mine = select(app_passwords).where(app_passwords.c.address == address)
    row = None
    if which.isdigit() and len(which) < 12:
        row = conn.execute(mine.where(app_passwords.c.id == int(which))).first()
    if row is None and not id_only:
        row = conn.execute(mine.where(app_passwords.c.label == which.strip())).first()
    if row is None:
        raise NotFound(
            f"{address} has no app password {which[:LABEL_MAX]!r}",
            hint="list them to see their ids and labels",
        )
    return row


def revoke(
    store: Store,
    settings: SiteConfig,
    address: str,
    which: str,
    *,
    now: int,
    actor: str | None = None,
    dry_run: bool = False,
    id_only: bool = False,
) -> AppPassword:
    """Revoke one app password of ``address``, named by id or label; the next login with it
    fails. Returns the one revoked (or, with ``dry_run``, the one that would be).

    Raises:
        NotFound: no such app password for this mailbox.
    """
    with store.begin() as conn:
        row = _find(conn, address, which, id_only=id_only)
        if dry_run:
            return _row(row)
        conn.execute(delete(app_passwords).where(app_passwords.c.id == row.id))
        contacts = owner.security_event(
            conn,
            address,
            "app-password-revoked",
            now=now,
            actor=actor,
            details={"id": row.id, "label": row.label},
        )
    owner.send_security_notices(settings, address, "app-password-revoked", contacts)
    return _row(row)


def admin_list(store: Store, raw: str) -> tuple[str, list[AppPassword]]:
    """The app passwords of mailbox ``raw`` (normalised address, list).

    Raises:
        NotFound: no such mailbox.
    """
    address = str(parse_address(raw))
    with store.read() as conn:
        accounts.mailbox_row(conn, address)
    return address, list_for(store, address)


def admin_revoke(
    store: Store,
    settings: SiteConfig,
    raw: str,
    which: str | None,
    *,
    actor: accounts.Actor,
    dry_run: bool = False,
) -> tuple[str, list[AppPassword]]:
    """Revoke one app password of mailbox ``raw`` (by id or label), or all when ``which``
    is None. Returns the address and those revoked (or that would be, with ``dry_run``).

    Raises:
        NotFound: no such mailbox, or no such app password.
    """
    address, existing = admin_list(store, raw)
    targets = [str(p.id) for p in existing] if which is None else [which]
    done = [
        revoke(store, settings, address, t, now=actor.now, actor=actor.name, dry_run=dry_run)
        for t in targets
    ]
    return address, done
