"""The Mailpit-compatible API as an aiohttp sub-application, mounted at ``/mailpit``.

Mailpit's clients are pointed at ``http://HOST:PORT/mailpit`` (the relay's API
listener) and call the paths Mailpit documents under it. Reads run in one
worker thread on their own connection to the index (never on the SMTP event
loop, never inside the writer's transaction); deletes go through the store as
mailprov's own API does. ``Read`` flags live in memory (a relay restart forgets
them). Anything not in this subset answers 404 with JSON that names the mapping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from mailprov import __version__
from mailprov.errors import InvalidValue, MailprovError, NotFound
from mailprov.relay import mime
from mailprov.relay import params as p
from mailprov.relay.mailpit import views
from mailprov.relay.mailpit.openapi import document
from mailprov.relay.mailpit.search import (
    MAPPING_DOC,
    Row,
    Search,
    compile_search,
    ids_matching,
    run,
)
from mailprov.relay.storage import MessageStore

if TYPE_CHECKING:
    from aiohttp import web

    from mailprov.relay.server import RelayServer

PREFIX = "/mailpit"
LIMIT_DEFAULT = 50
LIMIT_MAX = 10_000
Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


class MailpitState:
    """What the compatible API keeps: a reader of the store (one thread) and the read flags."""

    def __init__(self, server: RelayServer) -> None:
        self.server = server
        self.read: set[str] = set()
        self.started = time.time()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailpit-api")
        self._reader: MessageStore | None = None

    def _store(self) -> MessageStore:
        if self._reader is None:
            self._reader = MessageStore(self.server.options.storage_dir).open(create=False)
        return self._reader

    async def read_with(self, func: Callable[[MessageStore], Any]) -> Any:
        """Run ``func(reader)`` in the reader thread (the store is opened there on first use)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: func(self._store()))

    def close(self) -> None:
        """Stop the thread and close the reader."""
        self._pool.shutdown(wait=True)
        if self._reader is not None:
            self._reader.close()


def _error(status: int, exc: MailprovError) -> web.Response:
    from aiohttp import web  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.hint:
        body["hint"] = exc.hint
    return web.json_response({"error": body}, status=status)


