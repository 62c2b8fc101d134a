"""Failed sign-ins counted per account and per client IP, and the lock they lead to.

Each key (``account:ADDRESS`` or ``client:IP``) has one row in ``login_failures``:
the failures since ``window_start``, and ``locked_until`` once they reached the
limit ([web] signin_max_failures for an account, signin_max_failures_per_client for
a client) inside [web] signin_window_seconds. A locked key is refused for
[web] signin_lockout_seconds, even with the right password.

Accounts are counted by the address as typed (normalised), whether a mailbox has it
or not: an unknown address locks after the same number of failures and is refused
with the same answer, so the lock tells nothing about which addresses exist.

Unlock: the lock ends by itself; a successful sign-in clears its account's count
(not its client's); a password reset clears the account (:func:`clear_failures`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mailprov.errors import MailprovError
from mailprov.rules.addresses import parse_address
from mailprov.store.schema import login_failures

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mailprov.settings import WebSection

#: A stored key is at most this long (the column is 320).
MAX_KEY = 320


def account_key(address: str) -> str:
    """The key of an address (normalised by the caller; cut to fit)."""
    return f"account:{address}"[:MAX_KEY]


def account_for(raw_address: str) -> tuple[str, str]:
    """(the normalised address or "", its key); what is no address is keyed by its digest."""
    try:
        address = str(parse_address(raw_address))
    except MailprovError:
        digest = hashlib.sha256(raw_address.strip().lower().encode("utf-8", "replace"))
        return "", account_key(f"?{digest.hexdigest()[:32]}")
    return address, account_key(address)


def client_key(client: str) -> str:
    """The key of a client IP."""
    return f"client:{client}"[:MAX_KEY]


@dataclass(frozen=True)
class Failure:
    """What one recorded failure did: whether it locked the account or the client now."""

    account_locked: bool
    client_locked: bool
    retry_after: int


def locked_for(conn: Connection, keys: list[str], *, now: int) -> int:
    """Seconds until every one of ``keys`` is unlocked (0: none is locked)."""
    rows = conn.execute(
        select(login_failures.c.locked_until).where(
            login_failures.c.key.in_(keys), login_failures.c.locked_until > now
        )
    )
    return max((int(r.locked_until) - now for r in rows), default=0)


def _bump(conn: Connection, key: str, limit: int, web: WebSection, now: int) -> int | None:
    """Count one failure of ``key``; return its new ``locked_until`` if this one locked it."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(
        insert(login_failures)
        .values(key=key, failures=0, window_start=now, locked_until=None)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    # FOR UPDATE holds the row on PostgreSQL until commit; SQLite's BEGIN IMMEDIATE
    # already serialises writers. Two failures at once are both counted.
    row = conn.execute(
        select(login_failures).where(login_failures.c.key == key).with_for_update()
    ).one()
    if row.window_start + web.signin_window_seconds <= now:
        failures, start = 1, now
    else:
        failures, start = int(row.failures) + 1, int(row.window_start)
    locked = now + web.signin_lockout_seconds if failures >= limit else None
    conn.execute(
        update(login_failures)
        .where(login_failures.c.key == key)
        .values(
            # A lock starts a new window: after it the count starts again from zero.
            failures=0 if locked else failures,
            window_start=now if locked else start,
            locked_until=locked or row.locked_until,
        )
    )
    return locked


def record_failure(
    conn: Connection, web: WebSection, *, account: str, client: str, now: int
) -> Failure:
    """Count a failed sign-in for both keys, in the caller's transaction."""
    account_until = _bump(conn, account, web.signin_max_failures, web, now)
    client_until = _bump(conn, client, web.signin_max_failures_per_client, web, now)
    until = max(account_until or 0, client_until or 0)
    return Failure(account_until is not None, client_until is not None, max(until - now, 0))


def clear_failures(conn: Connection, address: str) -> int:
    """Unlock ``address`` and forget its failures (after a successful reset or sign-in).

    Runs in the caller's transaction; returns the rows removed (0 or 1).
    """
    query = delete(login_failures).where(login_failures.c.key == account_key(address))
    return int(conn.execute(query).rowcount or 0)


def prune(conn: Connection, web: WebSection, *, now: int) -> int:
    """Remove rows whose window and lock are both over (the sweep runs this)."""
    query = delete(login_failures).where(
        login_failures.c.window_start + web.signin_window_seconds <= now,
        or_(login_failures.c.locked_until.is_(None), login_failures.c.locked_until <= now),
    )
    return int(conn.execute(query).rowcount or 0)
