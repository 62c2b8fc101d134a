"""Operations: password reset by identity, signing in at the identity provider (OpenID Connect).

The redirect form of ``POST /api/v1/password-reset`` (``via: identity``) and ``POST
/api/v1/password-reset/identity``, for browsers (the portal's "Forgot password?" page):

* **start** — ``POST /api/v1/password-reset/identity/oidc`` ``{address}``: the same answer
  for any address (the reset's), plus the provider's authorization URL — 303 to it for a
  form or a browser. It sets the browser-binding cookie ``mailprov_reset_oidc`` (HttpOnly,
  SameSite=Lax so that it comes back with the provider's redirect, path ``/api/v1``).
* **callback** — the provider comes back to ``[oidc] redirect_url``, the same callback as
  identity by redirect for a request (``web/oidc.py``); a callback whose state this
  browser's reset binding seals is a reset's (:func:`finish_if_reset`). The ID token goes
  through the reset's identity checks; then the code goes to the verified recovery contacts.
  A browser is sent (303) to the portal's :data:`RETURN` with ``identity=verified`` or
  ``error=CODE`` (and ``idg=IDG-…``); a JSON client gets the reset's answer or the error.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from mailprov import errors as e
from mailprov.errors import MailprovError
from mailprov.model import Secret
from mailprov.services import reset_redirect
from mailprov.web.api import API, Call, Cookie, wants_html
from mailprov.web.recovery import RESET_STARTED, send_codes, started_answer
from mailprov.web.session import ADDRESS

#: The reset's browser-binding cookie, sent back only to the API (start and callback).
COOKIE = "mailprov_reset_oidc"
COOKIE_PATH = "/api/v1"
#: The portal page a browser lands on after the provider's sign-in for a reset.
RETURN = "/password-reset/identity"


def _binding(call: Call) -> Secret | None:
    raw = call.request.cookies.get(COOKIE)
    return Secret(raw) if raw else None


@API.operation(
    "POST",
    "/api/v1/password-reset/identity/oidc",
    summary="Reset by identity, signing in at the identity provider: start "
    "(the same answer whether the address exists or not)",
    tag="reset",
    stages=None,
    form=True,
    redirect=True,
    body={
        "type": "object",
        "required": ["address"],
        "additionalProperties": False,
        "properties": {"address": ADDRESS},
    },
    answer={
        "allOf": [
            RESET_STARTED,
            {
                "type": "object",
                "required": ["authorization_url"],
                "properties": {
                    "authorization_url": {
                        "type": "string",
                        "description": "Send the browser here (the provider's sign-in page).",
                    }
                },
            },
        ]
    },
    status=202,
    errors=(e.ResetRouteDisabled, e.InvalidAddress, e.RateLimited, e.OidcUnavailable),
)
def start_reset_redirect(call: Call) -> dict[str, Any]:
    """Start a reset by identity and a sign-in at the site's OpenID Connect provider for it.

    A form post (or a browser asking for HTML) is sent straight to the provider (303); a
    JSON client gets the URL. The binding cookie makes the callback work only in this
    browser, once, within ``[oidc] state_ttl_seconds`` (and the reset's own lifetime).
    """
    services = call.services
    started = reset_redirect.start(
        services.store,
        services.settings,
        services.pepper,
        call.body["address"],
        client=call.client,
        now=call.now,
    )
    call.cookies.append(
        Cookie(
            COOKIE,
            started.binding,
            path=COOKIE_PATH,
            max_age=max(1, started.expires_at - call.now),
            samesite="Lax",
        )
    )
    if wants_html(call):
        call.redirect = started.authorization_url
    return {**started_answer(started.started), "authorization_url": started.authorization_url}


def return_location(*, error: str | None = None, idg: object = None) -> str:
    """Where a browser goes after a reset's callback (the portal's page)."""
    if not error:
        return f"{RETURN}?identity=verified"
    extra = f"&idg={quote(idg)}" if isinstance(idg, str) else ""
    return f"{RETURN}?error={quote(error)}{extra}"


def finish_if_reset(call: Call, *, browser: bool) -> dict[str, Any] | None:
    """The callback, if its state is the one this browser's reset binding seals; else None.

    Raises:
        MailprovError: for a JSON client, what the reset's identity step refused.
    """
    services = call.services
    query = call.query
    binding = _binding(call)
    if reset_redirect.binding_address(services.pepper, query.get("state"), binding) is None:
        return None
    call.cookies.append(Cookie(COOKIE, "", path=COOKIE_PATH))  # one sign-in, one callback
    try:
        _, found = reset_redirect.finish(
            services.store,
            services.settings,
            services.pepper,
            state=query.get("state"),
            code=Secret(query["code"]) if "code" in query else None,
            error=query.get("error"),
            binding=binding,
            now=call.now,
        )
        send_codes(services.settings, found)
    except MailprovError as exc:
        if not browser:
            raise
        call.redirect = return_location(error=exc.code, idg=exc.details.get("idg"))
        return exc.to_json()
    location = return_location()
    if browser:
        call.redirect = location
    return {**started_answer(found), "return_url": location}
