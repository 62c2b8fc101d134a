"""The smarthost connection of one client session, driven in lock-step (forward mode).

aiosmtpd's own Proxy handler answers 250 at RCPT and DATA whatever the upstream
says. Here every MAIL, RCPT and DATA is passed to the smarthost first and its
reply goes back to the client unchanged, so a refused recipient is refused and
a temporary failure stays a 4xx. If the smarthost cannot be reached or refuses
our credentials, the client gets a 4xx: nothing is accepted that was not relayed.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiosmtplib import SMTP as Client

    from mailprov.model import Secret
    from mailprov.relay.options import Smarthost

TIMEOUT_S = 30.0
PASS_THROUGH = {"SMTPUTF8": "smtputf8", "BODY=8BITMIME": "8bitmime"}


class UpstreamError(Exception):
    """The smarthost could not be used; ``reply`` is what the client is told."""

    def __init__(self, reply: str, detail: str) -> None:
        super().__init__(detail)
        self.reply = reply


class Upstream:
    """A lazily opened SMTP client to the smarthost."""

    def __init__(self, smarthost: Smarthost, helo_name: str, password: Secret | None) -> None:
        self.smarthost = smarthost
        self.helo_name = helo_name
        self.password = password
        self.client: Client | None = None

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(
            cafile=str(self.smarthost.ca_file) if self.smarthost.ca_file else None
        )

    async def _open(self) -> Client:
        from aiosmtplib import SMTP, SMTPException  # noqa: PLC0415  (lazy: a heavy import only this path needs)

        if self.client is not None and self.client.is_connected:
            return self.client
        host = self.smarthost
        client = SMTP(
            hostname=host.host,
            port=host.port,
            local_hostname=self.helo_name,
            timeout=TIMEOUT_S,
            start_tls=False,
            tls_context=self._tls_context(),
        )
        where = f"{host.host}:{host.port}"
        try:
            await client.connect()
            await client.ehlo()
            if host.starttls:
                if not client.supports_extension("starttls"):
                    client.close()
                    raise UpstreamError(
                        "451 4.7.5 Error: smarthost offers no STARTTLS",
                        f"{where} does not offer STARTTLS",
                    )
                await client.starttls()
                await client.ehlo()
            if host.username:
                assert self.password is not None  # noqa: S101 (narrows a type)
                await client.login(host.username, self.password.reveal())
        except UpstreamError:
            raise
        except (SMTPException, OSError, ssl.SSLError) as exc:
            client.close()
            detail = f"smarthost {where}: {type(exc).__name__}: {exc}"
            raise UpstreamError(
                "451 4.4.1 Error: smarthost unavailable; try again later", detail
            ) from None
        self.client = client
        return client

    async def _command(self, *args: bytes) -> tuple[int, str]:
        from aiosmtplib import SMTPException  # noqa: PLC0415  (lazy: a heavy import only this path needs)

        client = await self._open()
        try:
            response = await client.execute_command(*args)
        except (SMTPException, OSError) as exc:
            raise UpstreamError(
                "451 4.4.2 Error: smarthost connection lost; try again later", str(exc)
            ) from None
        return response.code, response.message

    def _options(self, options: list[str]) -> bytes:
        assert self.client is not None  # noqa: S101 (narrows a type)
        kept = [
            o
            for o in options
            if o.upper() in PASS_THROUGH and self.client.supports_extension(PASS_THROUGH[o.upper()])
        ]
        return (" " + " ".join(kept)).encode() if kept else b""

    async def mail(self, address: str, options: list[str]) -> tuple[int, str]:
        """MAIL FROM upstream; opens the connection on first use."""
        await self._open()
        return await self._command(
            b"MAIL", b"FROM:<" + address.encode() + b">" + self._options(options)
        )

    async def rcpt(self, address: str, _options: list[str]) -> tuple[int, str]:
        """RCPT TO upstream."""
        return await self._command(b"RCPT", b"TO:<" + address.encode() + b">")

    async def data(self, content: bytes) -> tuple[int, str]:
        """DATA upstream; the smarthost's final reply."""
        from aiosmtplib import SMTPException, SMTPResponseException  # noqa: PLC0415  (lazy: a heavy import only this path needs)

        client = await self._open()
        try:
            response: Any = await client.data(content)
        except SMTPResponseException as exc:
            return exc.code, exc.message
        except (SMTPException, OSError) as exc:
            raise UpstreamError(
                "451 4.4.2 Error: smarthost connection lost; try again later", str(exc)
            ) from None
        return response.code, response.message

    async def reset(self) -> None:
        """RSET upstream, if connected."""
        if self.client is not None and self.client.is_connected:
            try:
                await self._command(b"RSET")
            except UpstreamError:
                self.client.close()

    def abort(self) -> None:
        """Close the connection at once (the relay is stopping)."""
        client, self.client = self.client, None
        if client is not None:
            client.close()

    async def close(self) -> None:
        """QUIT and close."""
        from aiosmtplib import SMTPException  # noqa: PLC0415  (lazy: a heavy import only this path needs)

        client, self.client = self.client, None
        if client is not None and client.is_connected:
            transport = client.transport  # quit() forgets it while its close is still pending
            try:
                await client.quit(timeout=5)
            except (SMTPException, OSError):
                client.close()
            if isinstance(transport, asyncio.Transport):
                transport.abort()  # closed for good now, not at garbage collection
