"""Two-factor authentication of the mailbox owner: TOTP enrolment, the second step of
sign-in, recovery codes, turning it off, and the administrator's view and reset.

Enrolment is two steps. :func:`start_enrolment` stores a new secret (sealed, see
:mod:`mailprov.rules.twofactor`) with ``enabled_at`` NULL and answers the
``otpauth://`` URI and its QR code: the only time the secret leaves the server.
:func:`confirm_enrolment` takes a first valid code; only then is ``enabled_at``
set, and ten single-use recovery codes are made and shown once.

Every code check runs in one write transaction that first locks the mailbox's
``owner_totp`` row (``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE``
serialises writers), so two requests with the same code cannot both pass: the
accepted time step is kept in ``last_step`` and no code of that step or an
earlier one is accepted again. Wrong, expired and reused codes all count as
failures of the mailbox (``login_failures`` key ``2fa:ADDRESS``): at ``[web]
two_factor_max_failures`` within ``two_factor_lock_minutes`` the second step is
locked for that long, sessions waiting for a code end, and the owner's contacts
are told.

Recovery codes are stored as ``HMAC-SHA256(pepper, "2fa|address|recovery-code|code")``
(:func:`mailprov.identity.codes.code_mac`): a code is 60 random bits, so a slow
salted hash would add nothing but cost (a salted hash cannot be looked up, so each
try would mean ten Argon2 runs); the pepper, kept outside the store, means a copy
of the database cannot even test guesses; and the address in the MAC ties a code
to its mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, func, insert, select, update

from mailprov.errors import (
    MailprovError,
    SignInFailed,
    TwoFactorCodeExpired,
    TwoFactorCodeInvalid,
    TwoFactorCodeReused,
    TwoFactorLocked,
    TwoFactorState,
)
from mailprov.identity import codes
from mailprov.model import Secret, SessionStage
from mailprov.rules import hashing
from mailprov.rules import twofactor as rules
from mailprov.rules.addresses import parse_address
from mailprov.services import accounts, owner
from mailprov.store import audit
from mailprov.store.schema import (
    app_passwords,
    login_failures,
    owner_recovery_codes,
    owner_sessions,
    owner_totp,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mailprov.services.accounts import Actor
    from mailprov.services.owner import OwnerSession
    from mailprov.settings import SiteConfig
    from mailprov.store import Store

RECOVERY_CID = "2fa"
RECOVERY_PURPOSE = "recovery-code"
TOTP = "totp"
RECOVERY_CODE = "recovery-code"


@dataclass(frozen=True)
class Enrolment:
    """A started enrolment: what the authenticator app needs (all of it holds the secret)."""

    secret: Secret
    uri: Secret
    qr_svg: Secret


@dataclass(frozen=True)
class Status:
    """Whether two-factor authentication is on, and what is left of it."""

    address: str
    enabled: bool
    enabled_at: int | None
    pending: bool
    recovery_codes_left: int
    locked_until: int | None
    app_passwords: int = 0

    def to_json(self) -> dict[str, Any]:
        """The status as JSON (no secret in it)."""
        return {
            "address": self.address,
            "enabled": self.enabled,
            "enabled_at": self.enabled_at,
            "pending": self.pending,
            "recovery_codes_left": self.recovery_codes_left,
            "locked_until": self.locked_until,
            "app_passwords": self.app_passwords,
        }


@dataclass(frozen=True)
class Passed:
    """A passed second step: the session's new stage, and how it was passed."""

    session: OwnerSession
    method: str
    recovery_codes_left: int | None = None


@dataclass
class _Outcome:
    """A code check in a transaction: how it passed, or the error to raise after commit."""

    method: str | None = None
    error: MailprovError | None = None
    locked_contacts: list[str] | None = None
    notices: list[tuple[str, list[str]]] = field(default_factory=list)


def issuer(settings: SiteConfig) -> str:
    """The name authenticator apps show next to the account: the mail domain."""
    return settings.site.domain or settings.site.hostname


def _failure_key(address: str) -> str:
    return f"2fa:{address}"


def _totp_row(conn: Connection, address: str) -> Any:
    """The mailbox's owner_totp row, locked until the transaction ends (None if none)."""
    return conn.execute(
        select(owner_totp).where(owner_totp.c.address == address).with_for_update()
    ).first()


