"""Fixtures for ``mailprov serve``: one real server per store backend, per session.

``owner_site`` is a site folder (config, store, pepper) with domain example.test,
its server listening on 127.0.0.1 (a real aiohttp server on a free port, run in a
background thread so tests can move its clock), and codes and notices going by
SMTP to the session's ``mail_relay_server``, and identity by redirect ([oidc]) going to
the session's ``oidc_provider``. Tests share the site: each makes its
own mailboxes (``owner_site.mailbox()``, unique addresses) and must not depend on
another test's changes. ``owner_site.client()`` is a real HTTP client (httpx).

``owner_dns`` is a private knot on the site's ``[dns] check_nameserver`` port, for domain
ownership proofs. ``owner_stack`` is a real Postfix + Dovecot (``tests/integration/stack.py``) on the same
store and the same mail homes (``[dovecot] mail_root``), started once per session and store
backend for the tests that ask for it: a password, an app password or a filter set through
the site's API or portal is what that Dovecot checks and runs. Its Postfix relays outside
mail (vacation replies, forwards) to the session's ``mail_relay_server``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailprov import mailstack
from mailprov.testing import RelayRunner
from tests.conftest import free_port, pg_base_url, require_or_skip
from tests.integration.knot import Knot
from tests.integration.stack import (
    MailStack,
    create_pg_database,
    drop_pg_database,
    start_stack,
)

_counter = itertools.count(1)


@dataclass
class Clock:
    """The server's clock: real time plus an offset tests may move."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class OwnerSite:
    """A site with a running ``mailprov serve``."""

    folder: Path
    config: Path
    store_url: str
    url: str
    services: Any
    clock: Clock
    mail_root: Path
    #: The loopback port of the site's [dns] check_nameserver (``owner_dns`` serves there).
    dns_port: int = 0
    stop: Any = None
    thread: threading.Thread | None = None
    passwords: dict[str, str] = field(default_factory=dict)

    def client(self, **kwargs: Any) -> httpx.Client:
        """A fresh HTTP client (its own cookie jar) for this server."""
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def mailbox(self, *, temporary: bool = False, password: str | None = None) -> tuple[str, str]:
        """A new mailbox with a unique address; returns (address, password)."""
        from mailprov.rules import hashing
        from mailprov.services import accounts
        from mailprov.services.accounts import Actor

        address = f"owner{next(_counter)}-{secrets.token_hex(3)}@example.test"
        clear = password or f"Pw-{secrets.token_hex(6)}!a1"
        prepared = accounts.NewPassword(hashing.hash_password(clear, "SHA512-CRYPT"), None)
        accounts.add_mailbox(
            self.services.store,
            address,
            prepared,
            actor=Actor("tester", int(self.clock())),
            temporary_hours=72 if temporary else None,
        )
        self.passwords[address] = clear
        return address, clear

    def sign_in(self, client: httpx.Client, address: str, password: str) -> dict[str, Any]:
        """POST /api/v1/session; returns the answer (fails the test unless 201)."""
        answer = client.post("/api/v1/session", json={"address": address, "password": password})
        assert answer.status_code == 201, answer.text
        data: dict[str, Any] = answer.json()
        client.headers["X-CSRF-Token"] = data["csrf_token"]
        return data


@dataclass
class OidcProvider:
    """The session's third-party OpenID Connect provider (``oidc-provider-mock``, its own
    process on 127.0.0.1; see ``tests/web/oidc_provider.py``)."""

    url: str
    client_id: str
    secret: str
    process: subprocess.Popen[bytes]

    def set_user(self, sub: str, claims: dict[str, Any]) -> None:
        """Give user ``sub`` these claims (its user API): they go into its ID tokens."""
        answer = httpx.put(f"{self.url}/users/{sub}", json=claims, timeout=10)
        assert answer.status_code == 204, answer.text


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """oidc-provider-mock on a free loopback port, PKCE and the client secret enforced."""
    folder = tmp_path_factory.mktemp("oidc-provider")
    port, secret = free_port(), secrets.token_urlsafe(18)
    script = Path(__file__).with_name("oidc_provider.py")
    with (folder / "provider.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(script), str(port)],
            stdout=log,
            stderr=log,
            env={**os.environ, "MOCK_CLIENT_SECRET": secret},  # never on argv
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/.well-known/openid-configuration", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(
                "oidc-provider-mock did not start: " + (folder / "provider.log").read_text()
            )
        time.sleep(0.1)
    yield OidcProvider(url, "mailprov-test", secret, process)
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _config(
    folder: Path,
    store_url: str,
    relay: RelayRunner,
    provider: OidcProvider,
    mail_root: Path,
    dns_port: int,
) -> Path:
    config = folder / "mailprov.toml"
    port = free_port()
    secret_file = folder / "oidc-client-secret"
    secret_file.touch(mode=0o600)
    secret_file.write_text(provider.secret + "\n", encoding="utf-8")
    config.write_text(
        f"""
[site]
hostname = "mail.example.test"

[store]
url = "{store_url}"

[passwords]
scheme = "SHA512-CRYPT"

[identity]
pepper_file = "{folder / "pepper"}"

[notify]
smarthost = "127.0.0.1"
port = {relay.port}
sender = "mailprov@example.test"

[oidc]
issuer = "{provider.url}"
client_id = "{provider.client_id}"
client_secret_file = "{secret_file}"
redirect_url = "http://127.0.0.1:{port}/api/v1/identity/oidc/callback"

[web]
listen = "127.0.0.1:{port}"
test_issuer = "{folder / "test-issuer"}"
# Every test (and the fuzzer) signs in from 127.0.0.1: a per-client lock would spill from
# one test into the next. test_lockout.py checks that limit with its own settings.
signin_max_failures_per_client = 100000
requests_per_client_hour = 100000

[dns]
# Domain ownership proofs ask only this loopback port (owner_dns's knot, when it runs).
check_nameserver = "127.0.0.1:{dns_port}"

[dovecot]
# The filters API writes Sieve scripts into the mail homes here (owner_stack's Dovecot
# delivers into the same folder).
mail_root = "{mail_root}"
""",
        encoding="utf-8",
    )
    return config


