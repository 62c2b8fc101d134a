"""Running ``mailprov serve``: bind, serve until told to stop, close cleanly.

The socket is bound before anything reports ready, so a taken port is a clear
``PortInUse`` error and a ready line means clients can connect.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from mailprov.relay.server import bind_socket
from mailprov.settings.checks import parse_endpoint
from mailprov.system.secrets import load_pepper
from mailprov.system.tls import server_context
from mailprov.web.app import Services, build_app

if TYPE_CHECKING:
    import ssl

    from mailprov.settings import SiteConfig
    from mailprov.store import Store


def make_services(settings: SiteConfig, store: Store) -> Services:
    """The services of a real server: the site's settings, store and pepper."""
    pepper = load_pepper(settings.resolve_path(settings.identity.pepper_file))
    return Services(settings=settings, store=store, pepper=pepper)


def tls_context(settings: SiteConfig) -> ssl.SSLContext | None:
    """The HTTPS context from [tls] when ``[web] tls`` is on, else None."""
    if not settings.web.tls:
        return None
    return server_context(
        settings.resolve_path(settings.tls.cert_file),
        settings.resolve_path(settings.tls.key_file),
        hint="fix [tls] cert_file/key_file, or set [web] tls = false behind a TLS proxy",
    )


async def serve(
    services: Services,
    *,
    listen: str,
    ready: Callable[[str], None],
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set (without one: until SIGTERM/SIGINT); call ``ready(url)``
    once listening.
    """
    host, port = parse_endpoint(listen)
    sock = bind_socket(host, port)
    bound = sock.getsockname()[1]
    context = tls_context(services.settings)
    runner = web.AppRunner(build_app(services, port=bound), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.SockSite(runner, sock, ssl_context=context).start()
        if stop is None:  # signal handlers can only be set in the main thread
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
        name = f"[{host}]" if ":" in host else host
        ready(f"{'https' if context else 'http'}://{name}:{bound}")
        await stop.wait()
    finally:
        await runner.cleanup()
