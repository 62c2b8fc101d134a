"""The aiohttp application of ``mailprov serve``: the gate, the dispatcher, the error boundary.

Every request passes, in order:

1. **Host** — only the names this service really is (its listen address, the
   loopback names, ``[web] hosts``) are answered; anything else gets 421, which
   defeats DNS rebinding (the same rule as the relay's API, ``relay/gate.py``).
2. **Origin** — a write whose ``Origin`` is not this service is refused (403).
3. **Body** — an operation with a body needs ``Content-Type: application/json``
   (or, where declared for browser forms, ``application/x-www-form-urlencoded``)
   (415), valid JSON (400) that its declared schema accepts (400, naming the field,
   never echoing the value).
4. **Session** — from the ``mailprov_session`` cookie or ``Authorization: Bearer``;
   the operation's declared stages decide (401 without a live session, 403 at the
   wrong stage). A write authenticated by the cookie also needs the session's CSRF
   token in ``X-CSRF-Token`` (403) — a bearer token cannot be sent by another site.

Errors answer with the CLI's error document and the status of
:mod:`mailprov.web.errors`. Every answer says ``Cache-Control: no-store`` (a
password or code shown once must not live on in a cache) and carries a strict
Content-Security-Policy, ``nosniff``, ``Referrer-Policy: no-referrer``, and HSTS
when served over HTTPS.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web
from jsonschema import Draft202012Validator

from mailprov.errors import (
    AdminTokenRefused,
    CsrfRefused,
    MailprovError,
    MalformedRequest,
    NotSignedIn,
    SessionStageRefused,
)
from mailprov.model import Secret
from mailprov.relay.gate import allowed_hosts
from mailprov.services import owner, tokens
from mailprov.settings.checks import parse_endpoint
from mailprov.web.api import (
    API,
    DOMAIN_HANDLE_HEADER,
    FORM,
    HANDLE_HEADER,
    SESSION_COOKIE,
    Call,
    Operation,
)
from mailprov.web.errors import status_of

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig
    from mailprov.store import Store

log = logging.getLogger(__name__)

#: Largest request body (a Sieve script is the biggest thing a client sends).
MAX_BODY = 256 * 1024
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def _load_operations() -> None:
    """Import the modules that declare operations (each registers itself on API)."""
    from mailprov.web import (  # noqa: PLC0415  (lazy: registers on import, after API exists)
        admin,  # noqa: F401
        filters,  # noqa: F401
        oidc,  # noqa: F401
        ownership,  # noqa: F401
        recovery,  # noqa: F401
        requests,  # noqa: F401
        reset_redirect,  # noqa: F401
        security_events,  # noqa: F401
        session,  # noqa: F401
        spam,  # noqa: F401
        twofactor,  # noqa: F401
    )


@dataclass
class Services:
    """What handlers reach: settings, the store, the site pepper, and the clock."""

    settings: SiteConfig
    store: Store
    pepper: bytes
    clock: Callable[[], float] = time.time
    #: Host header values answered (filled by build_app from the settings).
    hosts: frozenset[str] = field(default_factory=frozenset)

    def now(self) -> int:
        """The time now, in Unix seconds."""
        return int(self.clock())


def error_response(exc: MailprovError) -> web.Response:
    """The JSON error document of ``exc`` with its HTTP status (and Retry-After when it says)."""
    response = web.json_response(exc.to_json(), status=status_of(type(exc)), dumps=_dumps)
    retry_after = exc.details.get("retry_after")
    if isinstance(retry_after, int) and retry_after > 0:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _gate_error(status: int, code: str, message: str) -> web.Response:
    body = {"error": {"code": code, "message": message, "exit_status": 2}}
    return web.json_response(body, status=status, dumps=_dumps)


def client_address(request: web.Request, trusted: frozenset[str]) -> str:
    """The client's IP: the peer, or X-Forwarded-For's last hop when the peer is a trusted proxy."""
    peer = request.remote or ""
    forwarded = request.headers.get("X-Forwarded-For", "")
    if peer in trusted and forwarded:
        last = forwarded.split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            return peer
    return peer


def _origin_ok(origin: str, hosts: frozenset[str]) -> bool:
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    return (
        parts.scheme in {"http", "https"}
        and not parts.path
        and "@" not in parts.netloc
        and parts.netloc.lower() in hosts
    )


@web.middleware
async def _guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    services: Services = request.app[SERVICES]
    host = request.headers.get("Host", "").strip().lower()
    if host not in services.hosts:
        response: web.StreamResponse = _gate_error(
            421, "host-refused", "this service does not answer for that Host header"
        )
    elif (
        request.method in WRITE_METHODS
        and "Origin" in request.headers
        and not _origin_ok(request.headers["Origin"], services.hosts)
    ):
        response = _gate_error(403, "origin-refused", "cross-site requests are refused")
    else:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:  # redirects pass through
                raise
            response = _gate_error(exc.status, _http_code(exc.status), exc.reason)
        except MailprovError as exc:
            response = error_response(exc)
        except Exception:
            log.exception("unexpected fault in %s %s", request.method, request.path)
            response = _gate_error(
                500, "internal", "an unexpected fault; it is logged on the server, retry later"
            )
    _secure_headers(response, tls=services.settings.web.tls)
    return response


def _http_code(status: int) -> str:
    return {
        404: "not-found",
        405: "method-not-allowed",
        413: "body-too-large",
    }.get(status, "http-error")


def _secure_headers(response: web.StreamResponse, *, tls: bool) -> None:
    headers = response.headers
    headers["Cache-Control"] = "no-store"
    headers.setdefault("Content-Security-Policy", API_CSP)
    headers["X-Content-Type-Options"] = "nosniff"
    # Pages may say "same-origin": with "no-referrer" browsers send "Origin: null" with a
    # form, which the Origin check above rightly refuses.
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    if tls:
        headers["Strict-Transport-Security"] = "max-age=31536000"


def session_token(request: web.Request) -> tuple[Secret | None, bool]:
    """The session token and whether it came from the cookie (so CSRF applies)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return Secret(value.strip()), False
    cookie = request.cookies.get(SESSION_COOKIE)
    return (Secret(cookie), True) if cookie else (None, False)