def _locked_until(conn: Connection, address: str, now: int) -> int | None:
    until = conn.execute(
        select(login_failures.c.locked_until).where(login_failures.c.key == _failure_key(address))
    ).scalar_one_or_none()
    return int(until) if until is not None and until > now else None


def _count_failure(conn: Connection, settings: SiteConfig, address: str, now: int) -> int | None:
    """Count one wrong code; at the limit lock the second step and return until when."""
    key = _failure_key(address)
    window = settings.web.two_factor_lock_minutes * 60
    row = conn.execute(select(login_failures).where(login_failures.c.key == key)).first()
    if row is None:
        conn.execute(insert(login_failures).values(key=key, failures=1, window_start=now))
        failures = 1
    elif row.window_start + window <= now:
        failures = 1
        conn.execute(
            update(login_failures)
            .where(login_failures.c.key == key)
            .values(failures=1, window_start=now, locked_until=None)
        )
    else:
        failures = row.failures + 1
        conn.execute(
            update(login_failures).where(login_failures.c.key == key).values(failures=failures)
        )
    if failures < settings.web.two_factor_max_failures:
        return None
    until = now + window
    conn.execute(
        update(login_failures)
        .where(login_failures.c.key == key)
        .values(failures=0, window_start=now, locked_until=until)
    )
    conn.execute(
        delete(owner_sessions).where(
            owner_sessions.c.address == address,
            owner_sessions.c.stage == SessionStage.SECOND_FACTOR.value,
        )
    )
    return until


def _use_totp(
    conn: Connection, pepper: bytes, row: Any, raw: str, now: int
) -> MailprovError | None:
    secret = rules.unseal_secret(pepper, row.address, row.secret)
    if secret is None:
        # Not the owner's fault, and not a guess: refuse without counting it.
        raise TwoFactorState(
            "the two-factor secret of this mailbox cannot be read with this site's pepper",
            hint="ask the administrator to reset two-factor authentication "
            "('mailprov mailbox 2fa reset ADDRESS')",
        )
    checked = rules.check_code(secret, raw, now)
    if checked.verdict is rules.Verdict.WRONG or checked.step is None:
        return TwoFactorCodeInvalid()
    if checked.verdict is rules.Verdict.EXPIRED:
        return TwoFactorCodeExpired()
    if row.last_step is not None and checked.step <= row.last_step:
        return TwoFactorCodeReused()
    conn.execute(
        update(owner_totp).where(owner_totp.c.address == row.address).values(last_step=checked.step)
    )
    return None


def recovery_mac(pepper: bytes, address: str, code: str) -> str:
    """The stored form of a recovery code (``code`` in its normal form)."""
    return codes.code_mac(pepper, RECOVERY_CID, address, RECOVERY_PURPOSE, code)


def _use_recovery_code(
    conn: Connection, pepper: bytes, address: str, raw: str, now: int
) -> MailprovError | None:
    code = rules.normal_recovery_code(raw)
    if code is None:
        return TwoFactorCodeInvalid()
    mac = recovery_mac(pepper, address, code)
    used = conn.execute(
        update(owner_recovery_codes)
        .where(
            owner_recovery_codes.c.address == address,
            owner_recovery_codes.c.code_hash == mac,
            owner_recovery_codes.c.used_at.is_(None),
        )
        .values(used_at=now)
    ).rowcount
    if used:
        return None
    exists = conn.execute(
        select(owner_recovery_codes.c.used_at).where(
            owner_recovery_codes.c.address == address, owner_recovery_codes.c.code_hash == mac
        )
    ).first()
    if exists is None:
        return TwoFactorCodeInvalid()
    return TwoFactorCodeReused(
        "that recovery code was already used", hint="use another one; each works only once"
    )


