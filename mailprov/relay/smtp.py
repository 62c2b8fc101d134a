"""aiosmtpd's SMTP protocol with asynchronous AUTH and a clean-up hook.

aiosmtpd calls its authenticator synchronously, which would block the event
loop for the length of an Argon2id verification. Here PLAIN and LOGIN decode
the credentials as aiosmtpd does, then await the relay's authenticator, which
verifies in a thread. ``auth`` fault rules act before the password is checked.

aiosmtpd's ``SMTP.__init__`` also introspects the protocol and the handler
(``inspect.getmembers``, ``dir``, ``inspect.signature``) for *every connection*:
about 0.4 ms, a third of the cost of a one-message connection. With the
aiosmtpd version this was written against, :class:`RelaySMTP` does that
introspection once per class and handler (:func:`_plan`) and sets the same
attributes itself; with any other version it falls back to aiosmtpd's own
constructor, so behaviour never depends on the shortcut.
"""

from __future__ import annotations

import asyncio
import binascii
import inspect
import re
from base64 import b64decode
from functools import cache
from typing import TYPE_CHECKING, Any

import aiosmtpd
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, _AuthMechAttr

FAST_INIT_VERSIONS = ("1.4.6",)
INVALID = "535 5.7.8 Authentication credentials invalid"
LOCKED_OUT = "454 4.7.0 Too many failed logins, try again later"
TOO_MANY = "421 4.7.0 Too many failed logins, closing connection"
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# <dot-atom@domain> followed by optional parameters: the form nearly every client sends.
_SIMPLE_PATH = re.compile(
    rf"<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?:[ \t]+(.*))?"
)

if TYPE_CHECKING:
    from mailprov.relay.handlers import RelayContext