async def _read_body(request: web.Request, op: Operation) -> dict[str, Any]:
    if op.body is None:
        return {}
    kind = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    body: Any
    if op.form and kind == FORM:
        try:
            fields = await request.post()
        except ValueError:  # UnicodeDecodeError included
            raise MalformedRequest("the form is not valid UTF-8", hint="send UTF-8") from None
        body = {}
        for name, value in fields.items():
            body.setdefault(name, value)  # a field given twice: the first counts
    elif kind != "application/json":
        raise web.HTTPUnsupportedMediaType(
            reason=f"{op.method} {op.path} needs 'Content-Type: application/json'"
        )
    else:
        try:
            body = json.loads(await request.read() or b"null")
        except (ValueError, UnicodeDecodeError):
            raise MalformedRequest(
                "the request body is not valid JSON", hint="send a JSON object"
            ) from None
    return check_body(op, body)


def check_body(op: Operation, body: object) -> dict[str, Any]:
    """``body`` if the operation's declared schema accepts it (the API's and the portal's check).

    Raises:
        MalformedRequest: naming the first field refused, never echoing its value.
    """
    if op.body is None:
        return {}
    validator = Draft202012Validator(op.body)
    error = next(iter(sorted(validator.iter_errors(body), key=lambda e: list(e.path))), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the body"
        raise MalformedRequest(
            f"{where}: {_schema_complaint(error.validator)}",
            hint=f"see the schema of {op.method} {op.path} in /api/v1/openapi.json",
            field=where,
        )
    return dict(body) if isinstance(body, dict) else {}


def _schema_complaint(keyword: object) -> str:
    """What a failed JSON-schema keyword means, without echoing the value (it may be a secret)."""
    return {
        "type": "wrong type",
        "required": "a required field is missing",
        "additionalProperties": "a field that is not accepted",
        "maxLength": "too long",
        "minLength": "too short",
        "pattern": "not in the accepted form",
        "enum": "not one of the accepted values",
        "minimum": "too small",
        "maximum": "too large",
        "format": "not in the accepted format",
    }.get(str(keyword), f"refused by '{keyword}'")


def _dispatcher(op: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def dispatch(request: web.Request) -> web.StreamResponse:
        services: Services = request.app[SERVICES]
        web_settings = services.settings.web
        body = await _read_body(request, op)
        call = Call(
            services=services,
            request=request,
            body=body,
            path=dict(request.match_info),
            query=dict(request.query),
            client=client_address(request, frozenset(web_settings.trusted_proxies)),
            now=services.now(),
        )
        if op.scope is not None:
            presented, _ = session_token(request)
            if presented is None or "Authorization" not in request.headers:
                raise AdminTokenRefused
            call.admin = await asyncio.to_thread(
                tokens.authenticate, services.store, presented, op.scope, now=call.now
            )
        elif op.stages is not None:
            token, from_cookie = session_token(request)
            session = await owner_session(services, op, token, now=call.now)
            if token is not None and from_cookie and request.method in WRITE_METHODS:
                given = request.headers.get("X-CSRF-Token", "")
                if not owner.csrf_ok(services.pepper, token, given):
                    raise CsrfRefused
            call.session, call.token = session, token
        if op.handle:
            raw = request.headers.get(HANDLE_HEADER)
            call.handle = Secret(raw) if raw is not None else None
        if op.domain_handle:
            raw = request.headers.get(DOMAIN_HANDLE_HEADER)
            call.domain_handle = Secret(raw) if raw is not None else None
        result = await asyncio.to_thread(op.handler, call)
        if op.redirect and call.redirect is not None:
            response: web.Response = web.Response(status=303)
            response.headers["Location"] = call.redirect
        elif op.status == 204:
            response = web.Response(status=204)
        else:
            response = web.json_response(result, status=op.status, dumps=_dumps)
        response.headers.update(call.headers)
        _set_cookies(response, call, secure=secure_request(request, services))
        if isinstance(call.set_session, Secret):
            response.set_cookie(
                SESSION_COOKIE,
                call.set_session.reveal(),
                httponly=True,
                secure=secure_request(request, services),
                samesite="Strict",
                path="/",
            )
        elif call.set_session == "":
            response.del_cookie(SESSION_COOKIE, path="/")
        return response

    dispatch.__name__ = op.operation_id
    return dispatch


def _set_cookies(response: web.Response, call: Call, *, secure: bool) -> None:
    """The cookies a handler asked for (not the session's): HttpOnly, Secure over HTTPS."""
    for cookie in call.cookies:
        if cookie.value == "":
            response.del_cookie(cookie.name, path=cookie.path)
            continue
        value = cookie.value.reveal() if isinstance(cookie.value, Secret) else cookie.value
        response.set_cookie(
            cookie.name,
            value,
            httponly=True,
            secure=secure,
            samesite=cookie.samesite,
            path=cookie.path,
            max_age=cookie.max_age,
        )


async def owner_session(
    services: Services, op: Operation, token: Secret | None, *, now: int
) -> owner.OwnerSession:
    """The live session of ``token`` if its stage may call ``op`` (the API's and portal's check).

    Raises:
        NotSignedIn: no token, or no live session for it.
        SessionStageRefused: the session is at a stage ``op`` does not allow.
    """
    if token is None:
        raise NotSignedIn
    session = await asyncio.to_thread(
        owner.session_for, services.store, services.settings, token, now=now
    )
    return check_stage(op, session)


def check_stage(op: Operation, session: owner.OwnerSession) -> owner.OwnerSession:
    """``session`` if its stage may call ``op``.

    Raises:
        SessionStageRefused: naming the session's stage.
    """
    if op.stages is not None and session.stage not in op.stages:
        raise SessionStageRefused(
            f"this needs a signed-in session; yours is at stage '{session.stage}'",
            stage=session.stage.value,
        )
    return session


def secure_request(request: web.Request, services: Services) -> bool:
    """Whether the client reached us over HTTPS (directly, or through a trusted proxy)."""
    if services.settings.web.tls or request.secure:
        return True
    trusted = frozenset(services.settings.web.trusted_proxies)
    return (request.remote or "") in trusted and request.headers.get(
        "X-Forwarded-Proto", ""
    ).lower() == "https"


SERVICES: web.AppKey[Services] = web.AppKey("services", Services)


def hosts_for(settings: SiteConfig, port: int | None = None) -> frozenset[str]:
    """Every Host header value the service answers (listen address, loopback, [web] hosts,
    and the host of the portal's public URL, which the reverse proxy passes on)."""
    host, listen_port = parse_endpoint(settings.web.listen)
    public = urlsplit(settings.portal_url())
    names = [*settings.web.hosts, public.hostname or ""]
    return allowed_hosts(host, listen_port if port is None else port, names) | {public.netloc}


def build_app(services: Services, *, port: int | None = None) -> web.Application:
    """The application with every declared operation mounted.

    ``port`` is the port really bound when ``[web] listen`` asks for port 0.
    """
    _load_operations()
    services.hosts = hosts_for(services.settings, port)
    app = web.Application(middlewares=[_guard], client_max_size=MAX_BODY)
    app[SERVICES] = services
    for op in API.operations:
        app.router.add_route(op.method, op.path, _dispatcher(op))
    document = API.document(status_of)

    async def openapi(_request: web.Request) -> web.Response:
        return web.json_response(document, dumps=_dumps)

    app.router.add_get("/api/v1/openapi.json", openapi)
    from mailprov.web import portal  # noqa: PLC0415  (the portal builds on this module)

    portal.setup(app)
    return app
