"""What test rigs import: pytest fixtures for mailprov's local relay (a pytest11 plugin).

Importing this module must stay cheap: pytest loads it in every test session of
a project that has mailprov installed. aiosmtpd, aiohttp and the relay itself
are imported only when a fixture is used.

Usage (no conftest needed; the plugin is registered by installing mailprov)::

    def test_signup_sends_a_code(mail_relay):
        app = make_app(smtp_host=mail_relay.host, smtp_port=mail_relay.port)
        app.signup("ann@example.test")
        msg = mail_relay.wait_for(to="ann@example.test", subject="code", timeout=5)
        assert "Your code" in msg.text  # noqa: S101 (narrows a type)

    def test_signup_survives_a_greylisting_server(mail_relay):
        mail_relay.fault("rcpt:*@example.test=450 4.7.1 greylisted@times=1")
        ...

``mail_relay`` is function-scoped: every test starts with no messages and no
fault rules. The relay itself (``mail_relay_server``) runs once per session,
on 127.0.0.1, on a free port, in a temporary folder, in a background thread.
"""

from __future__ import annotations

import asyncio
import email.message
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mailprov.relay.options import RelayOptions
    from mailprov.relay.server import RelayServer
    from mailprov.relay.storage import MessageStore, StoredMessage


@dataclass
class CapturedMessage:
    """A message the relay stored: envelope, summary and the parsed message."""

    summary: StoredMessage
    raw: bytes

    @property
    def id(self) -> str:
        """The relay's id for it."""
        return self.summary.id

    @property
    def sender(self) -> str:
        """The envelope sender (MAIL FROM)."""
        return self.summary.sender

    @property
    def recipients(self) -> tuple[str, ...]:
        """The envelope recipients (RCPT TO)."""
        return self.summary.recipients

    @property
    def subject(self) -> str:
        """The decoded Subject header."""
        return self.summary.subject

    @property
    def message(self) -> email.message.EmailMessage:
        """The message parsed with the modern email policy."""

        parsed: Any = BytesParser(policy=policy.default).parsebytes(self.raw)
        return parsed  # type: ignore[no-any-return]

    @property
    def text(self) -> str:
        """The plain-text body (the first text/plain part), or ''."""
        part = self.message.get_body(preferencelist=("plain",))
        return str(part.get_content()) if part is not None else ""


@dataclass
class RelayRunner:
    """A relay running on its own event loop in a background thread."""

    options: RelayOptions
    server: RelayServer | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _reader: MessageStore | None = field(default=None, repr=False)

    def start(self, timeout: float = 15.0) -> RelayRunner:
        """Start and return once the relay listens (or raise its error)."""

        from mailprov.relay.server import RelayServer  # noqa: PLC0415  (lazy: aiosmtpd, aiohttp)
        from mailprov.relay.storage import MessageStore  # noqa: PLC0415  (lazy: see module doc)

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="mail-relay", daemon=True
        )
        self._thread.start()
        self.server = RelayServer(self.options)
        try:
            asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()  # a refused start leaves no loop (and its sockets) behind
            self._loop = None
            raise
        self._reader = MessageStore(self.options.storage_dir).open(create=False)
        return self

    def stop(self) -> None:
        """Stop the relay and its thread."""

        if self._loop is None or self.server is None:
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()
        if self._reader is not None:
            self._reader.close()
        self._loop = None

    # -- what tests use -------------------------------------------------------

    @property
    def host(self) -> str:
        """The SMTP host to connect to."""
        return self.options.host

    @property
    def port(self) -> int:
        """The SMTP port (a free one chosen at start)."""
        assert self.server is not None  # noqa: S101 (narrows a type)
        return self.server.port

    @property
    def api_url(self) -> str | None:
        """The HTTP API's base URL (``.../api/v1``), if the API runs."""
        assert self.server is not None  # noqa: S101 (narrows a type)
        api = self.server.describe()["api"]
        return str(api) if api else None

    @property
    def cert_file(self) -> Path | None:
        """The certificate STARTTLS presents (trust it in your client)."""
        assert self.server is not None  # noqa: S101 (narrows a type)
        return self.server.cert_file

    @property
    def store(self) -> MessageStore:
        """A reader of the relay's storage (for this thread)."""
        assert self._reader is not None  # noqa: S101 (narrows a type)
        return self._reader

    def messages(self, to: str | None = None, **query: Any) -> list[CapturedMessage]:
        """Stored messages, oldest first; ``to`` selects a mailbox (recipient or AUTH user).

        Other keywords are :class:`mailprov.relay.storage.Query` fields: sender,
        subject, user, since, until, header=(name, value).
        """
        from mailprov.relay.storage import Query  # noqa: PLC0415  (lazy: see module doc)

        found = self.store.search(Query(mailbox=to, newest_first=False, limit=10_000, **query))
        return [CapturedMessage(m, self.store.raw(m.id)) for m in found]

    def wait_for(
        self, to: str | None = None, timeout: float = 10.0, **query: Any
    ) -> CapturedMessage:
        """The first message matching, as soon as it is stored. Fails the test on timeout."""

        from mailprov.relay.storage import Query  # noqa: PLC0415  (lazy: see module doc)

        wanted = Query(mailbox=to, newest_first=False, limit=1, **query)
        deadline = time.monotonic() + timeout
        seen = 0  # each look covers what arrived since the last one, and reads one message
        while True:
            newest = self.store.last_seq()
            found = self.store.search(replace(wanted, after_seq=seen))
            if found:
                return CapturedMessage(found[0], self.store.raw(found[0].id))
            seen = newest
            if time.monotonic() >= deadline:
                shown = ", ".join(f"{k}={v!r}" for k, v in {"to": to, **query}.items() if v)
                pytest.fail(
                    f"no message matching {shown} arrived within {timeout:g} s "
                    f"({self.store.count()} stored in all)"
                )
            time.sleep(0.02)

    def fault(self, rule: str) -> None:
        """Add a fault rule, e.g. ``'rcpt:bounce-*@example.test=550 5.1.1 no such user'``."""
        assert self.server is not None  # noqa: S101 (narrows a type)
        self.server.add_fault(rule)

    def clear_faults(self, seed: int | None = None) -> None:
        """Remove every fault rule (and reseed)."""
        assert self.server is not None  # noqa: S101 (narrows a type)
        self.server.clear_faults(seed)

    def purge(self) -> int:
        """Delete every stored message."""
        return self.store.purge()


def relay_options(tmp: Path, **changes: Any) -> RelayOptions:
    """Options for a test relay: loopback, free ports, storage in ``tmp``, self-signed TLS."""
    from mailprov.relay.options import RelayOptions  # noqa: PLC0415  (lazy: see module doc)

    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "hostname": "relay.test",
        "storage_dir": tmp,
        "api": ("127.0.0.1", 0),
        "tls": "generate",
        "max_messages": 10_000,
    }
    return RelayOptions(**{**base, **changes})


@pytest.fixture(scope="session")
def mail_relay_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayRunner]:
    """One capture relay for the session (127.0.0.1, free port, temporary folder)."""
    runner = RelayRunner(relay_options(tmp_path_factory.mktemp("mail-relay"))).start()
    yield runner
    runner.stop()


@pytest.fixture
def mail_relay(mail_relay_server: RelayRunner) -> RelayRunner:
    """The session's relay, emptied and without fault rules for this test."""
    mail_relay_server.purge()
    mail_relay_server.clear_faults(seed=0)
    return mail_relay_server
