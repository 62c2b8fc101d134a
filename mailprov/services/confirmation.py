"""Confirmation-code challenges (IDENTITY.md §5) inside the caller's transaction.

Issue: rate checks (resend >= 60 s, <= 5 codes an hour per account and per
destination), then a new challenge supersedes the live one. Check: the state
machine of §5.3, writing attempts, challenge state and the account's
consecutive failures; the caller commits and then raises the returned error,
so a wrong code is counted even though the command fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, insert, or_, select, update

from mailprov.errors import IdentityGateError, idg_error
from mailprov.identity import codes
from mailprov.model import CodeState, Secret, iso
from mailprov.store.schema import code_challenges, gate_accounts

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mailprov.settings import IdentitySection

PURPOSE = "provision"
HOUR = 3600
_COUNTED = (
    CodeState.LIVE,
    CodeState.USED,
    CodeState.LOCKED,
    CodeState.EXPIRED,
    CodeState.SUPERSEDED,
)


@dataclass(frozen=True)
class IssuedCode:
    """A new challenge: its id and the code (to be sent, never stored or logged)."""

    cid: str
    code: Secret
    expires_at: int


def account_lock(conn: Connection, account: str, now: int, *, request_id: str) -> None:
    """Raise IDG-K07 while the account is locked."""
    row = conn.execute(select(gate_accounts).where(gate_accounts.c.account == account)).first()
    if row is None or row.locked_until is None:
        return
    if row.locked_until == codes.LOCKED_FOR_ADMIN:
        raise idg_error(
            "IDG-K07",
            time="an administrator unlocks it",
            request_id=request_id,
            hint="ask the administrator: 'mailprov request unlock ID'",
        )
    if row.locked_until > now:
        raise idg_error("IDG-K07", time=iso(row.locked_until), request_id=request_id)


def check_rate(
    conn: Connection,
    settings: IdentitySection,
    *,
    account: str,
    destination: str,
    now: int,
    request_id: str,
) -> None:
    """Raise IDG-K06 if a code was sent too recently, or too many in the last hour."""
    recent = and_(code_challenges.c.created_at > now - HOUR, code_challenges.c.state.in_(_COUNTED))
    last = conn.execute(
        select(func.max(code_challenges.c.created_at)).where(
            recent,
            or_(code_challenges.c.account == account, code_challenges.c.destination == destination),
        )
    ).scalar()
    if last is not None and now - last < settings.resend_seconds:
        raise idg_error("IDG-K06", n=settings.resend_seconds - (now - last), request_id=request_id)
    for column, value in (
        (code_challenges.c.account, account),
        (code_challenges.c.destination, destination),
    ):
        times = sorted(
            conn.execute(
                select(code_challenges.c.created_at).where(recent, column == value)
            ).scalars()
        )
        if len(times) >= settings.codes_per_hour:
            wait = times[-settings.codes_per_hour] + HOUR - now
            raise idg_error("IDG-K06", n=max(wait, 1), request_id=request_id)


def issue(
    conn: Connection,
    settings: IdentitySection,
    pepper: bytes,
    *,
    request_id: str,
    account: str,
    destination: str,
    now: int,
) -> IssuedCode:
    """Create a live challenge (superseding any other live one for the request)."""
    conn.execute(
        update(code_challenges)
        .where(
            code_challenges.c.request_id == request_id, code_challenges.c.state == CodeState.LIVE
        )
        .values(state=CodeState.SUPERSEDED)
    )
    cid, code = codes.new_challenge_id(), codes.generate_code()
    expires = now + settings.code_ttl_seconds
    conn.execute(
        insert(code_challenges).values(
            id=cid,
            request_id=request_id,
            account=account,
            purpose=PURPOSE,
            destination=destination,
            mac=codes.code_mac(pepper, cid, account, PURPOSE, code.reveal()),
            state=CodeState.LIVE,
            attempts=0,
            created_at=now,
            expires_at=expires,
        )
    )
    return IssuedCode(cid, code, expires)


def mark_undelivered(conn: Connection, cid: str) -> None:
    """A code that could not be sent does not count against the limits."""
    conn.execute(
        update(code_challenges)
        .where(code_challenges.c.id == cid)
        .values(state=CodeState.UNDELIVERED)
    )


def _fail_account(conn: Connection, account: str, now: int) -> None:
    row = conn.execute(select(gate_accounts).where(gate_accounts.c.account == account)).first()
    failures = (row.failures if row else 0) + 1
    lock = codes.lock_seconds(failures)
    locked_until = row.locked_until if row else None
    if lock == codes.LOCKED_FOR_ADMIN:
        locked_until = codes.LOCKED_FOR_ADMIN
    elif lock is not None:
        locked_until = now + lock
    values = {"failures": failures, "locked_until": locked_until, "updated_at": now}
    if row is None:
        conn.execute(insert(gate_accounts).values(account=account, **values))
    else:
        conn.execute(
            update(gate_accounts).where(gate_accounts.c.account == account).values(**values)
        )


def reset_account(conn: Connection, account: str, now: int) -> None:
    """A right code (or an administrator) clears the consecutive failures."""
    conn.execute(
        update(gate_accounts)
        .where(gate_accounts.c.account == account)
        .values(failures=0, locked_until=None, updated_at=now)
    )


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a code check: None error means the code was right."""

    error: IdentityGateError | None
    locked_now: bool = False


