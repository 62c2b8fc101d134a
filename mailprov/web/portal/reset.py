"""Pages: "Forgot password?" — a password reset without the old password.

Each step calls the API's own operations (``web/recovery.py``, ``web/reset_redirect.py``):

1. ``/password-reset``: the address and the route — a code to the recovery contacts
   (``start_reset``), or a sign-in at the identity provider (the next page's link, a GET
   so that the page's ``form-action 'self'`` does not stop the redirect, starts
   ``start_reset_redirect``; the provider comes back through the API's callback to
   ``/password-reset/identity``, which leads on to the code).
2. ``/password-reset/code``: the code sent to the contacts (``confirm_reset``).
3. ``/password-reset/password``: the new password, twice (``reset_password``); then the
   sign-in page.

The same pages, words and timing for an address that is no mailbox here: the API's
answers are the same. The reset under way (its address, then the grant) is kept in
this process's memory, under an HMAC of a random HttpOnly SameSite=Strict cookie
(``mailprov_reset``, path ``/password-reset``): the grant is never in a cookie, a URL or
a page. After a restart of ``serve`` the person starts again.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mailprov.errors import MailprovError
from mailprov.rules.addresses import parse_address
from mailprov.web.api import Cookie
from mailprov.web.portal.core import (
    Outcome,
    Visit,
    error_document,
    flash,
    form,
    invoke,
    memory_key,
    page,
    redirect,
    render,
)
from mailprov.web.portal.texts import Explanation, explain

if TYPE_CHECKING:
    from multidict import MultiDictProxy

START = "/password-reset"
CODE = "/password-reset/code"
CHOOSE = "/password-reset/password"  # choose the new one
PROVIDER = "/password-reset/identity-provider"
#: Where the API's callback sends the browser back (``web/reset_redirect.py`` RETURN).
RETURN = "/password-reset/identity"
COOKIE = "mailprov_reset"
#: How long a reset under way is remembered (a reset by identity waits up to 30 minutes).
KEEP_SECONDS = 1800
_CODE = re.compile(r"[a-z0-9-]{1,64}")
_IDG = re.compile(r"IDG-[A-Z][0-9]{2}")
#: Refusals whose general words speak of an application: the reset's own words instead.
RESET_WORDS = {
    "code-used": "reset-code-used",
    "request-locked": "reset-code-locked",
    "oidc-state-invalid": "reset-sign-in-lost",
    "oidc-state-expired": "reset-sign-in-lost",
    "oidc-state-used": "reset-sign-in-lost",
    "not-found": "reset-gone",
}
#: Refusals of the new password, shown next to its field.
PASSWORD_ERRORS = frozenset({"password-policy", "password-too-long", "passwords-differ"})


def reset_explained(error: dict[str, Any] | None) -> Explanation | None:
    """An error of a reset step in the reset's words (its IDG code still shown)."""
    if not isinstance(error, dict):
        return None
    code = str(error.get("code") or "error")
    if code not in RESET_WORDS:
        return explain(error)
    details = {k: v for k, v in dict(error.get("details") or {}).items() if k != "idg"}
    words = explain({**error, "code": RESET_WORDS[code], "idg": None, "details": details})
    return dataclasses.replace(words, code=code, idg=error.get("idg") or words.idg)


# -- the reset under way, in this process -----------------------------------------------


def _current(visit: Visit) -> dict[str, Any] | None:
    raw = visit.request.cookies.get(COOKIE, "")
    if not 32 <= len(raw) <= 64:
        return None
    portal = visit.portal
    portal.prune(time.monotonic())
    entry = portal.resets.get(memory_key(visit, "reset", raw))
    return entry[1] if entry is not None else None


def _begin(visit: Visit, address: str, via: str) -> None:
    """Remember a new reset of ``address`` for this browser (a new cookie each time)."""
    raw = secrets.token_urlsafe(32)
    until = time.monotonic() + KEEP_SECONDS
    visit.portal.resets[memory_key(visit, "reset", raw)] = (until, {"address": address, "via": via})
    visit.api_cookies.append(Cookie(COOKIE, raw, path=START, max_age=KEEP_SECONDS))


def _end(visit: Visit) -> None:
    raw = visit.request.cookies.get(COOKIE, "")
    visit.portal.resets.pop(memory_key(visit, "reset", raw), None)
    visit.api_cookies.append(Cookie(COOKIE, "", path=START, max_age=0))


def _lost(visit: Visit) -> web.Response:
    """Back to the start: with words when this browser had a reset that is gone (it took
    longer than 30 minutes, or the server restarted), silently for a fresh visit."""
    cookies: tuple[tuple[str, str | None], ...] = ()
    if visit.request.cookies.get(COOKIE):
        cookies = (flash(visit, error={"code": "not-found"}),)
    return redirect(visit, Outcome(START, cookies))


def _routes(visit: Visit) -> list[str]:
    settings = visit.services.settings
    allowed: list[str] = list(settings.passwords.reset_via)
    if not settings.oidc.issuer and "identity" in allowed:
        allowed.remove("identity")  # by token only: for API clients, not a page
    return allowed


