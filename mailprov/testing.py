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

A real Postfix + Dovecot, rendered by mailprov (``mail_stack``, session-scoped; needs
root and the Debian packages; skipped when they are missing, failed under ``CI=true``)::

    def test_welcome_mail_arrives(mail_stack):
        mail_stack.add_mailbox("ann@example.test", "Rig-pass-42!x")
        my_app.send_welcome("ann@example.test", smtp=(mail_stack.host, mail_stack.ports["smtp"]))
        msg = mail_stack.wait_for_message("ann@example.test", "Rig-pass-42!x", "Welcome")

``mail_relay`` is function-scoped: every test starts with no messages and no
fault rules. The relay itself (``mail_relay_server``) runs once per session,
on 127.0.0.1, on a free port, in a temporary folder, in a background thread.

Options: ``@pytest.mark.mail_relay(auth=("user", "pw"), size_limit="1M", tls_only=True)``
on a test, or ``mail_relay_auth = user:pw``, ``mail_relay_size_limit = 1M``,
``mail_relay_tls_only = true`` in the ini file (the marker wins). Each distinct
set of options gets its own relay, started once per session.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import secrets
import shutil
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, overload

import pytest

from mailprov.relay.captured import Attachment, CapturedMessage

if TYPE_CHECKING:
    from mailprov.mailstack import MailStack
    from mailprov.relay.auth import Authenticator
    from mailprov.relay.options import RelayOptions
    from mailprov.relay.server import RelayServer
    from mailprov.relay.storage import MessageStore, StoredMessage

__all__ = ["Attachment", "CapturedMessage", "RelayRunner", "RigOptions", "relay_options"]


@dataclass
class RelayRunner:
    """A relay running on its own event loop in a background thread."""

    options: RelayOptions
    server: RelayServer | None = None
    authenticator: Authenticator | None = None
    #: Who ``address()`` names addresses after (the fixture sets it for each test).
    test_name: str = "test"
    _addresses: Iterator[int] = field(default_factory=itertools.count, repr=False)
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
        self.server = RelayServer(self.options, authenticator=self.authenticator)
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
    def mailpit_url(self) -> str | None:
        """The base URL to give Mailpit's clients (``http://127.0.0.1:PORT/mailpit``)."""
        api = self.api_url
        return api.removesuffix("/api/v1") + "/mailpit" if api else None

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

    @overload
    def wait_for(
        self, to: str | None = None, timeout: float = 10.0, count: None = None, **query: Any
    ) -> CapturedMessage: ...
    @overload
    def wait_for(
        self, to: str | None = None, timeout: float = 10.0, *, count: int, **query: Any
    ) -> list[CapturedMessage]: ...
    def wait_for(
        self, to: str | None = None, timeout: float = 10.0, count: int | None = None, **query: Any
    ) -> CapturedMessage | list[CapturedMessage]:
        """The first message matching, as soon as it is stored. Fails the test on timeout.

        With ``count=N``: once N messages match, the first N of them (oldest first).
        Each look reads only what arrived since the previous one, and only the
        matches returned are read from disk.
        """
        from mailprov.relay.storage import Query  # noqa: PLC0415  (lazy: see module doc)

        wanted = 1 if count is None else count
        base = Query(mailbox=to, newest_first=False, limit=min(wanted, 10_000), **query)
        deadline = time.monotonic() + timeout
        matched: list[StoredMessage] = []
        seen = 0
        while True:
            newest = self.store.last_seq()
            fresh = self.store.search(replace(base, after_seq=seen))
            matched += fresh[: wanted - len(matched)]
            if len(matched) >= wanted:
                found = [CapturedMessage(m, self.store.raw(m.id)) for m in matched]
                return found[0] if count is None else found
            seen = fresh[-1].seq if len(fresh) == base.limit else newest
            if time.monotonic() >= deadline:
                shown = ", ".join(f"{k}={v!r}" for k, v in {"to": to, **query}.items() if v)
                pytest.fail(
                    f"{'no message' if count is None else f'{len(matched)} of {wanted} messages'}"
                    f" matching {shown} arrived within {timeout:g} s "
                    f"({self.store.count()} stored in all)"
                )
            time.sleep(0.02)

    def assert_no_mail(self, to: str | None = None, within: float = 1.0, **query: Any) -> None:
        """Fail the test if a matching message is stored now or arrives within ``within`` s."""
        deadline = time.monotonic() + within
        while True:
            found = self.messages(to, **query)
            if found:
                shown = ", ".join(f"{k}={v!r}" for k, v in {"to": to, **query}.items() if v)
                subjects = ", ".join(repr(m.subject) for m in found[:5])
                pytest.fail(f"expected no mail matching {shown or 'anything'}, got {subjects}")
            if time.monotonic() >= deadline:
                return
            time.sleep(0.02)

    def address(self, local: str | None = None, domain: str = "example.test") -> str:
        """An address no other test uses: ``TESTNAME-N-RANDOM@example.test`` (or ``LOCAL-…``)."""
        stem = re.sub(r"[^a-z0-9]+", "-", (local or self.test_name).lower()).strip("-")[:40]
        return f"{stem or 'rig'}-{next(self._addresses)}-{secrets.token_hex(3)}@{domain}"

    def tls_context(self) -> ssl.SSLContext:
        """A client context that trusts the relay's STARTTLS certificate."""
        assert self.cert_file is not None, "this relay runs without TLS"  # noqa: S101 (narrows)
        return ssl.create_default_context(cafile=str(self.cert_file))

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


