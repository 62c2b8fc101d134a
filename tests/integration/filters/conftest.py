"""Fixtures for filters on the real stack: the session's ``mailstack`` (Postfix + Dovecot with
Pigeonhole), a capture relay on the port its Postfix relays outbound mail to, and a real
``mailprov serve`` on the same site (config and store), so forms saved over HTTP are
installed where the stack's Dovecot runs them."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailprov.testing import RelayRunner, relay_options
from tests.conftest import require_or_skip
from tests.integration.stack import MailStack


@pytest.fixture(scope="module", name="outbound")
def fixture_outbound(
    mailstack: MailStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RelayRunner]:
    """A capture relay on the stack's relayhost port: what Postfix sends out lands here."""
    runner = RelayRunner(
        relay_options(tmp_path_factory.mktemp("outbound"), port=mailstack.ports["relay"])
    ).start()
    yield runner
    runner.stop()


@dataclass
class FiltersSite:
    """The stack plus its ``mailprov serve``."""

    stack: MailStack
    url: str

    def client(self) -> httpx.Client:
        """A fresh HTTP client of the site's server."""
        return httpx.Client(base_url=self.url, timeout=30)

    def sign_in(self, client: httpx.Client, address: str, password: str) -> None:
        """Sign in (the client keeps the cookie and sends the CSRF token from now on)."""
        answer = client.post("/api/v1/session", json={"address": address, "password": password})
        assert answer.status_code == 201, answer.text
        data: dict[str, Any] = answer.json()
        assert data["stage"] == "full", data
        client.headers["X-CSRF-Token"] = data["csrf_token"]

    def home(self, address: str) -> Path:
        """The mailbox's mail home (where its Sieve scripts live)."""
        local, domain = address.split("@")
        return self.stack.root / "mail" / domain / local


@pytest.fixture(scope="module", name="filters_site")
def fixture_filters_site(mailstack: MailStack) -> Iterator[FiltersSite]:
    """``mailprov serve`` on the stack's own config and store, on a free loopback port."""
    if shutil.which("sieve-connect") is None or shutil.which("sievec") is None:
        require_or_skip("sieve-connect or sievec missing (make test-deps installs them)")
    from mailprov.settings import load_settings
    from mailprov.store import open_store
    from mailprov.web.server import make_services, serve

    settings = load_settings(config_file=str(mailstack.config_file), env={}, flags={})
    store = open_store(mailstack.store_url)
    services = make_services(settings, store)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()
    urls: list[str] = []

    def ready_at(url: str) -> None:
        urls.append(url)
        ready.set()

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(serve(services, listen="127.0.0.1:0", ready=ready_at, stop=stop))

    thread = threading.Thread(target=main, name="mailprov-serve-filters", daemon=True)
    thread.start()
    assert ready.wait(30), "mailprov serve did not start"
    yield FiltersSite(mailstack, urls[0])
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)
    loop.close()
    store.close()
