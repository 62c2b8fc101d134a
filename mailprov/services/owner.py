"""The mailbox owner's own sign-in: sessions, the forced first change, security events.

A session is a random token handed to the owner once (as a cookie, or as a bearer
token for scripts); the store keeps only its SHA-256, so a copy of the store opens
no session. Each session has a *stage* (:class:`~mailprov.model.SessionStage`):
with a temporary password the only thing it may do is set a new one; with
two-factor authentication on it must first give a code. Interfaces (``web/``)
check the stage an operation needs; this module moves sessions between stages.

Sign-in never tells whether an address exists: an unknown address, a disabled
mailbox and a wrong password get the same answer after the same work (the
password is checked against a stand-in hash of the configured scheme). Failures
are counted per address and per client IP (:mod:`mailprov.services.lockout`);
past the limit both are refused for a while, the same way for unknown addresses,
and the owner of a real mailbox is told.

Security events (password changed, two-factor on/off, app password created or
revoked, contact added or removed, lockout) go through :func:`security_event`:
an audit record in the transaction that made the change, and after it commits a
notice to each verified recovery contact of the mailbox.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import and_, bindparam, delete, insert, select, update

from mailprov.errors import (
    MailprovError,
    NotSignedIn,
    PasswordPolicy,
    SignInFailed,
    SignInLocked,
)
from mailprov.model import Secret, SessionStage
from mailprov.rules import hashing
from mailprov.rules.addresses import parse_address
from mailprov.services import accounts, lockout
from mailprov.store import audit
from mailprov.store.schema import (
    app_passwords,
    domains,
    mailboxes,
    owner_sessions,
    owner_totp,
    recovery_contacts,
)
from mailprov.system import notify

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mailprov.settings import SiteConfig
    from mailprov.store import Store

log = logging.getLogger(__name__)

TOKEN_BYTES = 32
#: last_seen_at is written at most this often (not on every request).
TOUCH_SECONDS = 60


@dataclass(frozen=True)
class OwnerSession:
    """A live session: whose, what it may do, and until when."""

    address: str
    stage: SessionStage
    id_hash: str
    created_at: int
    expires_at: int
    #: When it was last recorded as used (:func:`touch_session`).
    last_seen_at: int = 0


@dataclass(frozen=True)
class SignedIn:
    """A new session and its token (shown to the client once, never stored)."""

    token: Secret
    session: OwnerSession


def token_hash(token: str) -> str:
    """The stored form of a session token."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def csrf_token(pepper: bytes, token: Secret) -> str:
    """The CSRF token bound to a session token (HMAC with the site pepper)."""
    mac = hmac.new(pepper, b"csrf|" + token.reveal().encode(), hashlib.sha256)
    return mac.hexdigest()


def csrf_ok(pepper: bytes, token: Secret, given: str) -> bool:
    """Whether ``given`` is the session's CSRF token (constant time)."""
    return hmac.compare_digest(csrf_token(pepper, token).encode(), given.encode("utf-8", "replace"))


@cache
def _stand_in_hash(scheme: str) -> str:
    """A hash of the configured scheme to check against when there is no mailbox."""
    return hashing.hash_password(secrets.token_urlsafe(16), scheme)


def _actor(address: str) -> str:
    return f"owner:{address}"


def _first_stage(conn: Connection, row: Any) -> SessionStage:
    totp = conn.execute(
        select(owner_totp.c.enabled_at).where(owner_totp.c.address == row.address)
    ).scalar_one_or_none()
    if totp is not None:
        return SessionStage.SECOND_FACTOR
    if row.must_change:
        return SessionStage.CHANGE_PASSWORD
    return SessionStage.FULL


def sign_in(
    store: Store,
    settings: SiteConfig,
    raw_address: str,
    password: Secret,
    *,
    client: str,
    now: int,
) -> SignedIn:
    """Check address and password; open a session at its first stage.

    Raises:
        SignInLocked: too many failures of this address or this client lately; the
            same for every address, known or not, and even with the right password.
        SignInFailed: the same for an unknown address, a disabled mailbox or domain,
            and a wrong password.
        PasswordPolicy: the password was right but is a temporary one that expired.
    """
    address, account = lockout.account_for(raw_address)
    keys = [account, lockout.client_key(client)]
    with store.read() as conn:
        wait = lockout.locked_for(conn, keys, now=now)
        row = (
            conn.execute(
                select(mailboxes)
                .join(domains, domains.c.id == mailboxes.c.domain_id)
                .where(and_(mailboxes.c.address == address, mailboxes.c.active, domains.c.active))
            ).first()
            if address and not wait
            else None
        )
    if wait:
        raise SignInLocked(retry_after=wait)
    stored = row.password_hash if row is not None else _stand_in_hash(settings.passwords.scheme)
    good = hashing.verify_password(password.reveal(), stored)
    if row is None or not good:
        _failed(store, settings, keys, address if row is not None else "", client, now)
    if row.temp_password_expires_at is not None and row.temp_password_expires_at <= now:
        raise PasswordPolicy(
            "the temporary password has expired",
            hint="ask for a password reset, or ask the administrator for a new temporary password",
        )
    token = Secret(secrets.token_urlsafe(TOKEN_BYTES))
    web = settings.web
    expires = now + web.session_max_hours * 3600
    with store.begin() as conn:
        stage = _first_stage(conn, row)
        session = OwnerSession(address, stage, token_hash(token.reveal()), now, expires)
        conn.execute(
            insert(owner_sessions).values(
                id_hash=session.id_hash,
                address=address,
                stage=stage.value,
                client=client[:64],
                created_at=now,
                last_seen_at=now,
                expires_at=expires,
            )
        )
        conn.execute(delete(owner_sessions).where(owner_sessions.c.expires_at <= now))
        lockout.clear_failures(conn, address)
        audit.append(
            conn,
            at=now,
            actor=_actor(address),
            action="owner.sign-in",
            target=address,
            details={"client": client[:64], "stage": stage.value},
        )
    return SignedIn(token, session)


