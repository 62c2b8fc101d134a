"""Two-factor authentication of the mailbox owner: TOTP enrolment, the second step of
sign-in, recovery codes, turning it off, and the administrator's view and reset.

Enrolment is two steps. :func:`start_enrolment` stores a new secret (sealed, see
:mod:`mailprov.rules.twofactor`) with ``enabled_at`` NULL and answers the
``otpauth://`` URI and its QR code: the only time the secret leaves the server.
:func:`confirm_enrolment` takes a first valid code and the password (a stolen session
alone cannot put the owner's mail behind someone else's authenticator); only then is
``enabled_at`` set, and ten single-use recovery codes are made and shown once.

How each code, recovery code or password is checked, counted and locked:
:mod:`mailprov.services.twofactor_checks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, insert, select, update

from mailprov.errors import TwoFactorState
from mailprov.model import Secret, SessionStage
from mailprov.rules import twofactor as rules
from mailprov.rules.addresses import parse_address
from mailprov.services import accounts, owner
from mailprov.services import twofactor_checks as checks
from mailprov.services.twofactor_checks import RECOVERY_CODE, TOTP
from mailprov.store import audit
from mailprov.store.schema import app_passwords, owner_sessions, owner_totp

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mailprov.services.accounts import Actor
    from mailprov.services.owner import OwnerSession
    from mailprov.settings import SiteConfig
    from mailprov.store import Store

__all__ = ["RECOVERY_CODE", "TOTP"]


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


def issuer(settings: SiteConfig) -> str:
    """The name authenticator apps show next to the account: the mail domain."""
    return settings.site.domain or settings.site.hostname


# -- the owner ---------------------------------------------------------------------------


_BY_ADDRESS = owner_totp.c.address == bindparam("address")
#: The status in one query, built once (the account page asks on every view: a statement
#: built per call, or a query per figure, costs more than the figures).
_STATUS = select(
    select(func.count()).where(_BY_ADDRESS).scalar_subquery().label("enrolled"),
    select(owner_totp.c.enabled_at).where(_BY_ADDRESS).scalar_subquery().label("enabled_at"),
    checks.CODES_LEFT.scalar_subquery().label("codes_left"),
    checks.LOCKED_UNTIL.scalar_subquery().label("locked_until"),
    select(func.count())
    .where(app_passwords.c.address == bindparam("address"))
    .scalar_subquery()
    .label("app_passwords"),
)


def status(store: Store, address: str, *, now: int) -> Status:
    """Whether two-factor authentication is on for ``address`` (a normalised address)."""
    with store.read() as conn:
        found = conn.execute(
            _STATUS, {"address": address, "key": checks.failure_key(address)}
        ).one()
    enrolled, enabled_at = bool(found.enrolled), found.enabled_at
    return Status(
        address=address,
        enabled=enabled_at is not None,
        enabled_at=enabled_at,
        pending=enrolled and enabled_at is None,
        recovery_codes_left=int(found.codes_left),
        locked_until=checks.still_locked(found.locked_until, now),
        app_passwords=int(found.app_passwords),
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
        row = checks.totp_row(conn, address)
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
    password: Secret,
    *,
    now: int,
) -> list[Secret]:
    """Turn two-factor authentication on with a first valid code and the password; return
    the recovery codes. The owner's other sessions end (they never gave a code).

    Raises:
        TwoFactorState: no set-up was started, or it is already on.
        SignInFailed: the password is wrong.
        TwoFactorCodeInvalid, TwoFactorCodeExpired, TwoFactorCodeReused, TwoFactorLocked.
    """
    address = session.address
    good = bool(checks.password_matches(store, address, password))
    made: list[Secret] = []
    with store.begin() as conn:
        row = checks.totp_row(conn, address)
        if row is None:
            raise TwoFactorState(
                "no two-factor set-up was started",
                hint="start it with POST /api/v1/account/2fa, then confirm a code",
            )
        if row.enabled_at is not None:
            raise TwoFactorState("two-factor authentication is already on")
        outcome = checks.check_password(conn, settings, address, good, now=now)
        if outcome.error is None:
            outcome = checks.verify(
                conn, settings, pepper, row, code.reveal(), now=now, recovery=False
            )
        if outcome.error is None:
            conn.execute(
                update(owner_totp).where(owner_totp.c.address == address).values(enabled_at=now)
            )
            made = checks.new_recovery_codes(conn, pepper, address)
            owner.end_sessions(conn, address, keep=session.id_hash)
            contacts = owner.security_event(conn, address, "2fa-enabled", now=now)
            outcome.notices.append(("2fa-enabled", contacts))
    checks.finish(settings, address, outcome)
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
        row = checks.totp_row(conn, address)
        if row is None or row.enabled_at is None:
            raise TwoFactorState(
                "two-factor authentication is no longer on for this mailbox",
                hint="sign in again",
            )
        outcome = checks.verify(conn, settings, pepper, row, code.reveal(), now=now, recovery=True)
        if outcome.method is not None:
            details: dict[str, Any] = {"method": outcome.method}
            if outcome.method == RECOVERY_CODE:
                left = checks.codes_left(conn, address)
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
    checks.finish(settings, address, outcome)
    return Passed(owner.after_first_factor(store, session), outcome.method or TOTP, left)


def _enabled_row(conn: Connection, address: str) -> Any:
    row = checks.totp_row(conn, address)
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
    """Turn two-factor authentication off; needs a current code (or recovery code) or the
    password. App passwords stay (they are revoked one by one); the main password opens
    IMAP, POP3 and SMTP again.

    Raises:
        TwoFactorState: it is not on.
        SignInFailed: the password is wrong.
        TwoFactorCodeInvalid, TwoFactorCodeExpired, TwoFactorCodeReused, TwoFactorLocked.
    """
    address = session.address
    good = checks.password_matches(store, address, password)
    with store.begin() as conn:
        row = _enabled_row(conn, address)
        outcome = checks.proof(conn, settings, pepper, row, code=code, password_good=good, now=now)
        if outcome.error is None:
            checks.remove(conn, address)
            contacts = owner.security_event(
                conn, address, "2fa-disabled", now=now, details={"proof": outcome.method}
            )
            outcome.notices.append(("2fa-disabled", contacts))
    checks.finish(settings, address, outcome)


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
    good = checks.password_matches(store, address, password)
    made: list[Secret] = []
    with store.begin() as conn:
        row = _enabled_row(conn, address)
        outcome = checks.proof(conn, settings, pepper, row, code=code, password_good=good, now=now)
        if outcome.error is None:
            made = checks.new_recovery_codes(conn, pepper, address)
            audit.append(
                conn,
                at=now,
                actor=f"owner:{address}",
                action="owner.2fa-recovery-codes-renewed",
                target=address,
            )
    checks.finish(settings, address, outcome)
    return made


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
    contacts: list[str] = []
    with store.begin() as conn:
        accounts.mailbox_row(conn, address)
        row = checks.totp_row(conn, address)
        if row is None or dry_run:
            return row is not None
        checks.remove(conn, address)
        conn.execute(
            delete(owner_sessions).where(
                owner_sessions.c.address == address,
                owner_sessions.c.stage == SessionStage.SECOND_FACTOR.value,
            )
        )
        if row.enabled_at is not None:
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
    if contacts:
        owner.send_security_notices(settings, address, "2fa-disabled", contacts)
    return True