def _guard(func: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await func(request)
        except NotFound as exc:
            return _error(404, exc)
        except MailprovError as exc:
            return _error(400, exc)

    return wrapped


def _page(query: Any) -> tuple[int, int]:
    return (
        p.whole(query, "start", 0, 0, p.SEQ_MAX),
        p.whole(query, "limit", LIMIT_DEFAULT, 1, LIMIT_MAX),
    )


def _resolve(store: MessageStore, message_id: str) -> Row:
    """The index row of ``message_id`` (``latest``: the newest). Raises NotFound."""
    search = compile_search("")
    if message_id != "latest":
        search.add("m.id = ?", [message_id])
    rows, _ = run(store.db, search, start=0, limit=1)
    if not rows:
        raise NotFound(
            f"no message {message_id} in the relay's storage"
            if message_id != "latest"
            else "there are no messages"
        )
    return rows[0]


def _list(
    state: MailpitState, store: MessageStore, query: str, tz: str | None, start: int, limit: int
) -> dict[str, Any]:
    """Mailpit's ``MessagesSummary`` for a search ('' lists everything)."""
    search = compile_search(query, tz=tz, read=state.read)
    rows, count = run(
        store.db,
        search,
        start=start,
        limit=limit,
        body_kinds=lambda mid: views.body_kinds(store.raw(mid)),
    )
    total = store.count()
    read_total = _existing(store, state.read)
    read_here = _count_read(store, search, state) if state.read else 0
    messages = [
        views.summary_json(r, store.raw(r.summary.id), read=r.summary.id in state.read)
        for r in rows
    ]
    return {
        "total": total,
        "unread": total - read_total,
        "count": len(messages),
        "messages_count": count,
        "messages_unread": count - read_here,
        "start": start,
        "tags": [],
        "messages": messages,
    }


def _existing(store: MessageStore, ids: set[str]) -> int:
    if not ids:
        return 0
    found = 0
    listed = list(ids)
    for chunk in range(0, len(listed), 500):
        part = listed[chunk : chunk + 500]
        marks = ",".join("?" * len(part))
        sql = f"SELECT count(*) FROM messages WHERE id IN ({marks})"  # noqa: S608
        found += store.db.execute(sql, part).fetchone()[0]
    return int(found)


def _count_read(store: MessageStore, search: Search, state: MailpitState) -> int:
    """How many matches are marked read."""
    read = compile_search("is:read", read=state.read)
    both = Search(
        search.where + read.where,
        search.args + read.args,
        search.predicates + read.predicates,
        search.hints + read.hints,
    )
    _, count = run(
        store.db, both, start=0, limit=1, body_kinds=lambda mid: views.body_kinds(store.raw(mid))
    )
    return count


def _delete_ids(ids: list[str], body: bytes, content_type: str) -> list[str]:
    """IDs from a Mailpit delete/read body: JSON ``{"IDs": [...]}`` or a form's ``ids``."""
    if not body.strip():
        return []
    if content_type == "application/x-www-form-urlencoded":
        form = parse_qs(body.decode("utf-8", "replace"))
        return [i for key, values in form.items() if key.lower() == "ids" for i in values]
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidValue('the body must be JSON such as {"IDs": ["..."]}') from None
    if not isinstance(data, dict):
        raise InvalidValue('the body must be a JSON object such as {"IDs": ["..."]}')
    for key, value in data.items():
        if key.lower() == "ids":  # Go's JSON decoder matches field names without case
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InvalidValue("IDs must be a list of message ids")
            return list(value)
    return ids


def build_mailpit_app(server: RelayServer) -> web.Application:  # noqa: PLR0915 (one closure per route)
    """The sub-application (mount it at :data:`PREFIX`)."""
    from aiohttp import web  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    state = MailpitState(server)

    def ok() -> web.Response:
        return web.Response(text="ok", content_type="text/plain")

    async def info(_request: web.Request) -> web.Response:
        def numbers(store: MessageStore) -> tuple[int, int, int]:
            total = store.count()
            db_file = store.root / "index.sqlite"
            return total, _existing(store, state.read), db_file.stat().st_size

        total, read, size = await state.read_with(numbers)
        counters = server.ctx.counters if server.ctx is not None else {}
        return web.json_response(
            {
                "Version": f"mailprov {__version__}",
                "LatestVersion": "",
                "Database": str(server.options.storage_dir / "index.sqlite"),
                "DatabaseSize": size,
                "Messages": total,
                "Unread": total - read,
                "Tags": {},
                "RuntimeStats": {
                    "Memory": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                    "MessagesDeleted": 0,
                    "SMTPAccepted": counters.get("accepted", 0),
                    "SMTPAcceptedSize": 0,
                    "SMTPIgnored": 0,
                    "SMTPRejected": counters.get("refused", 0),
                    "Uptime": int(time.time() - state.started),
                },
            }
        )

    async def webui(_request: web.Request) -> web.Response:
        return web.json_response(
            {
                "Label": f"mailprov relay ({server.options.mode})",
                "ChaosEnabled": False,
                "DuplicatesIgnored": False,
                "HideDeleteAllButton": False,
                "SpamAssassin": False,
                "MessageRelay": {
                    "Enabled": False,
                    "SMTPServer": "",
                    "AllowedRecipients": "",
                    "BlockedRecipients": "",
                    "OverrideFrom": "",
                    "PreserveMessageIDs": False,
                    "RecipientAllowlist": "",
                    "ReturnPath": "",
                },
            }
        )

    async def messages(request: web.Request) -> web.Response:
        start, limit = _page(request.query)
        body = await state.read_with(lambda s: _list(state, s, "", None, start, limit))
        return web.json_response(body)

    async def search(request: web.Request) -> web.Response:
        query = (p.text(request.query, "query") or "").strip()
        if not query:
            raise InvalidValue("query is required: a Mailpit search such as 'to:ann@example.test'")
        start, limit = _page(request.query)
        tz = p.text(request.query, "tz")
        body = await state.read_with(lambda s: _list(state, s, query, tz, start, limit))
        return web.json_response(body)

    async def delete_messages(request: web.Request) -> web.Response:
        ids = _delete_ids([], await request.read(), request.content_type)
        store = server.api_store
        if not ids:
            store.purge()
            state.read.clear()
            return ok()
        for mid in ids:  # as Mailpit: an id that is already gone is not an error
            with contextlib.suppress(NotFound):
                store.delete(mid)
            state.read.discard(mid)
        return ok()

    async def delete_search(request: web.Request) -> web.Response:
        query = (p.text(request.query, "query") or "").strip()
        if not query:
            raise InvalidValue("query is required: a Mailpit search such as 'to:ann@example.test'")
        compiled = compile_search(query, tz=p.text(request.query, "tz"), read=state.read)
        ids = await state.read_with(
            lambda s: ids_matching(s.db, compiled, lambda mid: views.body_kinds(s.raw(mid)))
        )
        for mid in ids:
            try:
                server.api_store.delete(mid)
            except NotFound:
                continue  # removed meanwhile (retention): the goal holds
            state.read.discard(mid)
        return ok()

    async def set_read(request: web.Request) -> web.Response:
        try:
            data = json.loads(await request.read() or b"{}")
        except ValueError:
            raise InvalidValue(
                'the body must be JSON such as {"IDs": ["..."], "Read": true}'
            ) from None
        if not isinstance(data, dict):
            raise InvalidValue('the body must be a JSON object such as {"IDs": [], "Read": true}')
        fields = {k.lower(): v for k, v in data.items()}
        ids, flag, query = (
            fields.get("ids") or [],
            bool(fields.get("read")),
            fields.get("search") or "",
        )
        if ids and query:
            raise InvalidValue("give either IDs or Search, not both")
        if not isinstance(ids, list) or not isinstance(query, str):
            raise InvalidValue("IDs must be a list of message ids and Search a string")
        if query or not ids:
            compiled = compile_search(query, tz=p.text(request.query, "tz"), read=state.read)
            ids = await state.read_with(
                lambda s: ids_matching(s.db, compiled, lambda mid: views.body_kinds(s.raw(mid)))
            )
        (state.read.update if flag else state.read.difference_update)(str(i) for i in ids)
        return ok()

    def _row_and_raw(request: web.Request) -> Awaitable[tuple[Row, bytes]]:
        wanted = p.text(request.match_info, "id") or ""

        def load(store: MessageStore) -> tuple[Row, bytes]:
            row = _resolve(store, wanted)
            return row, store.raw(row.summary.id)

        return state.read_with(load)

    async def message(request: web.Request) -> web.Response:
        row, raw = await _row_and_raw(request)
        state.read.add(row.summary.id)  # Mailpit marks a message read when it is opened
        return web.json_response(views.message_json(row, raw))

    async def headers(request: web.Request) -> web.Response:
        _, raw = await _row_and_raw(request)
        return web.json_response(views.headers_json(raw))

    async def raw_source(request: web.Request) -> web.Response:
        _, raw = await _row_and_raw(request)
        return web.Response(body=raw, content_type="text/plain", charset="utf-8")

    async def part(request: web.Request) -> web.Response:
        row, raw = await _row_and_raw(request)
        found = mime.find_part(raw, request.match_info["part"])
        if found is None:
            raise NotFound(
                f"message {row.summary.id} has no part {request.match_info['part']!r:.20}"
            )
        headers = {"Content-Disposition": "attachment"}
        if name := found.get_filename():
            headers["Content-Disposition"] = f'attachment; filename="{name.replace(chr(34), "")}"'
        return web.Response(
            body=mime.payload(found), content_type=found.get_content_type(), headers=headers
        )

    async def view_html(request: web.Request) -> web.Response:
        _, raw = await _row_and_raw(request)
        return web.Response(
            text=mime.parse(raw).html,
            content_type="text/html",
            # The HTML is the sender's: shown as a page, it must not run scripts or load anything.
            headers={
                "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'"
            },
        )

    async def view_text(request: web.Request) -> web.Response:
        _, raw = await _row_and_raw(request)
        return web.Response(text=mime.parse(raw).text, content_type="text/plain")

    async def send(request: web.Request) -> web.Response:
        writer = server.ctx.writer if server.ctx is not None else None
        if writer is None:
            raise InvalidValue(
                f"the send endpoint stores mail, and this relay is in {server.options.mode} mode",
                hint="send over SMTP instead, or run the relay in capture mode",
            )
        try:
            data = await request.json()
        except ValueError:
            raise InvalidValue("the body must be JSON: Mailpit's send request") from None
        raw, recipients, sender = compose(data)
        stored = await writer.add(
            raw, sender=sender, recipients=recipients, auth_user=None, peer="api"
        )
        return web.json_response({"ID": stored.id})

    async def openapi(_request: web.Request) -> web.Response:
        return web.json_response(document())

    async def unknown(request: web.Request) -> web.StreamResponse:
        path = request.match_info.get("tail", "")
        if "//" in request.path:  # cypress-mailpit asks for BASE//view/ID.html
            target = PREFIX + "/" + "/".join(x for x in request.path[len(PREFIX) :].split("/") if x)
            if request.query_string:
                target += "?" + request.query_string
            raise web.HTTPPermanentRedirect(target)
        return web.json_response(
            {
                "error": {
                    "code": "not-in-mailpit-subset",
                    "message": f"{request.method} /{path} is not part of mailprov's "
                    "Mailpit-compatible API",
                    "hint": f"what is served, and mailprov's own equivalents: {MAPPING_DOC}",
                }
            },
            status=404,
        )

    async def on_cleanup(_app: web.Application) -> None:
        await asyncio.to_thread(state.close)

    app = web.Application()
    app.on_cleanup.append(on_cleanup)
    routes = [
        web.get("/api/v1/openapi.json", openapi),
        web.get("/api/v1/info", info),
        web.get("/api/v1/webui", webui),
        web.get("/api/v1/messages", messages),
        web.put("/api/v1/messages", set_read),
        web.delete("/api/v1/messages", delete_messages),
        web.get("/api/v1/search", search),
        web.delete("/api/v1/search", delete_search),
        web.get("/api/v1/message/{id}", message),
        web.get("/api/v1/message/{id}/headers", headers),
        web.get("/api/v1/message/{id}/raw", raw_source),
        web.get("/api/v1/message/{id}/part/{part}", part),
        web.post("/api/v1/send", send),
        web.get("/view/{id}.html", view_html),
        web.get("/view/{id}.txt", view_text),
    ]
    app.add_routes([web.route(r.method, r.path, _guard(r.handler)) for r in routes])
    app.router.add_route("*", "/{tail:.*}", unknown)
    return app


def _people(value: Any, what: str) -> list[tuple[str, str]]:
    """``[{"Email", "Name"}]`` or ``["addr"]`` as (name, address) pairs."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidValue(f"{what} must be a list")
    found = []
    for item in value:
        if isinstance(item, str):
            found.append(("", item))
        elif isinstance(item, dict) and isinstance(item.get("Email"), str):
            found.append((str(item.get("Name") or ""), item["Email"]))
        else:
            raise InvalidValue(f'{what} entries must be {{"Email": "...", "Name": "..."}}')
    return found


def compose(data: Any) -> tuple[bytes, list[str], str]:
    """A message from Mailpit's send request: (bytes, envelope recipients, envelope sender)."""
    import base64  # noqa: PLC0415  (stdlib, only this path)
    import binascii  # noqa: PLC0415  (stdlib, only this path)

    if not isinstance(data, dict):
        raise InvalidValue("the body must be a JSON object: Mailpit's send request")
    sender = _people([data.get("From")], "From")
    to, cc, bcc = (_people(data.get(k), k) for k in ("To", "Cc", "Bcc"))
    if not (to or cc or bcc):
        raise InvalidValue("a message needs at least one recipient in To, Cc or Bcc")
    msg = EmailMessage()
    msg["From"] = formataddr(sender[0])
    if to:
        msg["To"] = ", ".join(formataddr(a) for a in to)
    if cc:
        msg["Cc"] = ", ".join(formataddr(a) for a in cc)
    if reply := _people(data.get("ReplyTo"), "ReplyTo"):
        msg["Reply-To"] = ", ".join(formataddr(a) for a in reply)
    msg["Subject"] = str(data.get("Subject") or "")
    msg["Date"] = format_datetime(datetime_now())
    msg["Message-ID"] = make_msgid(domain="mailprov.relay")
    if tags := data.get("Tags"):
        msg["X-Tags"] = ", ".join(str(t) for t in tags)
    for name, value in (data.get("Headers") or {}).items():
        msg[str(name)] = str(value)
    msg.set_content(str(data.get("Text") or ""))
    if data.get("HTML"):
        msg.add_alternative(str(data["HTML"]), subtype="html")
    for item in data.get("Attachments") or []:
        try:
            content = base64.b64decode(item["Content"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            raise InvalidValue("each attachment needs base64 Content and a Filename") from None
        kind = str(item.get("ContentType") or "application/octet-stream")
        main, _, sub = kind.partition("/")
        msg.add_attachment(
            content,
            maintype=main,
            subtype=sub or "octet-stream",
            filename=str(item.get("Filename") or "file"),
        )
    raw = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    return raw, [a for _, a in (*to, *cc, *bcc)], sender[0][1]


def datetime_now() -> Any:
    """Now, with the local offset (a Date header's form)."""
    from datetime import datetime  # noqa: PLC0415  (stdlib, only this path)

    return datetime.now().astimezone()


__all__ = ["PREFIX", "build_mailpit_app", "compose"]
