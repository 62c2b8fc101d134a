"""``check delivery``: a uniquely tagged message through submission, seen over IMAP, deleted.

The message goes in through the submission port (STARTTLS, then AUTH as the
mailbox) with aiosmtplib and is looked for over IMAPS with aioimaplib; the
round trip is the time from the first SMTP byte to the IMAP SEARCH that finds
it. It is then flagged deleted and expunged. Both connections verify the
server's certificate against ``[check] ca_file`` (default: ``[tls] cert_file``)
and the name ``[check] server_name`` (default: ``[site] hostname``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from mailprov.errors import DeliveryAuthFailed, DeliveryNotSeen, DeliveryRefused
from mailprov.rules.addresses import parse_address

if TYPE_CHECKING:
    from mailprov.model import Secret
    from mailprov.settings import SiteConfig

POLL_S = 0.05


@dataclass(frozen=True)
class DeliveryResult:
    """What one delivery check measured."""

    address: str
    tag: str
    host: str
    submission_port: int
    imaps_port: int
    submit_ms: float
    round_trip_ms: float
    deleted: bool

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "address": self.address,
            "tag": self.tag,
            "host": self.host,
            "submission_port": self.submission_port,
            "imaps_port": self.imaps_port,
            "submit_ms": round(self.submit_ms, 1),
            "round_trip_ms": round(self.round_trip_ms, 1),
            "deleted": self.deleted,
        }


def tls_context(settings: SiteConfig) -> ssl.SSLContext:
    """A verifying client context trusting ``[check] ca_file`` (or the deployed certificate)."""
    ca = settings.resolve_path(settings.check.ca_file or settings.tls.cert_file)
    try:
        return ssl.create_default_context(cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryRefused(
            f"cannot use {ca} as the CA file to verify the server: {exc}",
            hint="set [check] ca_file to the CA (or certificate) that signed the server's cert",
        ) from None


def check_host(settings: SiteConfig) -> str:
    """Where the checks connect: ``[check] host``, else the services' first listen address."""
    if settings.check.host:
        return settings.check.host
    listen = [a for a in settings.deploy.listen if a != "all"]
    if not listen:
        return "127.0.0.1"
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(listen[0], listen[0])  # noqa: S104


def server_name(settings: SiteConfig) -> str:
    """The name the server's certificate must carry."""
    return settings.check.server_name or settings.site.hostname


def _imap_class() -> Any:
    import aioimaplib  # noqa: PLC0415  (lazy)

    class Imap(aioimaplib.IMAP4_SSL):  # type: ignore[misc]
        """IMAPS that verifies the certificate against a name, not the address dialled."""

        name = ""

        def create_client(
            self,
            host: str,
            port: int,
            loop: Any,
            conn_lost_cb: Any = None,
            ssl_context: ssl.SSLContext | None = None,
        ) -> None:
            local_loop = loop if loop is not None else asyncio.get_running_loop()
            self.protocol = aioimaplib.IMAP4ClientProtocol(local_loop, conn_lost_cb)
            self._client_task = local_loop.create_task(
                local_loop.create_connection(
                    lambda: self.protocol, host, port, ssl=ssl_context, server_hostname=self.name
                )
            )

    return Imap


def _message(address: str, tag: str, hostname: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = address
    msg["To"] = address
    msg["Subject"] = f"mailprov delivery check {tag}"
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = f"<{tag}@{hostname}>"
    msg["X-Mailprov-Check"] = tag
    msg.set_content(f"This message was sent by 'mailprov check delivery' ({tag}); it deletes it.\n")
    return msg


async def _submit(settings: SiteConfig, address: str, password: str, msg: EmailMessage) -> None:
    import aiosmtplib  # noqa: PLC0415  (lazy)

    host, port = check_host(settings), settings.ports.submission
    smtp = aiosmtplib.SMTP(
        hostname=host,
        port=port,
        start_tls=False,
        timeout=settings.check.timeout_seconds,
        local_hostname=settings.site.hostname,
    )
    try:
        await smtp.connect()
        await smtp.starttls(
            server_hostname=server_name(settings), tls_context=tls_context(settings)
        )
        try:
            await smtp.login(address, password)
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise DeliveryAuthFailed(
                f"the submission server on {host}:{port} refused the login for {address} "
                f"({exc.code}); nothing was sent"
            ) from None
        await smtp.send_message(msg)
    except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
        raise DeliveryRefused(
            f"submission on {host}:{port} failed: {type(exc).__name__}: {_first_line(exc)}"
        ) from None
    finally:
        transport = smtp.transport  # quit() forgets it while its TLS close is still pending
        with contextlib.suppress(Exception):
            await smtp.quit()
        await _drop(transport)


async def _drop(transport: Any) -> None:
    """Close a transport for good before asyncio.run ends (after QUIT/LOGOUT, so abort is
    safe): a graceful TLS close would still be waiting for the peer when the loop stops."""
    if transport is not None:
        transport.abort()
        await asyncio.sleep(0)  # run the scheduled connection_lost


def _text(lines: list[Any]) -> str:
    for line in lines:
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else str(line)
        if text.strip():
            return text.strip()[:200]
    return "no reason given"


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:200]


