"""Deliver mode over LMTP (``relay.lmtp``): Dovecot writes the mail, the client hears its answers.

``relay.lmtp`` is ``HOST:PORT`` (Dovecot's ``inet_listener lmtp``, e.g. the one
the rendered config puts on 127.0.0.1) or the path of its UNIX socket.

Like forward mode, the LMTP session is driven in lock-step with the client's
SMTP session: it is opened at the first MAIL (``LHLO``, then ``MAIL FROM`` with
the client's ``SIZE``, so Dovecot can refuse an over-quota recipient at once),
and each client ``RCPT`` becomes an LMTP ``RCPT`` for every mailbox the address
reaches (aliases through the account store, as ``DeliverLocal``); the client
gets Dovecot's own reply. At the end of DATA LMTP answers once per recipient;
SMTP can carry only one reply, so the client gets 250 when every mailbox took
the message and otherwise the first refusal, verbatim (the mailboxes that took
it keep their copy: a 4xx retried by the client can deliver a second one). An
unreachable LMTP server or a broken connection is a 451: nothing is accepted
that was not delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from mailprov.errors import ConfigInvalid
from mailprov.relay.handlers import RelayHandler, _reply
from mailprov.settings.checks import Invalid, parse_endpoint

if TYPE_CHECKING:
    from aiosmtpd.smtp import SMTP, Envelope, Session

    from mailprov.relay.handlers import RelayContext

log = logging.getLogger("mailprov.relay")
TIMEOUT_S = 30.0
UNAVAILABLE = "451 4.4.1 Error: LMTP server unavailable; try again later"
LOST = "451 4.4.2 Error: LMTP connection lost; try again later"
#: MAIL parameters passed on when the client gave them and LHLO advertised the extension.
PASS_THROUGH = {"SIZE": "SIZE", "BODY": "8BITMIME", "SMTPUTF8": "SMTPUTF8"}


def parse_target(value: str) -> tuple[str, int] | str:
    """``HOST:PORT`` as (host, port), or an absolute socket path. Raises ConfigInvalid."""
    if value.startswith("/"):
        return value
    try:
        host, port = parse_endpoint(value)
    except Invalid as exc:
        raise ConfigInvalid(
            f"relay.lmtp = {value!r:.80}: {exc.why}",
            hint="give HOST:PORT (Dovecot's inet_listener lmtp) or the absolute path of its socket",
        ) from None
    if port == 0:
        raise ConfigInvalid(f"relay.lmtp = {value!r:.80}: the port must not be 0")
    return host, port


class LmtpError(Exception):
    """The LMTP server could not be used; ``reply`` is what the client is told."""

    def __init__(self, reply: str, detail: str) -> None:
        super().__init__(detail)
        self.reply = reply


class LmtpSession:
    """One LMTP connection (RFC 2033), opened lazily, reused for a client's transactions."""

    def __init__(self, target: tuple[str, int] | str, helo_name: str) -> None:
        self.target = target
        self.helo_name = helo_name
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.extensions: set[str] = set()

    async def _open(self) -> None:
        if self._writer is not None and not self._writer.is_closing():
            return
        where = (
            self.target if isinstance(self.target, str) else f"{self.target[0]}:{self.target[1]}"
        )
        try:
            if isinstance(self.target, str):
                opening = asyncio.open_unix_connection(self.target)
            else:
                opening = asyncio.open_connection(*self.target)
            self._reader, self._writer = await asyncio.wait_for(opening, TIMEOUT_S)
            code, text = await self._read()
            if code != 220:
                raise LmtpError(UNAVAILABLE, f"LMTP {where} greeted {code} {text}")
            code, text = await self._command(b"LHLO " + self.helo_name.encode())
            if code != 250:
                raise LmtpError(UNAVAILABLE, f"LMTP {where} refused LHLO: {code} {text}")
            self.extensions = {line.split(" ", 1)[0].upper() for line in text.splitlines()[1:]}
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            self.abort()
            raise LmtpError(UNAVAILABLE, f"LMTP {where}: {type(exc).__name__}: {exc}") from None

    async def _read(self) -> tuple[int, str]:
        """One (possibly multi-line) reply."""
        assert self._reader is not None  # noqa: S101 (narrows a type)
        lines: list[str] = []
        while True:
            raw = await asyncio.wait_for(self._reader.readline(), TIMEOUT_S)
            if not raw.endswith(b"\n"):
                raise asyncio.IncompleteReadError(raw, None)
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if len(line) < 3 or not line[:3].isdigit():
                raise OSError(f"not an LMTP reply: {line[:80]!r}")
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), "\n".join(lines)

    async def _command(self, line: bytes) -> tuple[int, str]:
        assert self._writer is not None  # noqa: S101 (narrows a type)
        self._writer.write(line + b"\r\n")
        await self._writer.drain()
        return await self._read()

    async def mail(self, address: str, options: list[str]) -> tuple[int, str]:
        """MAIL FROM, with the client's SIZE/BODY/SMTPUTF8 where the server knows them."""
        await self._open()
        kept = []
        for option in options:
            key, _, value = option.partition("=")
            if PASS_THROUGH.get(key.upper()) in self.extensions:
                kept.append(f"{key.upper()}={value}" if value else key.upper())
        params = "".join(" " + o for o in kept).encode()
        return await self.command(b"MAIL FROM:<" + address.encode() + b">" + params)

    async def command(self, line: bytes) -> tuple[int, str]:
        """Send one command (opening the connection first if needed); its reply."""
        await self._open()
        try:
            return await self._command(line)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            self.abort()
            raise LmtpError(LOST, f"LMTP: {type(exc).__name__}: {exc}") from None

    async def data(self, content: bytes, recipients: int) -> list[tuple[int, str]]:
        """DATA: one reply per accepted recipient (or the refusal of DATA itself, once)."""
        code, text = await self.command(b"DATA")
        if code != 354:
            return [(code, text)] * recipients
        assert self._writer is not None  # noqa: S101 (narrows a type)
        body = content if content.endswith(b"\r\n") or not content else content + b"\r\n"
        stuffed = body.replace(b"\r\n.", b"\r\n..")
        if stuffed.startswith(b"."):
            stuffed = b"." + stuffed
        try:
            self._writer.write(stuffed + b".\r\n")
            await self._writer.drain()
            return [await self._read() for _ in range(recipients)]
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            self.abort()
            raise LmtpError(LOST, f"LMTP: {type(exc).__name__}: {exc}") from None

    async def reset(self) -> None:
        """RSET, if connected (a failure just drops the connection)."""
        if self._writer is not None and not self._writer.is_closing():
            try:
                await self._command(b"RSET")
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                self.abort()

    def abort(self) -> None:
        """Close at once."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()

    async def close(self) -> None:
        """QUIT and close."""
        if self._writer is not None and not self._writer.is_closing():
            with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
                await asyncio.wait_for(self._command(b"QUIT"), 5)
        self.abort()


class DeliverLmtp(RelayHandler):
    """Deliver mode through Dovecot's LMTP: provisioned mailboxes only, Dovecot's answers."""

    def __init__(self, ctx: RelayContext, target: tuple[str, int] | str) -> None:
        super().__init__(ctx)
        self.target = target

    def _lmtp(self, session: Session) -> LmtpSession:
        lmtp: LmtpSession | None = getattr(session, "upstream", None)
        if lmtp is None:
            lmtp = LmtpSession(self.target, self.ctx.options.hostname)
            session.upstream = lmtp  # type: ignore[attr-defined]
            self.ctx.upstreams.add(lmtp)  # aborted at stop
        return lmtp

    async def mail(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str | None:
        """Open (or reuse) the LMTP session and pass MAIL FROM on, with SIZE/BODY/SMTPUTF8."""
        try:
            code, text = await self._lmtp(session).mail(address, options)
        except LmtpError as exc:
            log.warning("%s", exc)
            return exc.reply
        return None if code < 300 else _reply(code, text)

    async def rcpt(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """The account store says which mailboxes; Dovecot says whether each takes it."""
        assert self.ctx.resolver is not None  # noqa: S101 (narrows a type)
        try:
            targets = await self.ctx.resolver.mailboxes_for(address)
        except Exception as exc:
            log.error("account store lookup failed: %s", exc)
            return "451 4.3.0 Error: temporary lookup failure"
        if not targets:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        accepted: list[str] = envelope.__dict__.setdefault("lmtp_rcpts", [])
        refusal = None
        for box in targets:
            if box in accepted:
                continue
            try:
                code, text = await self._lmtp(session).command(b"RCPT TO:<" + box.encode() + b">")
            except LmtpError as exc:
                return exc.reply
            if code < 300:
                accepted.append(box)
            elif refusal is None:
                refusal = _reply(code, text)
        if refusal is not None and not any(box in accepted for box in targets):
            self.ctx.counters["refused"] += 1
            return refusal
        return "250 2.1.5 Ok"

    async def data(self, server: SMTP, session: Session, envelope: Envelope, content: bytes) -> str:
        """One LMTP reply per mailbox: 250 if all took it, else the first refusal."""
        accepted: list[str] = envelope.__dict__.get("lmtp_rcpts", [])
        try:  # Dovecot adds Return-Path and Delivered-To itself
            replies = await self._lmtp(session).data(content, len(accepted))
        except LmtpError as exc:
            log.error("LMTP delivery failed: %s", exc)
            return exc.reply
        failed = [(box, r) for box, r in zip(accepted, replies, strict=True) if r[0] >= 300]
        log.info(
            "delivered over LMTP from=<%s> to=%s refused=%s",
            envelope.mail_from,
            ",".join(accepted),
            ",".join(box for box, _ in failed) or "-",
        )
        if failed:
            return _reply(*failed[0][1])
        self.ctx.counters["accepted"] += 1
        return f"250 2.0.0 Ok: delivered to {len(accepted)} mailbox(es) over LMTP"

    async def reset(self, session: Session) -> None:
        """RSET the LMTP session too."""
        lmtp: LmtpSession | None = getattr(session, "upstream", None)
        if lmtp is not None:
            await lmtp.reset()

    async def closed(self, session: Session) -> None:
        """QUIT the LMTP session."""
        lmtp: LmtpSession | None = getattr(session, "upstream", None)
        if lmtp is not None:
            session.upstream = None  # type: ignore[attr-defined]
            self.ctx.upstreams.discard(lmtp)
            await lmtp.close()

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Close the LMTP session before saying goodbye."""
        await self.closed(session)
        return "221 Bye"
