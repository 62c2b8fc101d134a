"""Proving who you are: the ways the application page offers, and the TEST identity provider.

:func:`identity_routes` lists the buttons of the application's identity step. A
real identity provider (OpenID Connect, authorization code flow with PKCE) adds
its route here: a link — a GET, so the page's ``form-action 'self'`` does not stop
the redirect — to the page that sends the person to the provider; its callback
then calls the ``prove_with_token`` operation like the forms below. The pasted
token and the certificate stay on the page as the other ways.

``[web] test_issuer`` (demos and test rigs only) adds the TEST identity provider:
a page that plays the provider, signs a token with the test issuer's key for the
application's nonce with whatever name and assurance level is typed in, and
proves it through the same operation as any other token. It is refused unless the
test issuer is trusted (``mailprov identity trust add-issuer``) like any issuer.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mailprov.errors import RequestUnknown
from mailprov.services import testissuer
from mailprov.web.portal.core import Outcome, Visit, form, invoke, page, redirect, render
from mailprov.web.portal.i18n import N_
from mailprov.web.portal.texts import explain

if TYPE_CHECKING:
    from multidict import MultiDictProxy

    from mailprov.settings import SiteConfig

TEST_PROVIDER = "/identity/test-provider"
#: The link that sends the browser to the OpenID Connect provider ([oidc]).
PROVIDER = "/application/identity-provider"
#: Where the provider's return lands ([oidc] return_url's default, "/requests/{number}").
RETURN = "/requests/{number}"
_CODE = re.compile(r"[a-z0-9-]{1,64}")
_IDG = re.compile(r"IDG-[A-Z][0-9]{2}")
#: The test provider's choice of assurance levels (NIST 800-63A): verified, and not enough.
TEST_LEVELS = ("ial2", "ial1")


@dataclass(frozen=True)
class IdentityRoute:
    """One way to prove identity offered as a button: its words (untranslated) and its link."""

    key: str
    label: str
    href: str
    note: str


def identity_routes(settings: SiteConfig) -> list[IdentityRoute]:
    """The identity providers the application page offers, in order."""
    routes: list[IdentityRoute] = []
    if settings.oidc.issuer:
        routes.append(
            IdentityRoute(
                "oidc",
                N_("Sign in with your identity provider"),
                PROVIDER,
                N_("You sign in on the provider's site; it sends your verified data back here."),
            )
        )
    if settings.web.test_issuer:
        routes.append(
            IdentityRoute(
                "test",
                N_("Sign in with the TEST identity provider"),
                TEST_PROVIDER,
                N_("For demonstrations only: it confirms whatever identity you type in."),
            )
        )
    return routes


def _open_application(visit: Visit) -> tuple[str, Any]:
    if not visit.services.settings.web.test_issuer:
        raise web.HTTPNotFound
    followed = visit.application()
    if followed is None:
        raise RequestUnknown
    return followed


@page(TEST_PROVIDER)
async def test_provider_page(visit: Visit) -> web.StreamResponse:
    """The TEST identity provider's sign-in page (it asks who you want to be)."""
    number, _ = _open_application(visit)
    return render(visit, "test_provider.html", number=number, levels=TEST_LEVELS)


@form(TEST_PROVIDER, back="/application")
async def test_provider_send(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Sign a token for the application's nonce and prove it, as a provider's callback would."""
    number, handle = _open_application(visit)
    answer, _ = await invoke(visit, "show_request", path={"number": number}, handle=handle)
    nonce = answer["request"].get("nonce") or ""
    claims = {
        "given_name": str(data.get("given_name", "")).strip()[:100],
        "family_name": str(data.get("family_name", "")).strip()[:100],
        "birthdate": str(data.get("birthdate", "")).strip()[:10] or "1990-01-01",
    }
    level = str(data.get("level", ""))
    subject = "test-" + hashlib.sha256(repr(sorted(claims.items())).encode()).hexdigest()[:16]
    settings = visit.services.settings
    token = await asyncio.to_thread(
        testissuer.issue_token,
        settings.resolve_path(settings.web.test_issuer),
        nonce=nonce,
        sub=subject,
        level=level if level in TEST_LEVELS else TEST_LEVELS[-1],
        claims=claims,
        now=visit.now,
    )
    await invoke(
        visit, "prove_with_token", {"token": token}, path={"number": number}, handle=handle
    )
    return Outcome("/application")


# -- OpenID Connect: the API's identity by redirect, started from the application page ------


@page(PROVIDER)
async def provider_start(visit: Visit) -> web.StreamResponse:
    """Start the API's identity by redirect for the followed application; off to the provider.

    A link (GET), so the page's ``form-action 'self'`` does not stop the redirect; the
    handle comes from this browser's application cookie (SameSite=Strict: another site's
    link carries none and starts nothing).
    """
    followed = visit.application()
    if followed is None:
        raise RequestUnknown
    number, handle = followed
    answer, _ = await invoke(
        visit,
        "start_identity_redirect",
        {"handle": handle.reveal()},
        path={"number": number},
    )
    return redirect(visit, Outcome(str(answer["authorization_url"])))


@page(RETURN)
async def provider_return(visit: Visit) -> web.StreamResponse:
    """Back from the provider: what happened, and the way on to the application.

    The browser comes here from another site, so its SameSite=Strict cookies stay behind
    on this first request; the page says what the provider's sign-in gave and links to
    the application page, where they come along again.
    """
    number = visit.request.match_info.get("number", "")[:16]
    query = visit.request.query
    error = query.get("error", "")
    idg = query.get("idg", "")
    problem = None
    if error:
        problem = explain(
            {
                "code": error if _CODE.fullmatch(error) else "error",
                "idg": idg if _IDG.fullmatch(idg) else None,
                "request_id": number,
            }
        )
    verified = query.get("identity") == "verified" and problem is None
    return render(visit, "provider_return.html", number=number, verified=verified, problem=problem)