class RelaySMTP(SMTP):
    """One client connection."""

    def __init__(self, handler: Any, *, relay: RelayContext, **kwargs: Any) -> None:
        self.relay = relay
        self.auth_failures = 0
        if aiosmtpd.__version__ in FAST_INIT_VERSIONS:
            self._fast_init(handler, **kwargs)
        else:  # pragma: no cover - another aiosmtpd: its own constructor
            super().__init__(handler, **kwargs)

    def _fast_init(
        self,
        handler: Any,
        *,
        hostname: str,
        ident: str,
        data_size_limit: int,
        enable_SMTPUTF8: bool,
        decode_data: bool,
        timeout: float,
        tls_context: Any,
        auth_required: bool,
        auth_require_tls: bool,
        auth_exclude_mechanism: list[str],
        require_starttls: bool,
    ) -> None:
        """aiosmtpd 1.4.6's ``SMTP.__init__`` for our fixed arguments, minus the introspection."""
        self.__ident__ = ident
        self.loop = asyncio.get_running_loop()
        asyncio.StreamReaderProtocol.__init__(
            self,
            asyncio.StreamReader(loop=self.loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected,
            loop=self.loop,
        )
        self.event_handler = handler
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8 = enable_SMTPUTF8
        self._decode_data = decode_data
        self.command_size_limits.clear()
        self.hostname = hostname
        self.tls_context = tls_context
        self.require_starttls = require_starttls
        self._timeout_duration = timeout
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._auth_require_tls = auth_require_tls
        self._proxy_timeout = None
        self._authenticator = None
        self._auth_callback = _refuse
        self._auth_required = auth_required
        classes: tuple[Any, Any] = (type(self), type(handler))
        auth_names, hook_names, smtp_names = _plan(*classes, tuple(auth_exclude_mechanism))
        self._auth_methods = {
            mech: _AuthMechAttr(getattr(self, attr), True) for mech, attr in auth_names
        }
        self._handle_hooks = {name: getattr(handler, "handle_" + name) for name in hook_names}
        self._ehlo_hook_ver = "new" if "EHLO" in hook_names else None
        self._smtp_methods = {name: getattr(self, "smtp_" + name) for name in smtp_names}
        self._enforce_call_limit = False

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's address parser, with a fast path for a plain ``<local@domain>``.

        aiosmtpd parses every MAIL/RCPT address with the email package's RFC 5322
        parser (about 0.2 ms each); for a dot-atom address in angle brackets the
        result is the text between the brackets, so that case is matched directly
        and everything else (quoted parts, UTF-8, source routes, ``<>``) goes to
        aiosmtpd's parser (tests/unit/test_relay_smtp.py compares the two).
        """
        match = _SIMPLE_PATH.fullmatch(arg)
        if match is None:
            return SMTP._getaddr(self, arg)
        local = match.group(1).rpartition("@")[0]
        if self.local_part_limit and len(local) > self.local_part_limit:
            return None, None
        return match.group(1), match.group(2) or ""

    async def _check(self, user: bytes, password: bytes) -> AuthResult:
        name = user.decode("utf-8", "replace")
        assert self.session is not None  # noqa: S101 (narrows a type)
        assert self.envelope is not None  # noqa: S101 (narrows a type)
        rule = self.relay.faults.check("auth", [name], user=name, sender=None)
        if rule is not None:
            if rule.delay:
                await asyncio.sleep(rule.delay)
            if rule.action == "drop" and isinstance(self.transport, asyncio.Transport):
                self.transport.abort()
                return AuthResult(success=False, handled=True)
            if rule.action == "reply":
                return AuthResult(success=False, handled=False, message=rule.reply)
        throttle = self.relay.throttle
        ip = str(self.session.peer[0]) if self.session.peer else "?"
        if throttle.locked(ip, name):
            return await self._failed(LOCKED_OUT, 0.0)
        authenticator = self.relay.authenticator
        ok = authenticator is not None and await authenticator.verify(
            name, password.decode("utf-8", "replace")
        )
        if ok:
            throttle.succeeded(ip, name)
            return AuthResult(success=True, auth_data=name)
        return await self._failed(INVALID, throttle.failed(ip, name))

    async def _failed(self, reply: str, delay: float) -> AuthResult:
        """Answer a failed AUTH after ``delay``; close after too many on one connection."""
        self.auth_failures += 1
        if self.auth_failures >= self.relay.options.auth_failures_per_connection:
            await self.push(TOO_MANY)
            if self.transport is not None:
                self.transport.close()
            return AuthResult(success=False, handled=True)
        if delay:
            await asyncio.sleep(delay)
        return AuthResult(success=False, handled=False, message=reply)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
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
        assert isinstance(blob, bytes)  # noqa: S101 (narrows a type)
        try:
            _authz, user, password = blob.split(b"\x00")
        except ValueError:
            await self.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await self._check(user, password)

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
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
        assert isinstance(user, bytes)  # noqa: S101 (narrows a type)
        assert isinstance(password, bytes)  # noqa: S101 (narrows a type)
        return await self._check(user, password)

    def connection_lost(self, error: Exception | None) -> None:
        """Let the handler release what the session held (a smarthost connection)."""
        session = self.session
        super().connection_lost(error)
        closed = getattr(self.event_handler, "closed", None)
        if session is not None and closed is not None and getattr(session, "upstream", None):
            task = self.loop.create_task(closed(session))
            self.relay.closing.add(task)  # the server's stop() waits for these
            task.add_done_callback(self.relay.closing.discard)


def _refuse(*_args: Any) -> bool:
    return False


@cache
def _plan(
    protocol: Any, handler: Any, exclude: tuple[str, ...]
) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...], tuple[str, ...]]:
    """What aiosmtpd finds by introspection, found once: AUTH mechanisms, hooks, commands."""
    auth = tuple(
        (
            getattr(func, "__auth_mechanism_name__", name.replace("auth_", "").replace("__", "-")),
            name,
        )
        for name, func in inspect.getmembers(protocol)
        if name.startswith("auth_")
    )
    auth = tuple((mech, name) for mech, name in auth if mech not in exclude)
    hooks = tuple(
        name.replace("handle_", "") for name in dir(handler) if name.startswith("handle_")
    )
    if "EHLO" in hooks and len(inspect.signature(handler.handle_EHLO).parameters) != 6:
        msg = "handle_EHLO must take (self, server, session, envelope, hostname, responses)"
        raise TypeError(msg)
    commands = tuple(
        name.replace("smtp_", "") for name in dir(protocol) if name.startswith("smtp_")
    )
    return auth, hooks, commands