def _failed(
    store: Store, settings: SiteConfig, keys: list[str], address: str, client: str, now: int
) -> NoReturn:
    """Count a failed sign-in; tell a real mailbox's owner when it locks. Always raises.

    ``address`` is empty unless a mailbox has it. The notice goes out in the
    background, so the answer takes no longer for a real address than for an unknown one.
    """
    contacts: list[str] = []
    with store.begin() as conn:
        failure = lockout.record_failure(
            conn, settings.web, account=keys[0], client=keys[1], now=now
        )
        if failure.account_locked and address:
            contacts = security_event(
                conn,
                address,
                "locked",
                now=now,
                actor=f"client:{client[:64]}",
                details={"client": client[:64], "seconds": failure.retry_after},
            )
    if failure.client_locked:
        log.warning("sign-in locked for client %s after too many failures", client[:64])
    if contacts:
        threading.Thread(
            target=send_security_notices,
            args=(settings, address, "locked", contacts),
            name="security-notice",
            daemon=True,
        ).start()
    if failure.retry_after:
        raise SignInLocked(retry_after=failure.retry_after)
    raise SignInFailed


def clear_failures(conn: Connection, address: str) -> int:
    """Unlock sign-in for ``address`` and forget its failures, in the caller's transaction.

    A password reset calls this: the lockout ends when the owner proves it is them.
    """
    return lockout.clear_failures(conn, address)


#: Built once with a bind parameter: building a statement per call costs more than the query.
_SESSION = select(owner_sessions).where(owner_sessions.c.id_hash == bindparam("id_hash"))


def session_for(
    store: Store, settings: SiteConfig, token: Secret, *, now: int, touch: bool = True
) -> OwnerSession:
    """The live session of ``token``, recorded as used (``touch=False``: the caller calls
    :func:`touch_session` itself, e.g. after the reads of a :meth:`Store.reading` block).

    Raises:
        NotSignedIn: no such session, or it ended (idle too long, or past its maximum).
    """
    id_hash = token_hash(token.reveal())
    idle = settings.web.session_idle_minutes * 60
    with store.read() as conn:
        row = conn.execute(_SESSION, {"id_hash": id_hash}).first()
    if row is None or row.expires_at <= now or row.last_seen_at + idle <= now:
        raise NotSignedIn
    session = OwnerSession(
        row.address,
        SessionStage(row.stage),
        id_hash,
        row.created_at,
        row.expires_at,
        row.last_seen_at,
    )
    if touch:
        touch_session(store, session, now=now)
    return session


def touch_session(store: Store, session: OwnerSession, *, now: int) -> None:
    """Record that ``session`` was used now (a write at most every TOUCH_SECONDS)."""
    if now - session.last_seen_at >= TOUCH_SECONDS:
        with store.begin() as conn:
            conn.execute(
                update(owner_sessions)
                .where(owner_sessions.c.id_hash == session.id_hash)
                .values(last_seen_at=now)
            )


def set_stage(store: Store, session: OwnerSession, stage: SessionStage) -> OwnerSession:
    """Move a session to ``stage`` (after a second factor or the forced change)."""
    with store.begin() as conn:
        conn.execute(
            update(owner_sessions)
            .where(owner_sessions.c.id_hash == session.id_hash)
            .values(stage=stage.value)
        )
    return OwnerSession(
        session.address, stage, session.id_hash, session.created_at, session.expires_at
    )


def after_first_factor(store: Store, session: OwnerSession) -> OwnerSession:
    """The stage that follows a passed second factor: the forced change, or full."""
    with store.read() as conn:
        must_change = conn.execute(
            select(mailboxes.c.must_change).where(mailboxes.c.address == session.address)
        ).scalar_one()
    stage = SessionStage.CHANGE_PASSWORD if must_change else SessionStage.FULL
    return set_stage(store, session, stage)


def sign_out(store: Store, session: OwnerSession, *, now: int) -> None:
    """End one session."""
    with store.begin() as conn:
        conn.execute(delete(owner_sessions).where(owner_sessions.c.id_hash == session.id_hash))
        audit.append(
            conn,
            at=now,
            actor=_actor(session.address),
            action="owner.sign-out",
            target=session.address,
        )