#: The audience of the site's TEST issuer (the portal's TEST identity provider signs with it).
TEST_AUDIENCE = "urn:mailprov:owner-site"


def _trust_test_issuer(store: Any, folder: Path) -> None:
    """A TEST issuer in ``folder`` (``[web] test_issuer``), trusted for NIST 800-63A (ial2+)."""
    from mailprov.services import testissuer, trust
    from mailprov.services.accounts import Actor

    issuer = testissuer.init_issuer(folder, audience=TEST_AUDIENCE)
    trust.add_issuer(
        store,
        iss=issuer.iss,
        jwks_file=issuer.jwks_file,
        audience=TEST_AUDIENCE,
        actor=Actor("tester", int(time.time())),
        framework="nist_800_63A",
        min_level="ial2",
    )


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.requires_postgres)],
)
def owner_site(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    mail_relay_server: RelayRunner,
    oidc_provider: OidcProvider,
) -> Iterator[OwnerSite]:
    """A site with domain example.test and its ``mailprov serve`` on 127.0.0.1."""
    from mailprov.services import accounts
    from mailprov.services.accounts import Actor
    from mailprov.settings import load_settings
    from mailprov.store import open_store
    from mailprov.store.migrate import upgrade
    from mailprov.web.server import make_services, serve

    folder = tmp_path_factory.mktemp(f"owner-{request.param}")
    pg_url = None
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'mailprov.sqlite'}"
    else:
        request.getfixturevalue("pg")  # skips (or fails under CI) when PostgreSQL is down
        # A database of its own, not a schema: owner_stack's Postfix maps and Dovecot read it
        # too, and they cannot set a search_path.
        url = pg_url = create_pg_database(pg_base_url())
    upgrade(url)
    # Outside pytest's private (0700) folders: owner_stack's Dovecot runs as vmail.
    mail_root = Path(tempfile.mkdtemp(prefix="mp-homes-"))
    mail_root.chmod(0o755)
    dns_port = free_port()
    config = _config(folder, url, mail_relay_server, oidc_provider, mail_root, dns_port)
    settings = load_settings(config_file=str(config), flags={})
    store = open_store(url)
    accounts.add_domain(store, "example.test", actor=Actor("tester", int(time.time())))
    _trust_test_issuer(store, folder / "test-issuer")
    clock = Clock()
    services = make_services(settings, store)
    services.clock = clock
    ready = threading.Event()
    urls: list[str] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def ready_at(url: str) -> None:
        urls.append(url)
        ready.set()

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(
            serve(services, listen=settings.web.listen, ready=ready_at, stop=stop)
        )

    thread = threading.Thread(target=main, name="mailprov-serve", daemon=True)
    thread.start()
    assert ready.wait(30), "mailprov serve did not start"
    site = OwnerSite(
        folder, config, url, urls[0], services, clock, mail_root, dns_port, stop, thread
    )
    yield site
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)
    store.close()
    shutil.rmtree(mail_root, ignore_errors=True)
    if pg_url:
        drop_pg_database(pg_base_url(), pg_url)


@pytest.fixture(scope="session")
def owner_dns(owner_site: OwnerSite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Knot]:
    """A private knot on the owner site's [dns] check_nameserver port (one per backend), where
    tests publish the zones of the domains whose ownership the site checks."""
    if shutil.which("knotd") is None or shutil.which("knotc") is None:
        require_or_skip("knotd not installed (apt install knot knot-dnsutils)")
    server = Knot.start(tmp_path_factory.mktemp("owner-knot"), port=owner_site.dns_port)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def owner_stack(owner_site: OwnerSite, mail_relay_server: RelayRunner) -> Iterator[MailStack]:
    """Real Postfix + Dovecot on the owner site's store and mail homes, relaying outside mail
    to the session's relay; one per store backend, for the whole session."""
    missing = mailstack.missing_tools()
    if missing:
        require_or_skip(f"{', '.join(missing)} not installed (make test-deps installs them)")
    # Dovecot (as vmail) makes the mail homes in it, as under a host's /var/vmail.
    vmail = pwd.getpwnam("vmail")
    os.chown(owner_site.mail_root, vmail.pw_uid, vmail.pw_gid)
    stack = start_stack(
        owner_site.store_url,
        name=f"ow{owner_site.store_url[:1]}",
        ports={"relay": mail_relay_server.port},
        mail_root=owner_site.mail_root,
    )
    try:
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(stack.root, ignore_errors=True)


@pytest.fixture
def owner(owner_site: OwnerSite) -> Iterator[OwnerSite]:
    """The session's site with its clock back at real time after the test."""
    yield owner_site
    owner_site.clock.offset = 0.0
