"""The web inbox: captured mail in a browser, served by the API's listener under ``/inbox/``.

Pages are rendered on the server (:mod:`.pages`, Jinja2 with autoescape); one
small static script adds the live list (Server-Sent Events from
``/inbox/events``, fed by :class:`~mailprov.relay.arrivals.Arrivals`) and the
delete buttons. There is no build step and no inline script. What keeps hostile
mail harmless is in :mod:`.security` (headers) and :mod:`.view` (parsing).

Routes (all behind the API's gate: Host, Origin, token, JSON-only writes)::

    GET    /                                  -> 302 /inbox/
    GET    /inbox/?mailbox=&from=&subject=&text=&before=    the list, newest first
    GET    /inbox/events?mailbox=&from=&subject=&text=&after=   text/event-stream
    GET    /inbox/messages/{id}[?remote=1]    one message
    GET    /inbox/messages/{id}/html[?remote=1]   its HTML part (sandboxed)
    GET    /inbox/messages/{id}/parts/{part}    a part by MIME section, 2 or 2.1 (download)
    GET    /inbox/messages/{id}/raw           the message as received (download)
    DELETE /inbox/messages/{id}               delete one
    DELETE /inbox/messages[?mailbox=]         delete all (of a mailbox)
    GET    /inbox/static/{inbox.js,inbox.css}
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from mailprov.errors import InvalidValue, MailprovError, NotFound
from mailprov.relay import params as p
from mailprov.relay.inbox import security, view
from mailprov.relay.storage import MessageStore, Query, StoredMessage

if TYPE_CHECKING:
    from aiohttp import web

    from mailprov.relay.server import RelayServer

INBOX_PATH = "/inbox/"
#: Messages per page of the list.
PAGE_SIZE = 50
#: Mailboxes listed beside it (the most recently used).
MAILBOXES_SHOWN = 100
#: An idle live list gets a comment this often, so a dead connection is noticed.
HEARTBEAT_S = 15.0
FILTERS = ("mailbox", "from", "subject", "text")

Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]
Guard = Callable[[Handler], Handler]


def message_url(message_id: str, tail: str = "") -> str:
    """The inbox URL of a message (or of one of its sub-resources)."""
    return f"{INBOX_PATH}messages/{quote(message_id, safe='')}{tail}"


def inbox_query(params: Any, *extra: str, **fields: Any) -> Query:
    """A Query from the list's parameters. Raises InvalidValue naming a bad or unknown one."""
    allowed = (*FILTERS, *extra)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise InvalidValue(f"unknown parameter {unknown[0]!r}", hint="known: " + ", ".join(allowed))
    seq = {
        "before_seq": p.whole(params, "before", 0, 1, p.SEQ_MAX) if "before" in params else None,
        "after_seq": p.whole(params, "after", 0, 0, p.SEQ_MAX),
    }
    return Query(
        mailbox=p.text(params, "mailbox"),
        sender=p.text(params, "from"),
        subject=p.text(params, "subject"),
        text=p.text(params, "text"),
        **{**seq, **fields},
    )


def _filters(params: Any) -> dict[str, str]:
    return {k: params[k] for k in FILTERS if params.get(k)}


def _event(message: StoredMessage) -> bytes:
    data = {
        "id": message.id,
        "seq": message.seq,
        "url": message_url(message.id),
        "received_at": message.to_json()["received_at"],
        "from": message.sender,
        "to": list(message.recipients),
        "subject": message.subject,
        "size": view.size(message.size),
    }
    return f"id: {message.seq}\nevent: message\ndata: {json.dumps(data)}\n\n".encode()


def available() -> bool:
    """True if Jinja2 and the templates are installed (not in the light mailprov-relay)."""
    return all(importlib.util.find_spec(name) for name in ("jinja2", "mailprov.render"))


def add_unavailable_routes(app: web.Application) -> None:
    """Without Jinja2 (the light install), the inbox's paths say where to get it."""
    from aiohttp import web  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    async def missing(_request: web.Request) -> web.StreamResponse:
        body = {
            "error": {
                "code": "inbox-not-installed",
                "message": "the web inbox is not part of the mailprov-relay distribution",
                "hint": "install mailprov (it has the inbox) instead of mailprov-relay",
            }
        }
        return web.json_response(body, status=501)

    app.add_routes([web.get("/", missing), web.get(INBOX_PATH + "{tail:.*}", missing)])