def end_sessions(conn: Connection, address: str, *, keep: str | None = None) -> int:
    """End every session of ``address`` but ``keep`` (an id hash), in the caller's transaction."""
    query = delete(owner_sessions).where(owner_sessions.c.address == address)
    if keep is not None:
        query = query.where(owner_sessions.c.id_hash != keep)
    return int(conn.execute(query).rowcount or 0)


def end_app_passwords(conn: Connection, address: str) -> int:
    """Revoke every app password of ``address`` in the caller's transaction (a new main
    password ends them as it ends sessions: one may have been made by whoever knew the old
    one). Returns how many there were."""
    return int(
        conn.execute(delete(app_passwords).where(app_passwords.c.address == address)).rowcount or 0
    )


def change_password(
    store: Store,
    settings: SiteConfig,
    session: OwnerSession,
    current: Secret,
    new: Secret,
    *,
    now: int,
) -> OwnerSession:
    """The owner sets a new password: the current one proves it is them; policy-checked,
    and it must differ. Ends the owner's other sessions and app passwords; this one becomes
    ``full``.

    Raises:
        SignInFailed: ``current`` is wrong.
        PasswordPolicy: the new password breaks the policy or equals the current one.
    """
    stored = accounts.current_hash(store, session.address)
    if not hashing.verify_password(current.reveal(), stored):
        raise SignInFailed(
            "the current password is wrong", hint="type the password you signed in with"
        )
    if hashing.verify_password(new.reveal(), stored):
        raise PasswordPolicy(
            "the new password must differ from the current one", hint="choose another password"
        )
    address = parse_address(session.address)
    prepared = accounts.prepare_password(settings.passwords, address, password=new)
    with store.begin() as conn:
        conn.execute(
            update(mailboxes)
            .where(mailboxes.c.address == session.address)
            .values(
                password_hash=prepared.hash,
                password_changed_at=now,
                must_change=False,
                temp_password_expires_at=None,
                updated_at=now,
            )
        )
        end_sessions(conn, session.address, keep=session.id_hash)
        revoked = end_app_passwords(conn, session.address)
        conn.execute(
            update(owner_sessions)
            .where(owner_sessions.c.id_hash == session.id_hash)
            .values(stage=SessionStage.FULL.value)
        )
        contacts = security_event(
            conn,
            session.address,
            "password-changed",
            now=now,
            details={"app_passwords_revoked": revoked} if revoked else None,
        )
    send_security_notices(settings, session.address, "password-changed", contacts)
    return OwnerSession(
        session.address, SessionStage.FULL, session.id_hash, session.created_at, session.expires_at
    )


# -- security events -------------------------------------------------------------------

#: What each security event's notice says (the owner reads it; no secret in it).
EVENT_TEXT = {
    "password-changed": "The password of your mailbox {address} was changed.",
    "password-reset": "The password of your mailbox {address} was reset.",
    "2fa-enabled": "Two-factor authentication was turned on for {address}.",
    "2fa-disabled": "Two-factor authentication was turned off for {address}.",
    "2fa-recovery-code-used": "A two-factor recovery code of {address} was used to sign in.",
    "app-password-created": "An app password was created for {address}.",
    "app-password-revoked": "An app password of {address} was revoked.",
    "contact-added": "A recovery contact was added to {address}.",
    "contact-removed": "A recovery contact was removed from {address}.",
    "locked": "Sign-in to {address} was locked after too many failed attempts.",
    "forwarding-changed": "The forwarding of mail from {address} to other addresses was changed.",
}


def security_event(
    conn: Connection,
    address: str,
    event: str,
    *,
    now: int,
    actor: str | None = None,
    details: dict[str, Any] | None = None,
) -> list[str]:
    """Audit ``event`` in the caller's transaction; return the contacts to notify.

    Call :func:`send_security_notices` with the result after the transaction commits.
    """
    if event not in EVENT_TEXT:  # a programming error, never user input
        msg = f"unknown security event {event!r}"
        raise ValueError(msg)
    audit.append(
        conn,
        at=now,
        actor=actor or _actor(address),
        action=f"owner.{event}",
        target=address,
        details=details or {},
    )
    rows = conn.execute(
        select(recovery_contacts.c.contact).where(
            recovery_contacts.c.address == address, recovery_contacts.c.verified_at.is_not(None)
        )
    )
    return [str(r.contact) for r in rows]


def send_security_notices(
    settings: SiteConfig, address: str, event: str, contacts: list[str]
) -> list[str]:
    """Send the event's notice to each contact; return those it could not reach.

    A notice that cannot be sent never undoes the change: it is logged (without
    the destination's details beyond the address) and reported to the caller.
    """
    failed = []
    text = EVENT_TEXT[event].format(address=address)
    body = (
        f"{text}\n\nIf this was not you, reset your password at once and tell your administrator.\n"
    )
    for contact in contacts:
        message = notify.Message(contact, f"Security notice for {address}", body)
        try:
            notify.send(settings.notify, message, base_dir=settings.base_dir)
        except MailprovError as exc:
            log.warning("security notice %s for %s not sent: %s", event, address, exc.code)
            failed.append(contact)
    return failed