def _verify(
    conn: Connection,
    settings: SiteConfig,
    pepper: bytes,
    row: Any,
    raw: str,
    *,
    now: int,
    recovery: bool,
) -> _Outcome:
    """Check a code in the caller's transaction (which holds the owner_totp row lock).

    A pass is recorded (``last_step`` or the recovery code's ``used_at``) and clears
    the failure count; a failure is counted. Either way the caller commits, then
    raises ``error`` if set.
    """
    address = row.address
    until = _locked_until(conn, address, now)
    if until is not None:
        return _Outcome(error=_locked(until))
    if recovery and not rules.looks_like_totp(raw):
        method, error = RECOVERY_CODE, _use_recovery_code(conn, pepper, address, raw, now)
    else:
        method, error = TOTP, _use_totp(conn, pepper, row, raw, now)
    if error is None:
        conn.execute(delete(login_failures).where(login_failures.c.key == _failure_key(address)))
        return _Outcome(method=method)
    until = _count_failure(conn, settings, address, now)
    if until is None:
        return _Outcome(error=error)
    contacts = owner.security_event(
        conn, address, "locked", now=now, details={"step": "two-factor", "until": until}
    )
    return _Outcome(error=_locked(until), locked_contacts=contacts)


def _locked(until: int) -> TwoFactorLocked:
    return TwoFactorLocked(
        "too many wrong two-factor codes: the second step is locked for a while",
        locked_until=until,
    )


def _finish(settings: SiteConfig, address: str, outcome: _Outcome) -> None:
    """After commit: send the notices, then raise the outcome's error if any."""
    if outcome.locked_contacts is not None:
        owner.send_security_notices(settings, address, "locked", outcome.locked_contacts)
    for event, contacts in outcome.notices:
        owner.send_security_notices(settings, address, event, contacts)
    if outcome.error is not None:
        raise outcome.error


def _codes_left(conn: Connection, address: str) -> int:
    return int(
        conn.execute(
            select(func.count()).where(
                owner_recovery_codes.c.address == address, owner_recovery_codes.c.used_at.is_(None)
            )
        ).scalar_one()
    )


def _new_recovery_codes(conn: Connection, pepper: bytes, address: str) -> list[Secret]:
    """Replace the mailbox's recovery codes with new ones; return them (shown once)."""
    conn.execute(delete(owner_recovery_codes).where(owner_recovery_codes.c.address == address))
    made = rules.new_recovery_codes()
    conn.execute(
        insert(owner_recovery_codes),
        [
            {
                "address": address,
                "code_hash": recovery_mac(pepper, address, rules.normal_recovery_code(c) or ""),
                "used_at": None,
            }
            for c in made
        ],
    )
    return [Secret(c) for c in made]


# -- the owner ---------------------------------------------------------------------------


def status(store: Store, address: str, *, now: int) -> Status:
    """Whether two-factor authentication is on for ``address`` (a normalised address)."""
    with store.read() as conn:
        row = conn.execute(select(owner_totp).where(owner_totp.c.address == address)).first()
        left = _codes_left(conn, address)
        until = _locked_until(conn, address, now)
        count = conn.execute(
            select(func.count()).where(app_passwords.c.address == address)
        ).scalar_one()
    return Status(
        address=address,
        enabled=row is not None and row.enabled_at is not None,
        enabled_at=row.enabled_at if row is not None else None,
        pending=row is not None and row.enabled_at is None,
        recovery_codes_left=left,
        locked_until=until,
        app_passwords=int(count),
    )


def start_enrolment(
    store: Store, settings: SiteConfig, pepper: bytes, address: str, *, now: int
) -> Enrolment:
    """Begin turning two-factor authentication on: a new secret, not yet in force.

    A set-up started earlier and never confirmed is replaced.

    Raises:
        TwoFactorState: it is already on.
    """
    secret = rules.new_secret()
    with store.begin() as conn:
        row = _totp_row(conn, address)
        if row is not None and row.enabled_at is not None:
            raise TwoFactorState(
                "two-factor authentication is already on",
                hint="turn it off first to move it to another device",
            )
        values = {
            "secret": rules.seal_secret(pepper, address, secret),
            "enabled_at": None,
            "last_step": None,
            "created_at": now,
        }
        if row is None:
            conn.execute(insert(owner_totp).values(address=address, **values))
        else:
            conn.execute(update(owner_totp).where(owner_totp.c.address == address).values(values))
        audit.append(
            conn, at=now, actor=f"owner:{address}", action="owner.2fa-setup", target=address
        )
    uri = rules.provisioning_uri(secret, address, issuer(settings))
    return Enrolment(Secret(secret), Secret(uri), Secret(rules.qr_svg(uri)))


