"""The self-service portal: the owner's side of ``mailprov serve`` as web pages.

Server-rendered pages (Jinja2 templates in ``templates/portal/``) in English and
Russian, working without JavaScript; one small script (``static/portal.js``) checks
an address while it is typed. Every step calls the JSON API's own operations
(:func:`~mailprov.web.portal.core.invoke`), so the portal and ``/api/v1`` cannot
disagree. :mod:`~mailprov.web.portal.core` says how to add a page.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from mailprov.errors import MailprovError
from mailprov.web.app import SERVICES
from mailprov.web.errors import status_of
from mailprov.web.portal.core import (
    PORTAL,
    ROUTES,
    STATIC,
    Portal,
    Visit,
    error_document,
    error_page,
)
from mailprov.web.portal.texts import explain

log = logging.getLogger(__name__)

_HTTP_CODES = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}


def _load_pages() -> None:
    """Import the modules that register pages and forms."""
    from mailprov.web.portal import (  # noqa: PLC0415  (lazy: they register on import)
        account,  # noqa: F401
        application,  # noqa: F401
        domain,  # noqa: F401
        filters,  # noqa: F401
        home,  # noqa: F401
        identity,  # noqa: F401
        recovery,  # noqa: F401
        reset,  # noqa: F401
        spam,  # noqa: F401
        twofactor,  # noqa: F401
    )


@web.middleware
async def _pages(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The portal's error boundary: outside /api, every error is a page in the visitor's words."""
    if request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        problem = explain({"code": _HTTP_CODES.get(exc.status, "error")})
        return error_page(Visit.of(request), problem, exc.status)
    except MailprovError as exc:
        return error_page(Visit.of(request), explain(error_document(exc)), status_of(type(exc)))
    except Exception:
        log.exception("unexpected fault in %s %s", request.method, request.path)
        return error_page(Visit.of(request), explain({"code": "internal"}), 500)


def setup(app: web.Application) -> None:
    """Mount the portal's pages, forms and static files on ``app`` (before it starts)."""
    _load_pages()
    app[PORTAL] = Portal(app[SERVICES])
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    app.router.add_static("/static", STATIC)
    app.middlewares.append(_pages)
