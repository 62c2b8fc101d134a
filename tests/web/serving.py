"""Run a real ``mailprov serve`` (web.server.serve) in a background thread for one test or module.

The ``owner_site`` fixture has its own; this one serves any site's settings and store,
e.g. the real mail stack's, so a test can change a password over HTTP and then log in
with a real IMAP client.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from mailprov.web.server import make_services, serve

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig
    from mailprov.store import Store


@contextmanager
def serving(
    settings: SiteConfig,
    store: Store,
    *,
    listen: str = "127.0.0.1:0",
    clock: Callable[[], float] | None = None,
) -> Iterator[str]:
    """Serve ``settings`` on ``listen`` until the block ends; yields the base URL."""
    services = make_services(settings, store)
    if clock is not None:
        services.clock = clock
    ready = threading.Event()
    urls: list[str] = []
    failures: list[BaseException] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def ready_at(url: str) -> None:
        urls.append(url)
        ready.set()

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve(services, listen=listen, ready=ready_at, stop=stop))
        except BaseException as exc:  # reported to the test below
            failures.append(exc)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=main, name="mailprov-serve-test", daemon=True)
    thread.start()
    assert ready.wait(30), "mailprov serve did not start"
    if failures:
        raise failures[0]
    try:
        yield urls[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
