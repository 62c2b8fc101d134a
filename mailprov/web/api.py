"""The owner-side API's operations: one declaration routes, checks and documents each.

A handler is a plain function declared with :meth:`Api.operation`: its method,
path, summary, the session stages that may call it, the JSON schema of its body
and of its answer, and the errors it documents. From that one declaration
:mod:`mailprov.web.app` mounts the route, checks the body against the schema
before the handler runs, checks the caller's session stage, and
:meth:`Api.document` writes the operation into the OpenAPI 3.1 document — so the
document cannot drift from what the server does.

Handlers are synchronous (the services they call are): the app runs each in a
worker thread, so a slow hash or query never blocks other clients.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailprov import __version__
from mailprov.errors import (
    AdminTokenRefused,
    CsrfRefused,
    MailprovError,
    NotSignedIn,
    ScopeRefused,
    SessionStageRefused,
)
from mailprov.model import Secret, SessionStage

if TYPE_CHECKING:
    from aiohttp import web

    from mailprov.services.accounts import Actor
    from mailprov.services.owner import OwnerSession
    from mailprov.services.tokens import AdminToken
    from mailprov.web.app import Services

Handler = Callable[["Call"], Any]


@dataclass(frozen=True)
class Cookie:
    """A cookie a handler sets besides the session's (always HttpOnly; Secure over HTTPS).

    ``value`` "" deletes it.
    """

    name: str
    value: Secret | str
    path: str = "/"
    max_age: int | None = None
    #: "Lax" where a provider's redirect back must carry it (a cross-site navigation).
    samesite: str = "Strict"


#: Who may call: None = anyone; otherwise the session stages allowed.
FULL = frozenset({SessionStage.FULL})
ANY_STAGE = frozenset(SessionStage)


@dataclass
class Call:
    """One call of an operation, as its handler sees it."""

    services: Services
    request: web.Request
    body: dict[str, Any]
    path: Mapping[str, str]
    query: Mapping[str, str]
    client: str
    now: int
    session: OwnerSession | None = None
    token: Secret | None = None
    #: The admin token of an operation declared with a scope.
    admin: AdminToken | None = None
    #: The request handle given with an operation declared ``handle=True`` (the API reads
    #: it from the X-Request-Handle header; the portal from its own cookie).
    handle: Secret | None = None
    #: The domain handle given with an operation declared ``domain_handle`` (the API reads
    #: it from the X-Domain-Handle header; the portal from its memory of the browser).
    domain_handle: Secret | None = None
    #: Set by a handler: the session token to put in the cookie (None: leave it),
    #: or "" to clear the cookie.
    set_session: Secret | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Set by a handler of a ``redirect`` operation: answer 303 to this URL instead.
    redirect: str | None = None
    cookies: list[Cookie] = field(default_factory=list)

    @property
    def actor(self) -> Actor:
        """Who acts, for the audit log: ``token:ID`` or ``owner:ADDRESS``, and the time."""
        from mailprov.services.accounts import Actor  # noqa: PLC0415  (lazy: keeps api.py light)

        if self.admin is not None:
            return Actor(f"token:{self.admin.id}", self.now)
        if self.session is not None:
            return Actor(f"owner:{self.session.address}", self.now)
        return Actor("anonymous", self.now)

    @property
    def owner(self) -> OwnerSession:
        """The caller's session (operations with stages always have one)."""
        if self.session is None:  # pragma: no cover - the app checks before calling
            msg = "operation declared public uses the session"
            raise RuntimeError(msg)
        return self.session


