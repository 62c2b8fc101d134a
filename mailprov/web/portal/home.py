"""Pages: the home page, and the language switch."""

from __future__ import annotations

from aiohttp import web

from mailprov.web.app import secure_request
from mailprov.web.portal import i18n
from mailprov.web.portal.core import Visit, local_path, page, render


@page("/")
async def home_page(visit: Visit) -> web.StreamResponse:
    """Three doors: apply for a mailbox, follow an application, sign in."""
    return render(visit, "home.html", notice=visit.flash.get("notice"))


@page("/language")
async def language_switch(visit: Visit) -> web.StreamResponse:
    """Remember the chosen language (a cookie) and go back to the page it was chosen on."""
    chosen = visit.request.query.get("to", "")
    back = local_path(visit.request.query.get("next", "/"))
    response = web.Response(status=303, headers={"Location": back})
    if chosen in i18n.LANGUAGES:
        response.set_cookie(
            i18n.LANG_COOKIE,
            chosen,
            max_age=365 * 86400,
            httponly=True,
            secure=secure_request(visit.request, visit.services),
            samesite="Lax",
            path="/",
        )
    return response
