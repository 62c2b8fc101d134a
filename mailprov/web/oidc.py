"""Operations: identity by redirect — proving who you are by signing in at the identity
provider (OpenID Connect, authorization code flow with PKCE), as real portals do.

Two steps, both public:

* **start** — ``POST /api/v1/requests/{number}/identity/oidc`` with the request's handle
  (the ``X-Request-Handle`` header, or a ``handle`` field of an HTML form: never the
  URL). It sets the browser-binding cookie (``mailprov_oidc``: HttpOnly, SameSite=Lax
  so that it comes back with the provider's redirect, Secure over HTTPS) and answers
  the provider's authorization URL: 303 to it for a form or a browser, JSON otherwise.
* **callback** — ``GET /api/v1/identity/oidc/callback?code=…&state=…`` (or
  ``?error=…&state=…``), the ``redirect_url`` registered at the provider. The ID token
  goes through the identity gate's own checks; success moves the request to
  identity-verified and sends the code, like a token given to ``…/identity/token``.
  A browser is then sent (303) to ``[oidc] return_url`` with ``identity=verified`` or
  ``error=CODE`` (and ``idg=IDG-…``); a client that asks for JSON gets the request.
  A callback whose sign-in this browser cannot use (unknown, another browser's) has no
  request to go back to: it answers the error document.
"""

from __future__ import annotations

from typing import Any

from mailprov import errors as e
from mailprov.errors import MailprovError
from mailprov.model import Secret, iso
from mailprov.services import oidc, requester
from mailprov.services.request_notices import sender_for
from mailprov.web import reset_redirect
from mailprov.web.api import API, HANDLE_HEADER, Call, Cookie, wants_html
from mailprov.web.recovery import RESET_STARTED
from mailprov.web.requests import ITEM, TAG, _actor, _answer, _done

#: The browser-binding cookie, sent back only to the API (start and callback).
COOKIE = "mailprov_oidc"
COOKIE_PATH = "/api/v1"
CALLBACK = "/api/v1/identity/oidc/callback"

_GATE = (
    e.TokenRejected,
    e.TokenTimeInvalid,
    e.TokenWrongRequest,
    e.TokenReplayed,
    e.IdentityNotVerified,
    e.NameMismatch,
)
_SENDING = (e.RateLimited, e.ConfirmationLocked, e.RecoveryUnreachable, e.TemporaryFailure)


def _binding(call: Call) -> Secret | None:
    raw = call.request.cookies.get(COOKIE)
    return Secret(raw) if raw else None


@API.operation(
    "POST",
    ITEM + "/identity/oidc",
    summary="Prove your identity by signing in at the identity provider: start",
    tag=TAG,
    stages=None,
    handle=True,
    form=True,
    redirect=True,
    body={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "handle": {
                "type": "string",
                "maxLength": 128,
                "writeOnly": True,
                "description": f"The request's handle, for HTML forms (else {HANDLE_HEADER}).",
            }
        },
    },
    answer={
        "type": "object",
        "required": ["request_id", "authorization_url", "expires_at"],
        "properties": {
            "request_id": {"type": "string"},
            "authorization_url": {
                "type": "string",
                "description": "Send the browser here (the provider's sign-in page).",
            },
            "expires_at": {"type": "string", "description": "Finish the sign-in before this."},
        },
    },
    errors=(
        e.RequestUnknown,
        e.RequestExpired,
        e.WrongRequestState,
        e.OidcUnavailable,
    ),
)
def start_identity_redirect(call: Call) -> dict[str, Any]:
    """Start a sign-in at the site's OpenID Connect provider for an open request.

    A form post (or a browser asking for HTML) is sent straight to the provider (303);
    a JSON client gets the URL. The answer sets the browser-binding cookie: the callback
    is accepted only in the browser that started it, once, within ``[oidc]
    state_ttl_seconds``. A newer start replaces the request's earlier ones.
    """
    services = call.services
    raw = call.request.headers.get(HANDLE_HEADER) or call.body.get("handle")
    number = requester.find(
        services.store,
        services.pepper,
        call.path["number"],
        Secret(raw) if raw is not None else None,
    )
    started = oidc.start(
        services.store,
        services.settings,
        services.pepper,
        number,
        binding=_binding(call),
        send=sender_for(services.settings),
        actor=_actor(call),
    )
    call.cookies.append(
        Cookie(
            COOKIE,
            started.binding,
            path=COOKIE_PATH,
            max_age=services.settings.oidc.state_ttl_seconds,
            samesite="Lax",
        )
    )
    if wants_html(call):
        call.redirect = started.authorization_url
    return {
        "request_id": started.request_id,
        "authorization_url": started.authorization_url,
        "expires_at": iso(started.expires_at),
    }