def check(  # noqa: PLR0911  (one return per row of the §5.3 table)
    conn: Connection,
    settings: IdentitySection,
    pepper: bytes,
    *,
    request_id: str,
    account: str,
    code: str,
    now: int,
) -> CheckResult:
    """Check ``code`` against the request's newest challenge (§5.3), writing what it changes."""
    rid: dict[str, Any] = {"request_id": request_id}
    if not codes.is_well_formed(code):
        return CheckResult(idg_error("IDG-K01", **rid))
    row: Any = conn.execute(
        select(code_challenges)
        .where(
            code_challenges.c.request_id == request_id,
            code_challenges.c.state.notin_((CodeState.SUPERSEDED, CodeState.UNDELIVERED)),
        )
        .order_by(code_challenges.c.created_at.desc(), code_challenges.c.state.desc())
        .limit(1)
    ).first()
    cid = row.id if row is not None else codes.new_challenge_id()
    # The MAC is computed even for an unknown challenge, so timing says nothing.
    expected = codes.code_mac(pepper, cid, account, PURPOSE, code)
    if row is None or row.account != account:
        _fail_account(conn, account, now)
        return CheckResult(idg_error("IDG-K02", **rid))
    if row.state == CodeState.USED:
        return CheckResult(idg_error("IDG-K04", **rid))
    if row.state == CodeState.LOCKED:
        return CheckResult(idg_error("IDG-K05", **rid))
    if row.state == CodeState.EXPIRED or now > row.expires_at:
        conn.execute(
            update(code_challenges)
            .where(code_challenges.c.id == cid)
            .values(state=CodeState.EXPIRED)
        )
        return CheckResult(idg_error("IDG-K03", **rid))
    if codes.macs_equal(row.mac, expected):
        conn.execute(
            update(code_challenges).where(code_challenges.c.id == cid).values(state=CodeState.USED)
        )
        reset_account(conn, account, now)
        return CheckResult(None)
    attempts = row.attempts + 1
    locked = attempts >= settings.code_attempts
    conn.execute(
        update(code_challenges)
        .where(code_challenges.c.id == cid)
        .values(attempts=attempts, state=CodeState.LOCKED if locked else CodeState.LIVE)
    )
    _fail_account(conn, account, now)
    left = settings.code_attempts - attempts
    return CheckResult(
        idg_error(
            "IDG-K02", suffix=f" ({left} attempts left)", details={"attempts_left": left}, **rid
        ),
        locked_now=locked,
    )
