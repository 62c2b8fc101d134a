"""aiosmtpd's SMTP protocol with asynchronous AUTH and a clean-up hook.

aiosmtpd calls its authenticator synchronously, which would block the event
loop for the length of an Argon2id verification. Here PLAIN and LOGIN decode
the credentials as aiosmtpd does, then await the relay's authenticator, which
verifies in a thread. ``auth`` fault rules act before the password is checked.
"""

from __future__ import annotations

import asyncio
import binascii
from base64 import b64decode
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult

if TYPE_CHECKING:
    from mailprov.relay.handlers import RelayContext


class RelaySMTP(SMTP):
    """One client connection."""

    def __init__(self, handler: Any, *, relay: RelayContext, **kwargs: Any) -> None:
        self.relay = relay
        super().__init__(handler, **kwargs)

    async def _check(self, user: bytes, password: bytes) -> AuthResult:
        name = user.decode("utf-8", "replace")
        assert self.session is not None
        assert self.envelope is not None
        rule = self.relay.faults.check("auth", [name], user=name, sender=None)
        if rule is not None:
            if rule.delay:
                await asyncio.sleep(rule.delay)
            if rule.action == "drop" and self.transport is not None:
                self.transport.abort()
                return AuthResult(success=False, handled=True)
            if rule.action == "reply":
                return AuthResult(success=False, handled=False, message=rule.reply)
        authenticator = self.relay.authenticator
        ok = authenticator is not None and await authenticator.verify(
            name, password.decode("utf-8", "replace"))
        if ok:
            return AuthResult(success=True, auth_data=name)
        return AuthResult(success=False, handled=False)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:  # noqa: N802
        """AUTH PLAIN, initial response or challenge."""
        if len(args) == 1:
            blob = await self.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False)
        else:
            try:
                blob = b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await self.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        assert isinstance(blob, bytes)
        try:
            _authz, user, password = blob.split(b"\x00")
        except ValueError:
            await self.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await self._check(user, password)

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:  # noqa: N802
        """AUTH LOGIN, with or without the user name on the command line."""
        if len(args) == 1:
            user = await self.challenge_auth(self.AuthLoginUsernameChallenge)
            if user is MISSING:
                return AuthResult(success=False)
        else:
            try:
                user = b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await self.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        password = await self.challenge_auth(self.AuthLoginPasswordChallenge)
        if password is MISSING:
            return AuthResult(success=False)
        assert isinstance(user, bytes)
        assert isinstance(password, bytes)
        return await self._check(user, password)

    def connection_lost(self, error: Exception | None) -> None:
        """Let the handler release what the session held (a smarthost connection)."""
        session = self.session
        super().connection_lost(error)
        closed = getattr(self.event_handler, "closed", None)
        if session is not None and closed is not None and getattr(session, "upstream", None):
            self.loop.create_task(closed(session))
