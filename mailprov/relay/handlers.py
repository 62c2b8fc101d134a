"""The relay's three modes as aiosmtpd handlers: Capture, DeliverLocal and Forward.

Every handler shares the same front door (:class:`RelayHandler`): SMTPUTF8 rules,
the recipient limit, fault rules, and the smuggling guard (a message with a bare
``<LF>`` is refused with 521 and the connection closed, as Postfix does with
``smtpd_forbid_bare_newline = yes``; ``<LF>.<LF>`` never ends DATA because
aiosmtpd only reads ``<CR><LF>``-terminated lines). The modes differ in what
they accept at RCPT and what they do with the message at DATA.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailprov.relay.delivery import MaildirDelivery, RecipientResolver
from mailprov.relay.throttle import AuthThrottle
from mailprov.relay.upstream import Upstream, UpstreamError

if TYPE_CHECKING:
    from aiosmtpd.smtp import SMTP, Envelope, Session

    from mailprov.relay.auth import Authenticator
    from mailprov.relay.faults import FaultSet
    from mailprov.relay.lmtp import LmtpSession
    from mailprov.relay.options import RelayOptions
    from mailprov.relay.storage import MessageStore
    from mailprov.relay.storage.writer import StoreWriter

log = logging.getLogger("mailprov.relay")
_BARE_LF = re.compile(rb"(?<!\r)\n")


@dataclass
class RelayContext:
    """What the handlers of one process share."""

    options: RelayOptions
    faults: FaultSet
    #: AUTH failure accounting for this process (built from the options).
    throttle: AuthThrottle
    store: MessageStore | None = None
    writer: StoreWriter | None = None
    authenticator: Authenticator | None = None
    resolver: RecipientResolver | None = None
    smarthost_password: Any = None
    counters: dict[str, int] = field(default_factory=lambda: {"accepted": 0, "refused": 0})
    closing: set[asyncio.Task[None]] = field(default_factory=set)
    #: Connections onward (smarthost, LMTP) that stop() cuts.
    upstreams: set[Upstream | LmtpSession] = field(default_factory=set)


def auth_user(session: Session) -> str | None:
    """The AUTH user name of the session, if it authenticated."""
    data = session.auth_data
    return data if isinstance(data, str) and session.authenticated else None


def _ascii(text: str) -> bool:
    return text.isascii()


class RelayHandler:
    """What every mode does before it decides: limits, SMTPUTF8, faults, smuggling guard."""

    def __init__(self, ctx: RelayContext) -> None:
        self.ctx = ctx

    async def _fault(
        self, server: SMTP, stage: str, subjects: list[str], session: Session, envelope: Envelope
    ) -> str | None:
        rule = self.ctx.faults.check(
            stage, subjects, user=auth_user(session), sender=envelope.mail_from
        )
        if rule is None:
            return None
        log.info("fault %r fired at %s for %s", rule.spec, stage, subjects)
        if rule.delay:
            await asyncio.sleep(rule.delay)
        if rule.action == "delay":
            return None
        if rule.action == "drop":
            if isinstance(server.transport, asyncio.Transport):
                server.transport.abort()
            await asyncio.sleep(5)  # the connection is gone: aiosmtpd cancels us here
            return "421 4.4.2 connection dropped"
        return rule.reply

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        """Apply ``ehlo`` fault rules, else answer as aiosmtpd would."""
        refused = await self._fault(server, "ehlo", [hostname], session, envelope)
        if refused:
            session.host_name = None
            return [refused]
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Check the sender (SMTPUTF8, faults), then ask the mode."""
        smtputf8 = any(o.upper() == "SMTPUTF8" for o in options)
        if not smtputf8 and not _ascii(address):
            return "553 5.6.7 non-ASCII address needs the SMTPUTF8 parameter"
        refused = await self._fault(server, "mail", [address], session, envelope)
        if refused:
            return refused
        refused = await self.mail(server, session, envelope, address, options)
        if refused:
            return refused
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        envelope.smtp_utf8 = smtputf8
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Check the recipient (limit, SMTPUTF8, faults), then ask the mode."""
        if len(envelope.rcpt_tos) >= self.ctx.options.max_recipients:
            return "452 4.5.3 Error: too many recipients"
        if not envelope.smtp_utf8 and not _ascii(address):
            return "553 5.6.7 non-ASCII address needs SMTPUTF8 on MAIL FROM"
        refused = await self._fault(server, "rcpt", [address], session, envelope)
        if refused:
            self.ctx.counters["refused"] += 1
            return refused
        answer = await self.rcpt(server, session, envelope, address, options)
        if answer[:1] != "2":
            return answer
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return answer

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Refuse smuggling attempts, apply faults, then let the mode take the message."""
        content = envelope.original_content or b""
        if b"\n" in content and _BARE_LF.search(content):
            log.warning("bare <LF> from %s: refused and disconnected", session.peer)
            server.loop.call_soon(_close, server)
            return f"521 5.5.2 {self.ctx.options.hostname} Error: bare <LF> received"
        refused = await self._fault(server, "data", list(envelope.rcpt_tos), session, envelope)
        if refused:
            return refused
        return await self.data(server, session, envelope, content)

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Let the mode forget the transaction."""
        await self.reset(session)
        return "250 2.0.0 Ok"

    # -- what the modes implement --------------------------------------------

    async def mail(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str | None:
        """None to accept the sender, else the reply."""
        return None

    async def rcpt(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """The reply to RCPT (2xx accepts)."""
        return "250 2.1.5 Ok"

    async def data(self, server: SMTP, session: Session, envelope: Envelope, content: bytes) -> str:
        """The reply to the end of DATA."""
        raise NotImplementedError

    async def reset(self, session: Session) -> None:
        """The transaction was reset."""

    async def closed(self, session: Session) -> None:
        """The client went away."""


def _close(server: SMTP) -> None:
    if server.transport is not None:
        server.transport.close()


class Capture(RelayHandler):
    """Store every message, once per recipient mailbox (and the AUTH user's)."""

    async def data(self, server: SMTP, session: Session, envelope: Envelope, content: bytes) -> str:
        """Write the message to the store before answering 250 (a failure is a 4xx)."""
        assert self.ctx.writer is not None  # noqa: S101 (narrows a type)
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer or "")
        try:
            stored = await self.ctx.writer.add(
                content,
                sender=envelope.mail_from or "",
                recipients=envelope.rcpt_tos,
                auth_user=auth_user(session),
                peer=peer,
            )
        except Exception as exc:
            log.error("cannot store a message from %s: %s", session.peer, exc)
            return "451 4.3.0 Error: cannot store the message now; try again later"
        self.ctx.counters["accepted"] += 1
        log.info(
            "stored %s from=<%s> to=%s size=%d",
            stored.id,
            stored.sender,
            ",".join(stored.recipients),
            stored.size,
        )
        return f"250 2.0.0 Ok: queued as {stored.id}"


