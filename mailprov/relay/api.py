"""The relay's HTTP JSON API (aiohttp, on the relay's own event loop), described by OpenAPI.

Everything is under ``/api/v1``; the document itself is ``GET /api/v1/openapi.json``.
Errors are ``{"error": {"code", "message"}}`` with 400 for bad parameters, 404
for an unknown message and 408 when ``wait`` times out. Unknown query
parameters are refused (a typo must not silently widen a search). Before any
handler, :mod:`mailprov.relay.gate` checks Host, Origin, the bearer token and a
write's Content-Type (421, 403, 401, 415). The same listener serves the web
inbox under ``/inbox/`` (:mod:`mailprov.relay.inbox`), behind the same gate.

Store queries run in :class:`~mailprov.relay.reader.StoreReader`'s threads,
never on the event loop SMTP shares; ``wait`` subscribes to
:class:`~mailprov.relay.arrivals.Arrivals` and is woken by the message itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mailprov.errors import InvalidValue, MailprovError, NotFound
from mailprov.relay import params as p
from mailprov.relay.gate import INBOX_REALM, REALM
from mailprov.relay.inbox import INBOX_PATH, add_inbox_routes
from mailprov.relay.mailpit import PREFIX as MAILPIT_PREFIX
from mailprov.relay.mailpit import build_mailpit_app
from mailprov.relay.openapi import document
from mailprov.relay.storage import MessageStore, Page, Query
from mailprov.relay.storage.mailbox import message_detail
from mailprov.relay.storage.search import LIMIT_MAX

if TYPE_CHECKING:
    from aiohttp import web

    from mailprov.relay.server import RelayServer

WAIT_MAX_S = 300.0
#: The Mailpit-compatible API needs JSON only on POST (DELETE and PUT are preflighted).
MAILPIT_JSON = frozenset({"POST"})
SEARCH_PARAMS = (
    "mailbox",
    "to",
    "from",
    "subject",
    "user",
    "since",
    "until",
    "header",
    "limit",
    "after",
    "before",
)


def query_from(params: Any, *, allowed: tuple[str, ...] = SEARCH_PARAMS) -> Query:
    """A storage Query from HTTP query parameters. Raises InvalidValue naming the parameter."""
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise InvalidValue(f"unknown parameter {unknown[0]!r}", hint="known: " + ", ".join(allowed))
    header = None
    if raw_header := p.text(params, "header"):
        name, sep, value = raw_header.partition(":")
        if not sep or not name.strip():
            raise InvalidValue("header must be NAME:VALUE, e.g. X-Test-Id:42")
        header = (name.strip(), value.strip())
    return Query(
        mailbox=p.text(params, "mailbox") or p.text(params, "to"),
        sender=p.text(params, "from"),
        subject=p.text(params, "subject"),
        user=p.text(params, "user"),
        since=p.instant(params, "since"),
        until=p.instant(params, "until"),
        header=header,
        limit=p.whole(params, "limit", 100, 1, LIMIT_MAX),
        after_seq=p.whole(params, "after", 0, 0, p.SEQ_MAX),
        before_seq=p.whole(params, "before", 0, 1, p.SEQ_MAX) if "before" in params else None,
    )


def page_json(page: Page) -> dict[str, Any]:
    """A page of messages as the API answers it (``total`` is a lower bound unless exact)."""
    return {
        "messages": [m.to_json() for m in page.messages],
        "count": len(page.messages),
        "total": page.total,
        "total_exact": page.total_exact,
        "next_before": page.next_before,
        "next_after": page.next_after,
    }


def _error(status: int, exc: MailprovError) -> web.Response:
    from aiohttp import web  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.hint:
        body["hint"] = exc.hint
    return web.json_response({"error": body}, status=status)


Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


def _message_id(request: web.Request) -> str:
    """The ``{id}`` of the path (UTF-8 text, or a 400)."""
    found = p.text(request.match_info, "id")
    if found is None:
        raise InvalidValue("id must not be empty")
    return found


def _guard(func: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await func(request)
        except NotFound as exc:
            return _error(404, exc)
        except MailprovError as exc:
            return _error(400, exc)

    return wrapped


def build_app(server: RelayServer) -> web.Application:  # noqa: PLR0915 (one closure per route)
    """The aiohttp application for one relay."""
    from aiohttp import web  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    gate = server.api_gate
    reader = server.reader
    arrivals = server.arrivals
    assert reader is not None  # noqa: S101 (narrows a type)
    assert arrivals is not None  # noqa: S101 (narrows a type)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        # The inbox is opened by a browser, which can send the token only as Basic.
        inbox = request.path == "/" or request.path.startswith(INBOX_PATH)
        if request.path.startswith(MAILPIT_PREFIX + "/"):
            refusal = gate.check(
                request.method, request.headers, json_methods=MAILPIT_JSON, basic=True
            )
        else:
            refusal = gate.check(request.method, request.headers, basic=inbox)
        if refusal is None:
            return await handler(request)
        body = {"error": {"code": refusal.code, "message": refusal.message}}
        headers = None
        if refusal.status == 401:  # the browser asks for the token only where a person looks
            headers = {"WWW-Authenticate": INBOX_REALM if inbox else REALM}
        return web.json_response(body, status=refusal.status, headers=headers)

    async def health(_request: web.Request) -> web.Response:
        count = await reader.run(MessageStore.count)
        return web.json_response({"status": "ok", **server.describe(), "messages": count})

    async def mailboxes(_request: web.Request) -> web.Response:
        found = await reader.run(lambda store: store.mailboxes())
        return web.json_response({"mailboxes": found})

    async def messages(request: web.Request) -> web.Response:
        query = query_from(request.query)
        found = await reader.run(lambda store: store.page(query))
        return web.json_response(page_json(found))

    async def purge(request: web.Request) -> web.Response:
        unknown = set(request.query) - {"mailbox"}
        if unknown:
            raise InvalidValue(f"unknown parameter {sorted(unknown)[0]!r}", hint="known: mailbox")
        mailbox = p.text(request.query, "mailbox")
        deleted = await reader.run(lambda store: store.purge(mailbox))
        return web.json_response({"changed": deleted > 0, "deleted": deleted})

    async def one(request: web.Request) -> web.Response:
        message_id = _message_id(request)

        def read(store: MessageStore) -> dict[str, Any]:
            found = store.get(message_id)
            return {**found.to_json(), **message_detail(store.raw(found.id))}

        return web.json_response(await reader.run(read))

    async def raw(request: web.Request) -> web.Response:
        message_id = _message_id(request)
        data = await reader.run(lambda store: store.raw(message_id))
        return web.Response(body=data, content_type="message/rfc822")

    async def delete(request: web.Request) -> web.Response:
        message_id = _message_id(request)
        await reader.run(lambda store: store.delete(message_id))
        return web.json_response({"changed": True, "deleted": 1})

    async def wait(request: web.Request) -> web.Response:
        params = dict(request.query)
        timeout = p.seconds(params, "timeout", 10.0, WAIT_MAX_S)
        params.pop("timeout", None)
        query = replace(query_from(params), limit=1, newest_first=False)
        # Subscribe first, then look at what is stored: a message stored in between is
        # found by one or the other, never by neither.
        with arrivals.subscribed(query) as subscription:
            found = await reader.run(lambda store: store.search(query))
            message = found[0] if found else None
            if message is None:
                try:
                    message = await subscription.next(timeout)
                except TimeoutError:
                    message = None
        if message is None:
            body = {
                "code": "wait-timed-out",
                "message": f"no matching message arrived within {timeout:g} s",
            }
            return web.json_response({"error": body}, status=408)
        found_id = message.id
        detail = await reader.run(lambda store: message_detail(store.raw(found_id)))
        return web.json_response({**message.to_json(), **detail})

    async def faults(_request: web.Request) -> web.Response:
        return web.json_response({"faults": server.faults.to_json(), "seed": server.faults.seed})

    async def add_fault(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            raise InvalidValue(
                'the body must be JSON: {"rule": "rcpt:*@x.test=550 5.1.1 no"}'
            ) from None
        if not isinstance(body, dict) or not isinstance(body.get("rule"), str):
            raise InvalidValue('the body must be {"rule": "STAGE:PATTERN=ACTION"}')
        rule = server.add_fault(body["rule"])
        return web.json_response({"changed": True, "fault": rule.to_json()}, status=201)

    async def clear_faults(request: web.Request) -> web.Response:
        unknown = set(request.query) - {"seed"}
        if unknown:
            raise InvalidValue(f"unknown parameter {sorted(unknown)[0]!r}", hint="known: seed")
        seed = None
        if "seed" in request.query:
            seed = p.whole(request.query, "seed", 0, p.SEED_MIN, p.SEED_MAX)
        had = len(server.faults.rules)
        server.clear_faults(seed)
        return web.json_response({"changed": had > 0, "deleted": had})

    async def openapi(_request: web.Request) -> web.Response:
        return web.json_response(document())

    app = web.Application(middlewares=[guard])
    add_inbox_routes(app, server, _guard)
    routes = [
        web.get("/api/v1/openapi.json", openapi),
        web.get("/api/v1/health", health),
        web.get("/api/v1/mailboxes", mailboxes),
        web.get("/api/v1/messages", messages),
        web.delete("/api/v1/messages", purge),
        web.get("/api/v1/messages/{id}", one),
        web.get("/api/v1/messages/{id}/raw", raw),
        web.delete("/api/v1/messages/{id}", delete),
        web.get("/api/v1/wait", wait),
        web.get("/api/v1/faults", faults),
        web.post("/api/v1/faults", add_fault),
        web.delete("/api/v1/faults", clear_faults),
    ]
    app.add_routes([web.route(r.method, r.path, _guard(r.handler)) for r in routes])
    app.add_subapp(MAILPIT_PREFIX, build_mailpit_app(server))
    return app