def _page(visit: Visit, template: str, **context: Any) -> web.Response:
    return render(visit, template, error=reset_explained(visit.flash.get("error")), **context)


# -- 1. the address and the route ------------------------------------------------------


@page(START)
async def start_page(visit: Visit) -> web.StreamResponse:
    """The address and the way to prove it is yours; a refusal from the provider's return."""
    routes = _routes(visit)
    if not routes:
        return render(visit, "reset_start.html", routes=routes, form={}, error=None)
    values = visit.flash_values()
    return _page(visit, "reset_start.html", routes=routes, form=values)


@form(START, back=START, keep=("address", "via"))
async def start_send(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Start a reset by code (the API sends it), or go on to the identity provider's link."""
    typed = str(data.get("address", "")).strip()[:254]
    address = str(parse_address(typed))  # a malformed address: refused here, as by the API
    if str(data.get("via", "")) == "identity" and "identity" in _routes(visit):
        # The API's start (its limits, its answer) runs when the provider's link is followed.
        _begin(visit, address, "identity")
        return Outcome(PROVIDER)
    await invoke(visit, "start_reset", {"address": address, "via": "contact"})
    _begin(visit, address, "contact")
    return Outcome(CODE)


@page(PROVIDER)
async def provider_page(visit: Visit) -> web.StreamResponse:
    """What happens at the identity provider, and the link that goes there."""
    current = _current(visit)
    if current is None:
        return _lost(visit)
    return _page(visit, "reset_provider.html", address=current["address"])


@page(PROVIDER + "/start")
async def provider_start(visit: Visit) -> web.StreamResponse:
    """Start the API's reset by redirect for this browser's reset; off to the provider.

    A link (GET); this browser's reset cookie (SameSite=Strict) names the address: another
    site's link carries none and starts nothing.
    """
    current = _current(visit)
    if current is None:
        return _lost(visit)
    try:
        answer, _ = await invoke(visit, "start_reset_redirect", {"address": current["address"]})
    except MailprovError as exc:
        return redirect(visit, Outcome(PROVIDER, (flash(visit, error=error_document(exc)),)))
    return redirect(visit, Outcome(str(answer["authorization_url"])))


@page(RETURN)
async def provider_return(visit: Visit) -> web.StreamResponse:
    """Back from the provider: what its sign-in gave, and the way on to the code.

    The browser comes from another site, so the reset cookie (SameSite=Strict) stays
    behind on this first request; the link to the code page brings it along again.
    """
    query = visit.request.query
    error = query.get("error", "")
    idg = query.get("idg", "")
    problem = None
    if error:
        problem = reset_explained(
            {
                "code": error if _CODE.fullmatch(error) else "error",
                "idg": idg if _IDG.fullmatch(idg) else None,
            }
        )
    verified = query.get("identity") == "verified" and problem is None
    return render(visit, "reset_return.html", verified=verified, problem=problem, error=None)


# -- 2. the code -----------------------------------------------------------------------------


@page(CODE)
async def code_page(visit: Visit) -> web.StreamResponse:
    """Type the code sent to the recovery contacts (the same page for any address)."""
    current = _current(visit)
    if current is None:
        return _lost(visit)
    return _page(visit, "reset_code.html", address=current["address"], via=current["via"])


@form(CODE, back=CODE)
async def code_send(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Give the code through the API; its grant stays in this process, for the next page."""
    current = _current(visit)
    if current is None:
        return Outcome(START, (flash(visit, error={"code": "not-found"}),))
    code = "".join(str(data.get("code", "")).split())
    answer, _ = await invoke(visit, "confirm_reset", {"address": current["address"], "code": code})
    current["grant"] = str(answer["grant"])
    return Outcome(CHOOSE)


# -- 3. the new password -------------------------------------------------------------------


@page(CHOOSE)
async def password_page(visit: Visit) -> web.StreamResponse:
    """The new password, typed twice; a refusal is shown next to it."""
    current = _current(visit)
    if current is None:
        return _lost(visit)
    if "grant" not in current:
        raise web.HTTPSeeOther(CODE)
    error = reset_explained(visit.flash.get("error"))
    field_error = error if error is not None and error.code in PASSWORD_ERRORS else None
    return render(
        visit, "reset_password.html", address=current["address"], error=error, field=field_error
    )


@form(CHOOSE, back=CHOOSE)
async def password_send(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Set the new password with the grant (the API's reset); then sign in with it."""
    current = _current(visit)
    if current is None or "grant" not in current:
        return Outcome(START, (flash(visit, error={"code": "not-found"}),))
    new, repeat = str(data.get("new", "")), str(data.get("repeat", ""))
    if new != repeat:
        return Outcome(CHOOSE, (flash(visit, error={"code": "passwords-differ"}),))
    answer, _ = await invoke(visit, "reset_password", {"grant": current["grant"], "new": new})
    _end(visit)
    done = flash(visit, notice="password-reset", values={"address": answer["address"]})
    return Outcome("/signin", (done,))
