"""Checking a two-factor proof inside a transaction: TOTP codes, recovery codes, the
password, the failure count and the lock. :mod:`mailprov.services.twofactor` builds the
owner's operations on these.

Every check runs in the caller's write transaction, which first locks the mailbox's
``owner_totp`` row (:func:`totp_row`: ``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN
IMMEDIATE`` serialises writers), so two requests with the same code cannot both pass:
the accepted time step is kept in ``last_step`` and no code of that step or an earlier
one is accepted again. A refusal must still be counted, so a check never raises its
refusal: it returns an :class:`Outcome`, the caller commits, and :func:`finish` sends
the notices and raises.

Wrong, expired and reused codes and wrong passwords all count as failures of the
mailbox (``login_failures`` key ``2fa:ADDRESS``): at ``[web] two_factor_max_failures``
within ``two_factor_lock_minutes`` the second step is locked for that long, sessions
waiting for a code end, and the owner's contacts are told.

Recovery codes are stored as ``HMAC-SHA256(pepper, "2fa|address|recovery-code|code")``
(:func:`mailprov.identity.codes.code_mac`): a code is 60 random bits, so a slow salted
hash would add nothing but cost (a salted hash cannot be looked up, so each try would
mean ten Argon2 runs); the pepper, kept outside the store, means a copy of the database
cannot even test guesses; and the address in the MAC ties a code to its mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, insert, select, update

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
from mailprov.services import accounts, owner
from mailprov.store.schema import login_failures, owner_recovery_codes, owner_sessions, owner_totp

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mailprov.settings import SiteConfig
    from mailprov.store import Store

RECOVERY_CID = "2fa"
RECOVERY_PURPOSE = "recovery-code"
TOTP = "totp"
RECOVERY_CODE = "recovery-code"
PASSWORD = "password"  # noqa: S105  (a method's name, not a password)


@dataclass
class Outcome:
    """A check in a transaction: how it passed, or the error to raise after commit."""

    method: str | None = None
    error: MailprovError | None = None
    #: (event, contacts) notices to send after commit.
    notices: list[tuple[str, list[str]]] = field(default_factory=list)


def failure_key(address: str) -> str:
    """The mailbox's row in ``login_failures``."""
    return f"2fa:{address}"


def totp_row(conn: Connection, address: str) -> Any:
    """The mailbox's owner_totp row, locked until the transaction ends (None if none)."""
    return conn.execute(
        select(owner_totp).where(owner_totp.c.address == address).with_for_update()
    ).first()


#: The lock's end, by ``key`` (:func:`failure_key`); built once with a bind parameter, as
#: building a statement per call costs more than the query (also a subquery of the status).
LOCKED_UNTIL = select(login_failures.c.locked_until).where(login_failures.c.key == bindparam("key"))


def locked_until(conn: Connection, address: str, now: int) -> int | None:
    """Until when the mailbox's second step is locked (None: it is not)."""
    until = conn.execute(LOCKED_UNTIL, {"key": failure_key(address)}).scalar_one_or_none()
    return still_locked(until, now)


def still_locked(until: int | None, now: int) -> int | None:
    """``until`` if that lock has not ended by ``now``, else None."""
    return int(until) if until is not None and until > now else None


def _locked(until: int) -> TwoFactorLocked:
    return TwoFactorLocked(
        "too many wrong two-factor codes: the second step is locked for a while",
        locked_until=until,
    )


def _count_failure(conn: Connection, settings: SiteConfig, address: str, now: int) -> int | None:
    """Count one failure; at the limit lock the second step and return until when."""
    key = failure_key(address)
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


def _failed(
    conn: Connection, settings: SiteConfig, address: str, now: int, error: MailprovError
) -> Outcome:
    """A refusal, counted; the lock's error (and notice) when this one reached the limit."""
    until = _count_failure(conn, settings, address, now)
    if until is None:
        return Outcome(error=error)
    contacts = owner.security_event(
        conn, address, "locked", now=now, details={"step": "two-factor", "until": until}
    )
    return Outcome(error=_locked(until), notices=[("locked", contacts)])