async def _find_and_delete(
    settings: SiteConfig, address: str, password: str, tag: str, started: float
) -> tuple[float, bool]:
    import aioimaplib  # noqa: PLC0415  (lazy)

    host, port = check_host(settings), settings.ports.imaps
    imap_cls = _imap_class()
    imap_cls.name = server_name(settings)
    deadline = started + settings.check.timeout_seconds
    try:
        imap = imap_cls(
            host, port, timeout=settings.check.timeout_seconds, ssl_context=tls_context(settings)
        )
        await imap.wait_hello_from_server()
        login = await imap.login(address, password)
    except (TimeoutError, OSError, ssl.SSLError) as exc:
        raise DeliveryRefused(
            f"IMAPS on {host}:{port} failed: {type(exc).__name__}: {_first_line(exc)}"
        ) from None
    try:
        if login.result != "OK":
            raise DeliveryAuthFailed(f"the IMAP server on {host}:{port} refused the login")
        while True:
            selected = await imap.select("INBOX")
            if selected.result != "OK":
                raise DeliveryRefused(
                    f"the IMAP server on {host}:{port} could not open {address}'s INBOX: "
                    + _text(selected.lines),
                    hint="look at Dovecot's log (a mail folder it cannot write?); "
                    "'mailprov doctor' checks the Maildirs",
                )
            found = await imap.uid_search(f'HEADER X-Mailprov-Check "{tag}"', charset=None)
            uids = found.lines[0].split() if found.result == "OK" and found.lines else []
            if uids:
                seen = time.monotonic()
                break
            if time.monotonic() > deadline:
                raise DeliveryNotSeen(
                    f"the test message {tag} was accepted but did not appear in {address}'s "
                    f"INBOX within {settings.check.timeout_seconds:g} s"
                )
            await asyncio.sleep(POLL_S)
        uid_set = b",".join(uids).decode() if isinstance(uids[0], bytes) else ",".join(uids)
        stored = await imap.uid("store", uid_set, "+FLAGS.SILENT", r"(\Deleted)")
        expunged = await imap.expunge()
        return (seen - started) * 1000, stored.result == "OK" and expunged.result == "OK"
    except (aioimaplib.Error, TimeoutError, OSError) as exc:
        raise DeliveryRefused(
            f"the IMAP conversation with {host}:{port} failed: {type(exc).__name__}: "
            f"{_first_line(exc)}"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            await imap.logout()
        await _drop(getattr(imap.protocol, "transport", None))


def check_delivery(settings: SiteConfig, address: str, password: Secret) -> DeliveryResult:
    """Send a tagged message to ``address`` through submission and wait to see it over IMAP.

    Raises:
        InvalidAddress: ``address`` is not an address.
        DeliveryAuthFailed: the login was refused; nothing was sent.
        DeliveryRefused: a server could not be reached or refused the message.
        DeliveryNotSeen: accepted but not visible in time.
    """
    parsed = parse_address(address)
    address = str(parsed)
    tag = f"mpcheck-{uuid.uuid4().hex}"
    msg = _message(address, tag, settings.site.hostname)
    secret = password.reveal()

    async def run() -> DeliveryResult:
        started = time.monotonic()
        await _submit(settings, address, secret, msg)
        submitted = time.monotonic()
        rtt, deleted = await _find_and_delete(settings, address, secret, tag, started)
        return DeliveryResult(
            address,
            tag,
            check_host(settings),
            settings.ports.submission,
            settings.ports.imaps,
            (submitted - started) * 1000,
            rtt,
            deleted,
        )

    return asyncio.run(run())
