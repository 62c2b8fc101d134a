"""AUTH back-ends for the relay: the account store's mailboxes, a credentials file, or a test's.

Both check passwords with :func:`mailprov.rules.hashing.verify_password` (Dovecot's
``{SCHEME}hash`` forms). Hashing is slow on purpose (Argon2id), so the check runs
in a worker thread and never blocks the event loop. Passwords are never logged.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mailprov.errors import ConfigInvalid
from mailprov.model import Secret
from mailprov.rules.hashing import verify_password

if TYPE_CHECKING:
    from mailprov.store import Store


class Authenticator(Protocol):
    """Checks a user name and password."""

    async def verify(self, user: str, password: str) -> bool:
        """True if the password is right for this active user."""
        ...


@dataclass
class StoreAuthenticator:
    """Mailboxes of the account store: active, and not holding an expired temporary password."""

    store: Store

    def _check(self, user: str, password: str) -> bool:
        from sqlalchemy import select  # noqa: PLC0415  (lazy: a heavy import only this path needs)

        from mailprov.store.schema import mailboxes  # noqa: PLC0415  (lazy: SQLAlchemy, see above)

        with self.store.read() as conn:
            row = conn.execute(
                select(
                    mailboxes.c.password_hash,
                    mailboxes.c.active,
                    mailboxes.c.temp_password_expires_at,
                ).where(mailboxes.c.address == user.strip().lower())
            ).first()
        if row is None or not row.active:
            return False
        if row.temp_password_expires_at is not None and row.temp_password_expires_at < time.time():
            return False
        return verify_password(password, row.password_hash)

    async def verify(self, user: str, password: str) -> bool:
        """Look the user up and verify in a thread."""
        return await asyncio.to_thread(self._check, user, password)


@dataclass
class FileAuthenticator:
    """A Dovecot passwd-file style list: ``user:{SCHEME}hash`` per line (more fields ignored)."""

    path: Path
    users: dict[str, str] = field(default_factory=dict)

    def load(self) -> FileAuthenticator:
        """Read the file. Raises ConfigInvalid naming the bad line."""
        try:
            text = self.path.read_text("utf-8")
        except OSError as exc:
            raise ConfigInvalid(
                f"relay.credentials_file {self.path}: {exc.strerror}",
                hint="write one 'user:{SCHEME}hash' line per user (e.g. from 'doveadm pw')",
            ) from None
        for number, raw_line in enumerate(text.splitlines(), 1):
            line = raw_line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, rest = line.partition(":")
            stored = rest.split(":", 1)[0]
            if not sep or not user or not stored.startswith("{"):
                raise ConfigInvalid(
                    f"relay.credentials_file {self.path} line {number}: "
                    "expected user:{SCHEME}hash",
                )
            self.users[user.lower()] = stored
        return self

    async def verify(self, user: str, password: str) -> bool:
        """Verify in a thread (hashes are slow on purpose)."""
        stored = self.users.get(user.strip().lower())
        if stored is None:
            return False
        return await asyncio.to_thread(verify_password, password, stored)


@dataclass
class PlainAuthenticator:
    """Users and passwords a test rig gives (the ``mail_relay`` fixture's ``auth`` option).

    Kept in memory as :class:`~mailprov.model.Secret` and compared in constant time;
    nothing is hashed, because nothing is stored and the light install (``mailprov-relay``)
    carries no hashing library.
    """

    users: dict[str, Secret]

    async def verify(self, user: str, password: str) -> bool:
        """True if ``password`` is this user's."""
        expected = self.users.get(user.strip().lower())
        given = password.encode("utf-8", "replace")
        if expected is None:
            hmac.compare_digest(given, given)  # same work either way
            return False
        return hmac.compare_digest(given, expected.reveal().encode("utf-8"))