def _passed(conn: Connection, address: str, method: str) -> Outcome:
    conn.execute(delete(login_failures).where(login_failures.c.key == failure_key(address)))
    return Outcome(method=method)


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
    mine = (owner_recovery_codes.c.address == address, owner_recovery_codes.c.code_hash == mac)
    used = conn.execute(
        update(owner_recovery_codes)
        .where(*mine, owner_recovery_codes.c.used_at.is_(None))
        .values(used_at=now)
    ).rowcount
    if used:
        return None
    if conn.execute(select(owner_recovery_codes.c.used_at).where(*mine)).first() is None:
        return TwoFactorCodeInvalid()
    return TwoFactorCodeReused(
        "that recovery code was already used", hint="use another one; each works only once"
    )


def verify(
    conn: Connection,
    settings: SiteConfig,
    pepper: bytes,
    row: Any,
    raw: str,
    *,
    now: int,
    recovery: bool,
) -> Outcome:
    """Check a code (six digits: TOTP; else, if ``recovery``, a recovery code).

    A pass is recorded (``last_step``, or the recovery code's ``used_at``) and clears
    the failure count; a refusal is counted.
    """
    address = row.address
    until = locked_until(conn, address, now)
    if until is not None:
        return Outcome(error=_locked(until))
    if recovery and not rules.looks_like_totp(raw):
        method, error = RECOVERY_CODE, _use_recovery_code(conn, pepper, address, raw, now)
    else:
        method, error = TOTP, _use_totp(conn, pepper, row, raw, now)
    if error is None:
        return _passed(conn, address, method)
    return _failed(conn, settings, address, now, error)


def password_matches(store: Store, address: str, password: Secret | None) -> bool | None:
    """Whether ``password`` is the mailbox's (None when none was given). Checked before the
    transaction: a slow hash should not hold the row lock."""
    if password is None:
        return None
    return hashing.verify_password(password.reveal(), accounts.current_hash(store, address))


def check_password(
    conn: Connection, settings: SiteConfig, address: str, good: bool, *, now: int
) -> Outcome:
    """The result of :func:`password_matches` as a check: a wrong password counts too."""
    until = locked_until(conn, address, now)
    if until is not None:
        return Outcome(error=_locked(until))
    if good:
        return _passed(conn, address, PASSWORD)
    wrong = SignInFailed("the password is wrong", hint="type the password you sign in with")
    return _failed(conn, settings, address, now, wrong)


def proof(
    conn: Connection,
    settings: SiteConfig,
    pepper: bytes,
    row: Any,
    *,
    code: Secret | None,
    password_good: bool | None,
    now: int,
) -> Outcome:
    """A current code or recovery code, or else the password (see :func:`password_matches`)."""
    if code is not None:
        return verify(conn, settings, pepper, row, code.reveal(), now=now, recovery=True)
    return check_password(conn, settings, row.address, bool(password_good), now=now)


def finish(settings: SiteConfig, address: str, outcome: Outcome) -> None:
    """After commit: send the outcome's notices, then raise its error if any."""
    for event, contacts in outcome.notices:
        owner.send_security_notices(settings, address, event, contacts)
    if outcome.error is not None:
        raise outcome.error


#: The unused recovery codes, by ``address``; built once with a bind parameter, as building
#: a statement per call costs more than the query (also a subquery of the status).
CODES_LEFT = select(func.count()).where(
    owner_recovery_codes.c.address == bindparam("address"),
    owner_recovery_codes.c.used_at.is_(None),
)


def codes_left(conn: Connection, address: str) -> int:
    """Unused recovery codes of ``address``."""
    return int(conn.execute(CODES_LEFT, {"address": address}).scalar_one())


def new_recovery_codes(conn: Connection, pepper: bytes, address: str) -> list[Secret]:
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


def remove(conn: Connection, address: str) -> None:
    """Delete the mailbox's secret, recovery codes and failure count."""
    conn.execute(delete(owner_totp).where(owner_totp.c.address == address))
    conn.execute(delete(owner_recovery_codes).where(owner_recovery_codes.c.address == address))
    conn.execute(delete(login_failures).where(login_failures.c.key == failure_key(address)))