@API.operation(
    "GET",
    CALLBACK,
    summary="Prove your identity by signing in at the identity provider: the provider's return",
    tag=TAG,
    stages=None,
    redirect=True,
    query={
        "state": {"type": "string", "maxLength": 512},
        "code": {"type": "string", "maxLength": 4096},
        "error": {"type": "string", "maxLength": 512},
        "error_description": {"type": "string", "maxLength": 4096},
    },
    optional=frozenset({"code", "error", "error_description"}),
    answer={
        "anyOf": [
            _answer(
                {"return_url": {"type": "string", "description": "Where a browser is sent."}},
                "return_url",
            ),
            {
                "allOf": [
                    RESET_STARTED,
                    {
                        "type": "object",
                        "required": ["return_url"],
                        "properties": {"return_url": {"type": "string"}},
                    },
                ],
                "description": "A password reset's sign-in: the code went to the contacts.",
            },
        ]
    },
    errors=(
        e.OidcStateInvalid,
        e.OidcStateExpired,
        e.OidcStateUsed,
        e.OidcProviderRefused,
        e.OidcUnavailable,
        e.RequestExpired,
        e.WrongRequestState,
        e.ConfigInvalid,
        e.MalformedRequest,
        *_GATE,
        *_SENDING,
        e.ResetEnded,
        e.ResetRouteDisabled,
        e.IdentityMismatch,
    ),
)
def finish_identity_redirect(call: Call) -> dict[str, Any]:
    """The provider sends the browser here with ``code`` and ``state`` (or ``error``).

    The sign-in must be this browser's, live and unused. The ID token is checked by the
    identity gate exactly as ``POST …/identity/token`` checks a token (issuer, audience,
    nonce, lifetime, replay, trust framework and assurance level, verified claims, the
    requested name), with the same IDG codes; then a code goes to the recovery contact.
    A browser goes on to ``[oidc] return_url`` (``?identity=verified`` or
    ``?error=CODE&idg=…``); a client asking for JSON gets the request or the error.

    A password reset's sign-in (``POST /api/v1/password-reset/identity/oidc``) comes back
    here too: its browser goes on to the portal's ``/password-reset/identity``, a JSON
    client gets the reset's answer.
    """
    services = call.services
    query = call.query
    if "state" not in query:
        raise e.MalformedRequest(
            "the query parameter 'state' is missing",
            hint="this is where the identity provider sends you back, with code and state",
        )
    accept = call.request.headers.get("Accept", "")
    browser = wants_html(call) or "application/json" not in accept
    done = reset_redirect.finish_if_reset(call, browser=browser)
    if done is not None:  # a password reset's sign-in (web/reset_redirect.py)
        return done
    try:
        request = oidc.finish(
            services.store,
            services.settings,
            services.pepper,
            state=query.get("state"),
            code=Secret(query["code"]) if "code" in query else None,
            error=query.get("error"),
            binding=_binding(call),
            send=sender_for(services.settings),
            actor=_actor(call),
        )
    except MailprovError as exc:
        if not browser or exc.request_id is None:
            raise
        call.redirect = oidc.return_location(
            services.settings, exc.request_id, error=exc.code, idg=exc.details.get("idg")
        )
        return exc.to_json()
    location = oidc.return_location(services.settings, request.id, error=None)
    if browser:
        call.redirect = location
    return {**_done(request), "return_url": location}