@dataclass(frozen=True)
class RigOptions:
    """How a test wants its relay: AUTH with these credentials, a size limit, TLS only."""

    auth: tuple[str, str] | None = None
    size_limit: int | None = None
    tls_only: bool = False

    @classmethod
    def from_request(cls, request: pytest.FixtureRequest) -> RigOptions:
        """The ini settings, overridden by the test's ``mail_relay`` marker."""
        from mailprov.rules.sizes import parse_size  # noqa: PLC0415  (lazy: see module doc)

        config = request.config
        found: dict[str, Any] = {
            "auth": config.getini("mail_relay_auth") or None,
            "size_limit": config.getini("mail_relay_size_limit") or None,
            "tls_only": bool(config.getini("mail_relay_tls_only")),
        }
        marker = request.node.get_closest_marker("mail_relay")
        if marker is not None:
            unknown = set(marker.kwargs) - set(found)
            if marker.args or unknown:
                pytest.fail(
                    f"mail_relay marker: unknown {sorted(unknown) or marker.args}; "
                    "use auth=(user, password), size_limit='1M', tls_only=True"
                )
            found.update(marker.kwargs)
        auth = found["auth"]
        if isinstance(auth, str):
            user, sep, password = auth.partition(":")
            if not sep or not user:
                pytest.fail("mail_relay_auth must be USER:PASSWORD")
            auth = (user, password)
        size = found["size_limit"]
        return cls(
            auth=tuple(auth) if auth else None,
            size_limit=parse_size(size) if size not in (None, "") else None,
            tls_only=bool(found["tls_only"]),
        )


class RelayPool:
    """One relay per distinct set of RigOptions, started when first needed, for the session."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.relays: dict[RigOptions, RelayRunner] = {}

    def get(self, rig: RigOptions) -> RelayRunner:
        """The running relay for these options."""
        if rig not in self.relays:
            from mailprov.model import Secret  # noqa: PLC0415  (lazy: see module doc)
            from mailprov.relay.auth import PlainAuthenticator  # noqa: PLC0415  (lazy: as above)

            changes: dict[str, Any] = {}
            authenticator = None
            if rig.auth:
                user, password = rig.auth
                authenticator = PlainAuthenticator({user.lower(): Secret(password)})
                # Rigs often AUTH on plain localhost connections; tls_only puts TLS back first.
                changes.update(require_auth=True, allow_auth_without_tls=not rig.tls_only)
            if rig.size_limit is not None:
                changes["size_limit"] = rig.size_limit
            if rig.tls_only:
                changes["require_tls"] = True
            options = relay_options(self.factory.mktemp("mail-relay"), **changes)
            self.relays[rig] = RelayRunner(options, authenticator=authenticator).start()
        return self.relays[rig]

    def stop(self) -> None:
        """Stop every relay."""
        for runner in self.relays.values():
            runner.stop()


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ini settings of the ``mail_relay`` fixture."""
    parser.addini("mail_relay_auth", "USER:PASSWORD the mail_relay fixture's relay requires")
    parser.addini("mail_relay_size_limit", "SIZE (e.g. 1M) above which mail_relay refuses (552)")
    parser.addini("mail_relay_tls_only", "mail_relay requires STARTTLS first", type="bool")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``mail_relay`` marker."""
    config.addinivalue_line(
        "markers",
        "mail_relay(auth=(user, password), size_limit='1M', tls_only=True): "
        "options of this test's relay (mailprov.testing)",
    )


@pytest.fixture(scope="session")
def mail_relay_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayPool]:
    """The session's relays, one per set of options."""
    pool = RelayPool(tmp_path_factory)
    yield pool
    pool.stop()


@pytest.fixture(scope="session")
def mail_relay_server(mail_relay_pool: RelayPool, request: pytest.FixtureRequest) -> RelayRunner:
    """The session's capture relay with the ini's options (127.0.0.1, free port, temp folder)."""
    return mail_relay_pool.get(RigOptions.from_request(request))


@pytest.fixture
def mail_relay(mail_relay_pool: RelayPool, request: pytest.FixtureRequest) -> RelayRunner:
    """This test's relay (ini options, then its marker), emptied and without fault rules."""
    runner = mail_relay_pool.get(RigOptions.from_request(request))
    runner.purge()
    runner.clear_faults(seed=0)
    runner.test_name = request.node.name
    return runner


def _skip_or_fail(reason: str) -> NoReturn:
    """Skip on a laptop; fail under ``CI=true``, where a missing server must not pass silently."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (CI=true: this must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def mail_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailStack]:
    """A real Postfix + Dovecot from mailprov's rendered configs, on 127.0.0.1 and free ports,
    on a SQLite store in a temporary folder, for the whole session (stopped by PID)."""
    try:
        # Lazy: the harness pulls in the store and TLS code; only rigs that use it pay for it.
        from mailprov import mailstack  # noqa: PLC0415  (lazy: heavy, see the module docstring)
    except ImportError:  # the light mailprov-relay install ships the relay's fixtures only
        _skip_or_fail("mail_stack needs the full mailprov package (pip install mailprov)")
    missing = mailstack.missing_tools()
    if missing:
        _skip_or_fail(
            f"mail_stack needs Postfix and Dovecot: {', '.join(missing)} not installed "
            "(apt install postfix postfix-sqlite dovecot-imapd dovecot-pop3d dovecot-lmtpd "
            "dovecot-sqlite)"
        )
    store = tmp_path_factory.mktemp("mail_stack") / "mailprov.sqlite"
    stack: MailStack = mailstack.start_stack(f"sqlite:///{store}", name="rig")
    try:
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(stack.root, ignore_errors=True)