def confirm_enrolment(
    store: Store,
    settings: SiteConfig,
    pepper: bytes,
    session: OwnerSession,
    code: Secret,
    *,
    now: int,
) -> list[Secret]:
    """Turn two-factor authentication on with a first valid code; return the recovery codes.

    The owner's other sessions end (they never gave a code).

    Raises:
        TwoFactorState: no set-up was started, or it is already on.
        TwoFactorCodeInvalid, TwoFactorCodeExpired, TwoFactorCodeReused, TwoFactorLocked.
    """
    address = session.address
    made: list[Secret] = []
    with store.begin() as conn:
        row = _totp_row(conn, address)
        if row is None:
            raise TwoFactorState(
                "no two-factor set-up was started",
                hint="start it with POST /api/v1/account/2fa, then confirm a code",
            )
        if row.enabled_at is not None:
            raise TwoFactorState("two-factor authentication is already on")
        outcome = _verify(conn, settings, pepper, row, code.reveal(), now=now, recovery=False)
        if outcome.error is None:
            conn.execute(
                update(owner_totp).where(owner_totp.c.address == address).values(enabled_at=now)
            )
            made = _new_recovery_codes(conn, pepper, address)
            owner.end_sessions(conn, address, keep=session.id_hash)
            contacts = owner.security_event(conn, address, "2fa-enabled", now=now)
            outcome.notices.append(("2fa-enabled", contacts))
    _finish(settings, address, outcome)
    return made


def pass_second_factor(
    store: Store,
    settings: SiteConfig,
    pepper: bytes,
    session: OwnerSession,
    code: Secret,
    *,
    now: int,
) -> Passed:
    """The second step of sign-in: a TOTP code (six digits) or a recovery code.

    Raises:
        TwoFactorState: two-factor authentication was turned off since sign-in.
        TwoFactorCodeInvalid, TwoFactorCodeExpired, TwoFactorCodeReused, TwoFactorLocked.
    """
    address = session.address
    left: int | None = None
    with store.begin() as conn:
        row = _totp_row(conn, address)
        if row is None or row.enabled_at is None:
            raise TwoFactorState(
                "two-factor authentication is no longer on for this mailbox",
                hint="sign in again",
            )
        outcome = _verify(conn, settings, pepper, row, code.reveal(), now=now, recovery=True)
        if outcome.method is not None:
            details: dict[str, Any] = {"method": outcome.method}
            if outcome.method == RECOVERY_CODE:
                left = _codes_left(conn, address)
                details["recovery_codes_left"] = left
                contacts = owner.security_event(
                    conn, address, "2fa-recovery-code-used", now=now, details=details
                )
                outcome.notices.append(("2fa-recovery-code-used", contacts))
            audit.append(
                conn,
                at=now,
                actor=f"owner:{address}",
                action="owner.second-factor",
                target=address,
                details=details,
            )
    _finish(settings, address, outcome)
    return Passed(owner.after_first_factor(store, session), outcome.method or TOTP, left)


def _proof(
    conn: Connection,
    settings: SiteConfig,
    pepper: bytes,
    row: Any,
    *,
    code: Secret | None,
    password_ok: bool,
    now: int,
) -> _Outcome:
    """A current code (or recovery code) checked, or the password already checked."""
    if code is not None:
        return _verify(conn, settings, pepper, row, code.reveal(), now=now, recovery=True)
    return _Outcome(method="password" if password_ok else None)


def _check_password(store: Store, address: str, password: Secret | None) -> bool:
    if password is None:
        return False
    if not hashing.verify_password(password.reveal(), accounts.current_hash(store, address)):
        raise SignInFailed("the password is wrong", hint="type the password you sign in with")
    return True


def _enabled_row(conn: Connection, address: str) -> Any:
    row = _totp_row(conn, address)
    if row is None or row.enabled_at is None:
        raise TwoFactorState(
            "two-factor authentication is not on", hint="turn it on with POST /api/v1/account/2fa"
        )
    return row