def add_inbox_routes(app: web.Application, server: RelayServer, guard: Guard) -> None:  # noqa: PLR0915 (one closure per route)
    """Add the inbox's routes to the API's application."""
    from aiohttp import web  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    if not available():
        add_unavailable_routes(app)
        return
    from mailprov.relay.inbox import pages  # noqa: PLC0415  (lazy: Jinja2, absent in the light install)

    reader = server.reader
    arrivals = server.arrivals
    assert reader is not None  # noqa: S101 (narrows a type)
    assert arrivals is not None  # noqa: S101 (narrows a type)

    def html(text: str, status: int = 200) -> web.Response:
        return web.Response(
            text=text,
            status=status,
            content_type="text/html",
            charset="utf-8",
            headers=security.page_headers(),
        )

    def page_guard(func: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await func(request)
            except MailprovError as exc:
                status = 404 if isinstance(exc, NotFound) else 400
                return html(pages.render("error.html.j2", error=exc, status=status), status)

        return wrapped

    def message_id(request: web.Request) -> str:
        found = p.text(request.match_info, "id")
        if found is None:
            raise InvalidValue("id must not be empty")
        return found

    async def root(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(INBOX_PATH)

    async def listing(request: web.Request) -> web.StreamResponse:
        query = inbox_query(request.query, "before", limit=PAGE_SIZE)

        def read(store: MessageStore) -> dict[str, Any]:
            return {
                "page": store.page(query),
                "mailboxes": store.mailboxes(recent=MAILBOXES_SHOWN),
                "mailbox_count": store.mailbox_count(),
                "totals": store.totals(),
                "last_seq": store.last_seq(),
            }

        found = await reader.run(read)
        filters = _filters(request.query)
        events = f"{INBOX_PATH}events?" + urlencode({**filters, "after": found["last_seq"]})
        older = None
        if found["page"].next_before is not None:
            older = "?" + urlencode({**filters, "before": found["page"].next_before})
        return html(
            pages.render(
                "list.html.j2",
                **found,
                filters=filters,
                form={k: filters.get(k, "") for k in FILTERS},
                events=events,
                live=query.before_seq is None,
                older=older,
                newest="?" + urlencode(filters) if query.before_seq is not None else None,
                faults=server.faults.to_json(),
                seed=server.faults.seed,
                options=server.options,
                size=view.size,
                message_url=message_url,
            )
        )

    async def events(request: web.Request) -> web.StreamResponse:
        query = inbox_query(request.query, "after", newest_first=False, limit=PAGE_SIZE)
        # A reconnecting EventSource says what it saw last: go on from there.
        last = p.whole(request.headers, "Last-Event-ID", 0, 0, p.SEQ_MAX)
        query = replace(query, after_seq=max(query.after_seq, last))
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            }
        )
        await response.prepare(request)
        with (
            arrivals.subscribed(query) as subscription,
            contextlib.suppress(ConnectionError),
        ):
            await response.write(b"retry: 3000\n\n")
            # What arrived between the page and this request (the page skips rows it has).
            for message in await reader.run(lambda store: store.search(query)):
                await response.write(_event(message))
            while True:
                try:
                    arrived = await subscription.next(HEARTBEAT_S)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if arrived is None:  # the relay stops
                    break
                if subscription.overflowed:  # this reader fell behind: start again
                    await response.write(b"event: reload\ndata: {}\n\n")
                    break
                for each in [arrived, *subscription.pending()]:
                    await response.write(_event(each))
        return response

    async def message_page(request: web.Request) -> web.StreamResponse:
        found_id = message_id(request)
        remote = request.query.get("remote") == "1"

        def read(store: MessageStore) -> tuple[StoredMessage, view.MessageView]:
            return store.get(found_id), view.build(store.raw(found_id))

        message, shown = await reader.run(read)
        html_url = message_url(found_id, "/html") + ("?remote=1" if remote else "")
        return html(
            pages.render(
                "message.html.j2",
                message=message,
                view=shown,
                remote=remote,
                html_url=html_url,
                message_url=message_url,
                size=view.size,
            )
        )

    async def html_part(request: web.Request) -> web.StreamResponse:
        found_id = message_id(request)
        remote = request.query.get("remote") == "1"
        text = await reader.run(lambda store: view.html_part(store.raw(found_id)))
        if not text:
            raise NotFound(f"message {found_id} has no HTML part")
        return web.Response(
            text=text,
            content_type="text/html",
            charset="utf-8",
            headers=security.html_part_headers(remote=remote),
        )

    async def part(request: web.Request) -> web.StreamResponse:
        found_id = message_id(request)
        part_id = request.match_info["part"]
        if not view.PART_ID.fullmatch(part_id):
            raise InvalidValue(
                f"part must be a MIME section number such as 2 or 2.1, not {part_id!r:.20}"
            )
        found = await reader.run(lambda store: view.part_bytes(store.raw(found_id), part_id))
        if found is None:
            raise NotFound(f"message {found_id} has no part {part_id}")
        data, name = found
        return web.Response(
            body=data,
            content_type="application/octet-stream",
            headers=security.download_headers(name),
        )

    async def raw(request: web.Request) -> web.StreamResponse:
        found_id = message_id(request)
        data = await reader.run(lambda store: store.raw(found_id))
        return web.Response(
            body=data,
            content_type="message/rfc822",
            headers=security.download_headers(f"{found_id}.eml"),
        )

    async def delete(request: web.Request) -> web.StreamResponse:
        found_id = message_id(request)
        await reader.run(lambda store: store.delete(found_id))
        return web.json_response({"changed": True, "deleted": 1})

    async def delete_all(request: web.Request) -> web.StreamResponse:
        unknown = set(request.query) - {"mailbox"}
        if unknown:
            raise InvalidValue(f"unknown parameter {sorted(unknown)[0]!r}", hint="known: mailbox")
        mailbox = p.text(request.query, "mailbox")
        deleted = await reader.run(lambda store: store.purge(mailbox))
        return web.json_response({"changed": deleted > 0, "deleted": deleted})

    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        data = await asyncio.to_thread(pages.static, name)
        if data is None:
            raise NotFound(f"no static file {name!r}")
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
        return web.Response(body=data, headers={**headers, "Content-Type": pages.STATIC[name]})

    base = INBOX_PATH.rstrip("/")
    app.add_routes(
        [
            web.get("/", root),
            web.get(INBOX_PATH, page_guard(listing)),
            web.get(f"{base}/events", guard(events)),
            web.get(f"{base}/messages/{{id}}", page_guard(message_page)),
            web.get(f"{base}/messages/{{id}}/html", page_guard(html_part)),
            web.get(f"{base}/messages/{{id}}/parts/{{part}}", page_guard(part)),
            web.get(f"{base}/messages/{{id}}/raw", page_guard(raw)),
            web.delete(f"{base}/messages/{{id}}", guard(delete)),
            web.delete(f"{base}/messages", guard(delete_all)),
            web.get(f"{base}/static/{{name}}", page_guard(static)),
        ]
    )