class DeliverLocal(RelayHandler):
    """Provisioned mailboxes only: into their Maildir; anyone else is refused at RCPT."""

    def __init__(self, ctx: RelayContext, delivery: MaildirDelivery) -> None:
        super().__init__(ctx)
        self.delivery = delivery

    async def rcpt(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Accept only addresses the account store resolves to active mailboxes."""
        assert self.ctx.resolver is not None  # noqa: S101 (narrows a type)
        try:
            targets = await self.ctx.resolver.mailboxes_for(address)
        except Exception as exc:
            log.error("account store lookup failed: %s", exc)
            return "451 4.3.0 Error: temporary lookup failure"
        if not targets:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.__dict__.setdefault("targets", {})[address] = targets
        return "250 2.1.5 Ok"

    async def data(self, server: SMTP, session: Session, envelope: Envelope, content: bytes) -> str:
        """Deliver to every resolved mailbox; all succeed, or the client is told to retry."""
        targets: dict[str, list[str]] = envelope.__dict__.get("targets", {})
        try:
            ids = await asyncio.to_thread(
                self.delivery.deliver, content, envelope.mail_from or "", targets
            )
        except Exception as exc:
            log.error("Maildir delivery failed: %s", exc)
            return "451 4.3.0 Error: cannot deliver now; try again later"
        self.ctx.counters["accepted"] += 1
        log.info(
            "delivered from=<%s> to=%s files=%d", envelope.mail_from, ",".join(targets), len(ids)
        )
        return f"250 2.0.0 Ok: delivered to {len(ids)} mailbox(es)"


class Forward(RelayHandler):
    """Relay to the smarthost in lock-step: each reply the client sees is the smarthost's own."""

    async def _upstream(self, session: Session) -> Upstream:
        up: Upstream | None = getattr(session, "upstream", None)
        if up is None:
            assert self.ctx.options.smarthost is not None  # noqa: S101 (narrows a type)
            up = Upstream(
                self.ctx.options.smarthost, self.ctx.options.hostname, self.ctx.smarthost_password
            )
            session.upstream = up  # type: ignore[attr-defined]
            self.ctx.upstreams.add(up)
        return up

    async def mail(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str | None:
        """Open (or reuse) the smarthost connection and pass MAIL FROM on."""
        up = await self._upstream(session)
        try:
            code, text = await up.mail(address, options)
        except UpstreamError as exc:
            log.warning("smarthost: %s", exc)
            return exc.reply
        return None if code < 300 else _reply(code, text)

    async def rcpt(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Refuse relaying for strangers; otherwise the smarthost's answer, verbatim."""
        if auth_user(session) is None:
            assert self.ctx.resolver is not None  # noqa: S101 (narrows a type)
            domain = address.rpartition("@")[2].lower()
            if not await self.ctx.resolver.is_local_domain(domain):
                return f"554 5.7.1 <{address}>: Relay access denied"
        up = await self._upstream(session)
        try:
            code, text = await up.rcpt(address, options)
        except UpstreamError as exc:
            return exc.reply
        if code >= 300:
            self.ctx.counters["refused"] += 1
        return _reply(code, text)

    async def data(self, server: SMTP, session: Session, envelope: Envelope, content: bytes) -> str:
        """Send the message on; the smarthost's reply is the client's reply."""
        up = await self._upstream(session)
        try:
            code, text = await up.data(content)
        except UpstreamError as exc:
            return exc.reply
        if code < 300:
            self.ctx.counters["accepted"] += 1
        log.info(
            "forwarded from=<%s> to=%s: %d %s",
            envelope.mail_from,
            ",".join(envelope.rcpt_tos),
            code,
            text,
        )
        return _reply(code, text)

    async def reset(self, session: Session) -> None:
        """RSET upstream too."""
        up: Upstream | None = getattr(session, "upstream", None)
        if up is not None:
            await up.reset()

    async def closed(self, session: Session) -> None:
        """QUIT upstream."""
        up: Upstream | None = getattr(session, "upstream", None)
        if up is not None:
            session.upstream = None  # type: ignore[attr-defined]
            self.ctx.upstreams.discard(up)
            await up.close()

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Close the smarthost connection before saying goodbye."""
        await self.closed(session)
        return "221 Bye"


def _reply(code: int, text: str) -> str:
    """An SMTP reply, multi-line when the text has several lines."""
    lines = [line.strip() for line in text.splitlines() if line.strip()] or [""]
    head = [f"{code}-{line}" for line in lines[:-1]]
    return "\r\n".join([*head, f"{code} {lines[-1]}"]).rstrip()