def disable(
    store: Store,
    settings: SiteConfig,
    pepper: bytes,
    session: OwnerSession,
    *,
    code: Secret | None = None,
    password: Secret | None = None,
    now: int,
) -> None:
    """Turn two-factor authentication off; needs a current code or the password.

    App passwords stay (they are revoked one by one); the main password opens
    IMAP, POP3 and SMTP again.

    Raises:
        TwoFactorState: it is not on.
        SignInFailed: the password is wrong.
        TwoFactorCodeInvalid, TwoFactorCodeExpired, TwoFactorCodeReused, TwoFactorLocked.
    """
    address = session.address
    password_ok = _check_password(store, address, password)
    with store.begin() as conn:
        row = _enabled_row(conn, address)
        outcome = _proof(conn, settings, pepper, row, code=code, password_ok=password_ok, now=now)
        if outcome.error is None:
            _remove(conn, address)
            contacts = owner.security_event(
                conn, address, "2fa-disabled", now=now, details={"proof": outcome.method}
            )
            outcome.notices.append(("2fa-disabled", contacts))
    _finish(settings, address, outcome)


def renew_recovery_codes(
    store: Store,
    settings: SiteConfig,
    pepper: bytes,
    session: OwnerSession,
    *,
    code: Secret | None = None,
    password: Secret | None = None,
    now: int,
) -> list[Secret]:
    """Replace the recovery codes with ten new ones (the old ones stop working).

    Raises:
        TwoFactorState: two-factor authentication is not on.
        SignInFailed: the password is wrong.
        TwoFactorCodeInvalid, TwoFactorCodeExpired, TwoFactorCodeReused, TwoFactorLocked.
    """
    address = session.address
    password_ok = _check_password(store, address, password)
    made: list[Secret] = []
    with store.begin() as conn:
        row = _enabled_row(conn, address)
        outcome = _proof(conn, settings, pepper, row, code=code, password_ok=password_ok, now=now)
        if outcome.error is None:
            made = _new_recovery_codes(conn, pepper, address)
            audit.append(
                conn,
                at=now,
                actor=f"owner:{address}",
                action="owner.2fa-recovery-codes-renewed",
                target=address,
            )
    _finish(settings, address, outcome)
    return made


def _remove(conn: Connection, address: str) -> None:
    conn.execute(delete(owner_totp).where(owner_totp.c.address == address))
    conn.execute(delete(owner_recovery_codes).where(owner_recovery_codes.c.address == address))
    conn.execute(delete(login_failures).where(login_failures.c.key == _failure_key(address)))


# -- the administrator -------------------------------------------------------------------


def admin_status(store: Store, raw: str, *, now: int) -> Status:
    """Two-factor status of mailbox ``raw``.

    Raises:
        NotFound: no such mailbox.
    """
    address = str(parse_address(raw))
    with store.read() as conn:
        accounts.mailbox_row(conn, address)
    return status(store, address, now=now)


def admin_reset(
    store: Store, settings: SiteConfig, raw: str, *, actor: Actor, dry_run: bool = False
) -> bool:
    """Turn two-factor authentication off for a mailbox whose owner lost the device and the
    recovery codes (a set-up in progress is dropped too). Sessions waiting for a code end;
    app passwords stay. Returns whether anything was (or, with ``dry_run``, would be) changed.

    Raises:
        NotFound: no such mailbox.
    """
    address = str(parse_address(raw))
    with store.begin() as conn:
        accounts.mailbox_row(conn, address)
        row = _totp_row(conn, address)
        if row is None or dry_run:
            return row is not None
        was_on = row.enabled_at is not None
        _remove(conn, address)
        conn.execute(
            delete(owner_sessions).where(
                and_(
                    owner_sessions.c.address == address,
                    owner_sessions.c.stage == SessionStage.SECOND_FACTOR.value,
                )
            )
        )
        if was_on:
            contacts = owner.security_event(
                conn,
                address,
                "2fa-disabled",
                now=actor.now,
                actor=actor.name,
                details={"reset_by": "administrator"},
            )
        else:
            audit.append(
                conn,
                at=actor.now,
                actor=actor.name,
                action="owner.2fa-setup-dropped",
                target=address,
            )
            contacts = []
    if contacts:
        owner.send_security_notices(settings, address, "2fa-disabled", contacts)
    return True
