"""Fixtures for ``mailprov serve``: one real server per store backend, per session.

``owner_site`` is a site folder (config, store, pepper) with domain example.test,
its server listening on 127.0.0.1 (a real aiohttp server on a free port, run in a
background thread so tests can move its clock), and codes and notices going by
SMTP to the session's ``mail_relay_server``, and identity by redirect ([oidc]) going to
the session's ``oidc_provider``. Tests share the site: each makes its
own mailboxes (``owner_site.mailbox()``, unique addresses) and must not depend on
another test's changes. ``owner_site.client()`` is a real HTTP client (httpx).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailprov.testing import RelayRunner
from tests.conftest import PgSchema, free_port

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


def _config(folder: Path, store_url: str, relay: RelayRunner, provider: OidcProvider) -> Path:
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

[dovecot]
# The filters API writes Sieve scripts into the mail homes here.
mail_root = "{folder / "mail"}"
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
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'mailprov.sqlite'}"
    else:
        pg: PgSchema = request.getfixturevalue("pg")
        url = pg.fresh()
    upgrade(url)
    config = _config(folder, url, mail_relay_server, oidc_provider)
    (folder / "mail").mkdir()
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
    site = OwnerSite(folder, config, url, urls[0], services, clock, stop, thread)
    yield site
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)
    store.close()


@pytest.fixture
def owner(owner_site: OwnerSite) -> Iterator[OwnerSite]:
    """The session's site with its clock back at real time after the test."""
    yield owner_site
    owner_site.clock.offset = 0.0
