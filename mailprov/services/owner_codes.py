"""One-time codes of the owner's side (``owner_codes``): contact confirmation and password reset.

The same machinery as the gate's request codes (IDENTITY.md §5, and
:mod:`mailprov.services.confirmation`): codes from :mod:`mailprov.identity.codes`,
only their peppered HMAC stored, constant-time comparison, a MAC computed even
when there is no challenge, the same IDG-K errors, and the same limits (a new
code at most every ``[identity] resend_seconds``, at most ``codes_per_hour`` an
hour per mailbox and per destination, ``code_attempts`` wrong tries per code).
The rows are not tied to a request but to an address, which need not be a
mailbox: a reset for an unknown address gets a row too, so that it behaves —
limits, answers, work done — exactly like one for a real mailbox.

Purposes: ``contact`` (confirm a new recovery contact), ``reset-nonce`` (waiting
for an identity token bound to the reset), ``reset-code`` (waiting for the code),
``reset-grant`` (a code was right: the holder may set a new password once).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, func, insert, select, update

from mailprov.errors import idg_error
from mailprov.identity import codes
from mailprov.model import CodeState, Secret
from mailprov.services.confirmation import HOUR, CheckResult
from mailprov.store.schema import owner_codes

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy import Connection
    from sqlalchemy.sql.elements import ColumnElement

    from mailprov.settings import IdentitySection

CONTACT = "contact"
RESET_NONCE = "reset-nonce"
RESET_CODE = "reset-code"
RESET_GRANT = "reset-grant"
RESET_STARTS = (RESET_NONCE, RESET_CODE)
#: Rows are kept this long after they expire (the limits look back one hour).
KEEP_SECONDS = 24 * HOUR
_SKIPPED = (CodeState.SUPERSEDED, CodeState.UNDELIVERED)


@dataclass(frozen=True)
class Issued:
    """A new challenge: its id and its secret (to be sent, never stored or logged)."""

    cid: str
    secret: Secret
    expires_at: int


def _wait(now: int, since: int, seconds: int) -> int:
    return max(since + seconds - now, 1)


def check_rate(
    conn: Connection,
    settings: IdentitySection,
    *,
    purposes: Sequence[str],
    now: int,
    address: str | None = None,
    destination: str | None = None,
    client: str | None = None,
    per_client: int | None = None,
) -> None:
    """Raise IDG-K06 when a code for these purposes was asked for too recently or too often.

    Per address and per destination: one every ``resend_seconds`` and ``codes_per_hour``
    an hour; per client (when ``client`` and ``per_client`` are given): ``per_client`` an hour.
    """
    recent = and_(owner_codes.c.created_at > now - HOUR, owner_codes.c.purpose.in_(purposes))
    limits: list[tuple[ColumnElement[bool], int, bool]] = []
    if address is not None:
        limits.append((owner_codes.c.address == address, settings.codes_per_hour, True))
    if destination is not None:
        limits.append((owner_codes.c.destination == destination, settings.codes_per_hour, True))
    if client is not None and per_client is not None:
        limits.append((owner_codes.c.client == client, per_client, False))
    for where, per_hour, resend in limits:
        if resend:
            last = conn.execute(
                select(func.max(owner_codes.c.created_at)).where(recent, where)
            ).scalar()
            if last is not None and now - last < settings.resend_seconds:
                raise idg_error("IDG-K06", n=_wait(now, last, settings.resend_seconds))
        times = sorted(
            conn.execute(select(owner_codes.c.created_at).where(recent, where)).scalars()
        )
        if len(times) >= per_hour:
            raise idg_error("IDG-K06", n=_wait(now, times[-per_hour], HOUR))


def supersede(
    conn: Connection, address: str, purposes: Sequence[str], destination: str | None = None
) -> None:
    """Any live challenge of ``address`` for these purposes stops working."""
    where = and_(
        owner_codes.c.address == address,
        owner_codes.c.purpose.in_(purposes),
        owner_codes.c.state == CodeState.LIVE,
    )
    if destination is not None:
        where = and_(where, owner_codes.c.destination == destination)
    conn.execute(update(owner_codes).where(where).values(state=CodeState.SUPERSEDED))


def issue(
    conn: Connection,
    pepper: bytes,
    *,
    address: str,
    purpose: str,
    destination: str,
    now: int,
    ttl: int,
    client: str | None = None,
) -> Issued:
    """Store a new live challenge for a fresh 6-digit code; return the code (never stored)."""
    cid, code = codes.new_challenge_id(), codes.generate_code()
    conn.execute(
        insert(owner_codes).values(
            id=cid,
            address=address,
            purpose=purpose,
            destination=destination,
            mac=codes.code_mac(pepper, cid, address, purpose, code.reveal()),
            state=CodeState.LIVE,
            attempts=0,
            created_at=now,
            expires_at=now + ttl,
            client=client[:64] if client is not None else None,
        )
    )
    return Issued(cid, code, now + ttl)


def rearm(
    conn: Connection, pepper: bytes, row: Any, *, purpose: str, now: int, ttl: int
) -> Issued | None:
    """Turn the live challenge ``row`` into one for a fresh code of ``purpose`` (same id).

    Returns None when another request changed the row first.
    """
    code = codes.generate_code()
    done = conn.execute(
        update(owner_codes)
        .where(owner_codes.c.id == row.id, owner_codes.c.state == CodeState.LIVE)
        .values(
            purpose=purpose,
            mac=codes.code_mac(pepper, row.id, row.address, purpose, code.reveal()),
            attempts=0,
            expires_at=now + ttl,
        )
    )
    return Issued(row.id, code, now + ttl) if done.rowcount == 1 else None


def newest(conn: Connection, address: str, purpose: str, destination: str | None = None) -> Any:
    """The newest challenge of ``address`` for ``purpose`` that can still be answered, or None."""
    query = select(owner_codes).where(
        owner_codes.c.address == address,
        owner_codes.c.purpose == purpose,
        owner_codes.c.state.notin_(_SKIPPED),
    )
    if destination is not None:
        query = query.where(owner_codes.c.destination == destination)
    order = (owner_codes.c.created_at.desc(), owner_codes.c.state.desc())
    return conn.execute(query.order_by(*order).limit(1)).first()


def check(  # noqa: PLR0911  (one return per row of the §5.3 table)
    conn: Connection,
    settings: IdentitySection,
    pepper: bytes,
    *,
    address: str,
    purpose: str,
    code: str,
    now: int,
    destination: str | None = None,
) -> CheckResult:
    """Check ``code`` against the newest challenge (§5.3), writing what it changes."""
    if not codes.is_well_formed(code):
        return CheckResult(idg_error("IDG-K01"))
    row = newest(conn, address, purpose, destination)
    cid = row.id if row is not None else codes.new_challenge_id()
    # The MAC is computed even when there is no challenge, so timing says nothing.
    expected = codes.code_mac(pepper, cid, address, purpose, code)
    if row is None:
        return CheckResult(idg_error("IDG-K02"))
    if row.state == CodeState.USED:
        return CheckResult(idg_error("IDG-K04"))
    if row.state == CodeState.LOCKED:
        return CheckResult(idg_error("IDG-K05", hint="ask for a new code"))
    if row.state == CodeState.EXPIRED or now > row.expires_at:
        _set_state(conn, cid, CodeState.EXPIRED)
        return CheckResult(idg_error("IDG-K03"))
    if codes.macs_equal(row.mac, expected):
        _set_state(conn, cid, CodeState.USED)
        return CheckResult(None)
    attempts = row.attempts + 1
    locked = attempts >= settings.code_attempts
    conn.execute(
        update(owner_codes)
        .where(owner_codes.c.id == cid)
        .values(attempts=attempts, state=CodeState.LOCKED if locked else CodeState.LIVE)
    )
    left = settings.code_attempts - attempts
    return CheckResult(
        idg_error("IDG-K02", suffix=f" ({left} attempts left)", details={"attempts_left": left}),
        locked_now=locked,
    )


def _set_state(conn: Connection, cid: str, state: CodeState) -> None:
    conn.execute(update(owner_codes).where(owner_codes.c.id == cid).values(state=state))


def grant_id(grant: str) -> str:
    """The row id of a reset grant: part of its SHA-256, so the store never holds the grant."""
    return hashlib.sha256(grant.encode("utf-8", "replace")).hexdigest()[:32]


def purge(conn: Connection, now: int) -> None:
    """Forget challenges that expired more than a day ago (the limits look back an hour)."""
    conn.execute(delete(owner_codes).where(owner_codes.c.expires_at < now - KEEP_SECONDS))


def issue_grant(
    conn: Connection, pepper: bytes, *, address: str, destination: str, now: int, ttl: int
) -> Issued:
    """A reset grant: a random token whose holder may set the password of ``address`` once."""
    grant = Secret(secrets.token_urlsafe(32))
    gid = grant_id(grant.reveal())
    conn.execute(
        insert(owner_codes).values(
            id=gid,
            address=address,
            purpose=RESET_GRANT,
            destination=destination,
            mac=codes.code_mac(pepper, gid, address, RESET_GRANT, grant.reveal()),
            state=CodeState.LIVE,
            attempts=0,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return Issued(gid, grant, now + ttl)


def live_grant(conn: Connection, pepper: bytes, grant: str, now: int) -> Any:
    """The row of a live, unexpired reset grant, or None (unknown, used, expired or forged)."""
    gid = grant_id(grant)
    row = conn.execute(
        select(owner_codes).where(owner_codes.c.id == gid, owner_codes.c.purpose == RESET_GRANT)
    ).first()
    address = row.address if row is not None else ""
    expected = codes.code_mac(pepper, gid, address, RESET_GRANT, grant)
    if row is None or not codes.macs_equal(row.mac, expected):
        return None
    if row.state != CodeState.LIVE or now > row.expires_at:
        return None
    return row


def use(conn: Connection, cid: str) -> bool:
    """Mark a live challenge or grant used; False when another request used it first."""
    done = conn.execute(
        update(owner_codes)
        .where(owner_codes.c.id == cid, owner_codes.c.state == CodeState.LIVE)
        .values(state=CodeState.USED)
    )
    return done.rowcount == 1


def undelivered(conn: Connection, cid: str) -> None:
    """A code that could not be sent does not count against the limits."""
    _set_state(conn, cid, CodeState.UNDELIVERED)