@dataclass(frozen=True)
class Operation:
    """One declared operation."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    stages: frozenset[SessionStage] | None
    body: dict[str, Any] | None
    answer: dict[str, Any] | None
    status: int
    errors: tuple[type[MailprovError], ...]
    description: str
    #: Admin operations: the scope the bearer token needs (then ``stages`` is None).
    scope: str | None = None
    #: Query parameters: name -> JSON schema (required unless in ``optional``; the handler
    #: reads call.query and checks them).
    query: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    #: Public, but about one provisioning request: needs its handle (HANDLE_HEADER).
    handle: bool = False
    #: The body may also come as an HTML form (application/x-www-form-urlencoded).
    form: bool = False
    #: May answer 303 See Other (the handler sets ``call.redirect``): browser flows.
    redirect: bool = False
    #: Query parameters that may be left out.
    optional: frozenset[str] = frozenset()
    #: Reads a domain handle (DOMAIN_HANDLE_HEADER): "required" (a proof's own operations:
    #: without it, as an unknown domain) or "optional" (needed only at a bound domain).
    domain_handle: str | None = None

    @property
    def operation_id(self) -> str:
        """The handler's name, which is unique in the registry."""
        return self.handler.__name__


@dataclass
class Api:
    """The registry of operations and the schemas they share."""

    title: str
    description: str
    operations: list[Operation] = field(default_factory=list)
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The operations by id (the portal looks several up for every page).
    by_id: dict[str, Operation] = field(default_factory=dict, repr=False)

    def schema(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        """Register a shared schema; returns a ``$ref`` to it."""
        self.schemas[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}

    def operation(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        stages: frozenset[SessionStage] | None = FULL,
        body: dict[str, Any] | None = None,
        answer: dict[str, Any] | None = None,
        status: int = 200,
        errors: tuple[type[MailprovError], ...] = (),
        scope: str | None = None,
        query: Mapping[str, dict[str, Any]] | None = None,
        handle: bool = False,
        form: bool = False,
        redirect: bool = False,
        optional: frozenset[str] = frozenset(),
        domain_handle: str | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare ``handler`` as the operation ``method path``.

        ``scope`` makes it an admin operation: an admin token with that scope is
        needed (``Authorization: Bearer``), and no owner session is looked at.
        """
        if scope is not None:
            stages = None

        def register(handler: Handler) -> Handler:
            if handler.__name__ in self.by_id:
                msg = f"two operations named {handler.__name__}"
                raise ValueError(msg)
            op = Operation(
                method.upper(),
                path,
                handler,
                summary,
                tag,
                stages,
                body,
                answer,
                status,
                errors,
                (handler.__doc__ or summary).strip(),
                scope,
                dict(query or {}),
                handle,
                form,
                redirect,
                optional,
                domain_handle,
            )
            self.operations.append(op)
            self.by_id[op.operation_id] = op
            return handler

        return register

    def find(self, operation_id: str) -> Operation:
        """The operation declared by the handler named ``operation_id``."""
        try:
            return self.by_id[operation_id]
        except KeyError:
            msg = f"no operation {operation_id!r}"
            raise KeyError(msg) from None

    def document(self, status_of: Callable[[type[MailprovError]], int]) -> dict[str, Any]:
        """The OpenAPI 3.1 document of every declared operation."""
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, status_of)
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": __version__, "description": self.description},
            "paths": paths,
            "components": {
                "schemas": {"Error": ERROR_SCHEMA, **copy.deepcopy(self.schemas)},
                "securitySchemes": {
                    "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
                    "bearer": {"type": "http", "scheme": "bearer"},
                    "adminToken": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "A token from 'mailprov token create' (mpa_...).",
                    },
                    "requestHandle": {
                        "type": "apiKey",
                        "in": "header",
                        "name": HANDLE_HEADER,
                        "description": "The secret handle shown once when a request was opened.",
                    },
                    "domainHandle": {
                        "type": "apiKey",
                        "in": "header",
                        "name": DOMAIN_HANDLE_HEADER,
                        "description": "The secret handle shown once when a domain's ownership "
                        "proof was started here; requests at that domain need it too.",
                    },
                },
            },
        }


SESSION_COOKIE = "mailprov_session"
#: The media type of an HTML form's body (operations declared with ``form=True``).
FORM = "application/x-www-form-urlencoded"
#: The header that carries a provisioning request's secret handle (never the URL).
HANDLE_HEADER = "X-Request-Handle"
#: The header that carries a self-service domain proof's secret handle.
DOMAIN_HANDLE_HEADER = "X-Domain-Handle"


def wants_html(call: Call) -> bool:
    """A browser: it sent a form, or it asks for HTML rather than JSON."""
    kind = call.request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    accept = call.request.headers.get("Accept", "")
    return kind == FORM or ("text/html" in accept and "application/json" not in accept)


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "exit_status"],
            "properties": {
                "code": {"type": "string", "description": "Stable; the CLI's error codes."},
                "message": {"type": "string"},
                "hint": {"type": "string", "description": "What to do about it."},
                "request_id": {"type": "string"},
                "exit_status": {"type": "integer", "description": "The CLI's exit status."},
            },
        }
    },
}


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _path_parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in names
    ]


def _request_body(op: Operation) -> dict[str, Any]:
    content = {"application/json": {"schema": op.body}}
    if op.form:
        content[FORM] = {"schema": op.body}
    return {"required": True, "content": content}


def _success(op: Operation) -> dict[str, Any]:
    """The answers of an operation that did what was asked."""
    ok: dict[str, Any] = {"description": "Done"}
    if op.answer is not None:
        ok["content"] = {"application/json": {"schema": op.answer}}
    responses: dict[str, Any] = {str(op.status): ok}
    if op.redirect:
        responses["303"] = {
            "description": "For a browser: go on at the Location",
            "headers": {"Location": {"required": True, "schema": {"type": "string"}}},
        }
    return responses


def _public_security(op: Operation) -> list[dict[str, list[str]]]:
    """The security requirement of an operation without a session or admin token."""
    if op.handle:
        return [{"requestHandle": []}]
    if op.domain_handle == "required":
        return [{"domainHandle": []}]
    if op.domain_handle == "optional":  # none, or the domain's handle
        return [{}, {"domainHandle": []}]
    return []


def _operation(op: Operation, status_of: Callable[[type[MailprovError]], int]) -> dict[str, Any]:
    _, _, rest = op.description.partition("\n\n")
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
    }
    if rest.strip():
        doc["description"] = " ".join(rest.split())
    parameters = _path_parameters(op.path) + [
        {"name": name, "in": "query", "required": name not in op.optional, "schema": schema}
        for name, schema in op.query.items()
    ]
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        doc["requestBody"] = _request_body(op)
    responses = _success(op)
    errors = list(op.errors)
    if op.scope is not None:
        doc["security"] = [{"adminToken": []}]
        errors += [AdminTokenRefused, ScopeRefused]
        doc["x-scope"] = op.scope
    elif op.stages is not None:
        doc["security"] = [{"session": []}, {"bearer": []}]
        errors += [NotSignedIn, SessionStageRefused]
        if op.method != "GET":
            errors.append(CsrfRefused)
    else:
        doc["security"] = _public_security(op)
    by_status: dict[str, list[str]] = {}
    for error in errors:
        by_status.setdefault(str(status_of(error)), []).append(error.code)
    if op.body is not None:
        by_status.setdefault("400", []).append("malformed-request")
        by_status.setdefault("415", []).append("unsupported-media-type")
    for status, codes in sorted(by_status.items()):
        responses[status] = _error_response("Refused: " + ", ".join(sorted(set(codes))))
    responses["421"] = _error_response("A Host header this service does not answer for")
    responses["403"] = responses.get("403") or _error_response("A cross-site request")
    responses["500"] = _error_response("An unexpected fault (logged on the server)")
    responses["503"] = _error_response("The account store is unavailable; retry later")
    doc["responses"] = responses
    return doc


#: The one registry of ``mailprov serve``'s operations (modules of web/ declare on it).
API = Api(
    title="mailprov owner API",
    description=(
        "The mailbox owner's side of mailprov: sign in, set your own password, "
        "two-factor authentication and app passwords, recovery contacts and reset, "
        "filters; and the requester's way to a new mailbox. Errors are the CLI's error "
        "documents (the same codes). Writes need 'Content-Type: application/json'; "
        "a write authenticated by the session cookie also needs the X-CSRF-Token header."
    ),
)
