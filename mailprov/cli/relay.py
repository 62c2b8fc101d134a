"""``mailprov relay serve|messages|show|wait|purge``: the local relay for test rigs."""

from __future__ import annotations

import sys
from typing import Any

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import Renamed, json_option
from mailprov.cli.output import emit, table


@click.group()
def relay() -> None:
    """The local SMTP relay: capture mail for tests, deliver locally, or forward."""


def _storage(path: str | None) -> Any:
    from mailprov.relay.storage import MessageStore

    settings = app_context().settings
    root = settings.resolve_path(path or settings.relay.storage_dir)
    return MessageStore(root).open(create=False)


storage_option = click.option(
    "--storage", metavar="DIR", help="The relay's storage folder (default: relay.storage_dir)."
)


@relay.command("serve")
@click.option(
    "--listen", metavar="HOST:PORT", help="SMTP address (default relay.listen; port 0 = any)."
)
@click.option(
    "--mode", type=click.Choice(["capture", "deliver", "forward"]), help="What to do with mail."
)
@click.option("--storage", "storage_dir", metavar="DIR", help="Storage folder (relay.storage_dir).")
@click.option("--api-listen", metavar="HOST:PORT", help="HTTP API address; '' turns it off.")
@click.option("--workers", type=int, help="Processes sharing the port with SO_REUSEPORT.")
@click.option("--require-auth/--no-require-auth", default=None, help="Refuse mail without AUTH.")
@click.option(
    "--tls", type=click.Choice(["generate", "files", "site", "off"]), help="STARTTLS certificate."
)
@click.option("--tls-listen", metavar="HOST:PORT", help="Also listen with implicit TLS here.")
@click.option("--fault", "faults", multiple=True, metavar="RULE", help="Fault rule (repeatable).")
@click.option("--fault-seed", type=int, help="Seed for probabilistic fault rules.")
@click.option(
    "--json-log", is_flag=True, default=None, help="Log one JSON object per line on stderr."
)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info"
)
@json_option
def relay_serve(faults: tuple[str, ...], **flags: Any) -> None:
    """Run the relay until SIGTERM or Ctrl-C; print one 'ready' line once it listens."""
    import asyncio

    from mailprov.relay.logs import setup_logging
    from mailprov.relay.options import options_from_settings

    app = app_context()
    overrides = {k: v for k, v in flags.items() if v is not None}
    if faults:
        overrides["faults"] = [*app.settings.relay.faults, *faults]
    options = options_from_settings(app.settings, **overrides)
    setup_logging(options)
    asyncio.run(_serve(options, click.get_current_context()))


async def _serve(options: Any, ctx: click.Context) -> None:
    import asyncio
    import signal

    from mailprov.relay.faults import FaultSet
    from mailprov.relay.server import RelayServer

    FaultSet.from_specs(options.faults)  # a bad rule fails before anything listens
    server = RelayServer(options)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    info = server.describe()
    emit(
        ctx,
        {"ready": True, **info},
        f"relay ready: smtp {info['smtp']} mode {info['mode']} workers {info['workers']}"
        + (f" api {info['api']}" if info["api"] else ""),
    )
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await server.stop()


def _query(**given: Any) -> Any:
    from mailprov.relay.storage import Query

    return Query(**{k: v for k, v in given.items() if v is not None})


@relay.command("messages")
@click.option("--mailbox", cls=Renamed, old=("--to",), metavar="ADDRESS", help="Only this mailbox.")
@click.option("--from", "sender", metavar="TEXT", help="Sender contains TEXT.")
@click.option("--subject", metavar="TEXT", help="Subject contains TEXT.")
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=100,
    show_default=True,
    help="Messages per page.",
)
@click.option(
    "--before", type=click.IntRange(1), metavar="SEQ", help="The page after one that ended at SEQ."
)
@click.option("--all", "all_pages", is_flag=True, help="Every matching message, page after page.")
@storage_option
@json_option
def relay_messages(
    mailbox: str | None,
    sender: str | None,
    subject: str | None,
    limit: int,
    before: int | None,
    all_pages: bool,
    storage: str | None,
) -> None:
    """List captured messages, newest first, a page at a time (with the total).

    The next page is --before the last SEQ shown (the JSON's "next_before");
    --all walks every page.
    """
    store = _storage(storage)
    query = _query(mailbox=mailbox, sender=sender, subject=subject, limit=limit, before_seq=before)
    page = store.page(query)
    found = list(page.messages)
    while all_pages and page.next_before is not None:
        page = store.page(_query(**{**query.__dict__, "before_seq": page.next_before}))
        found += page.messages
    total, exact, after = page.total, page.total_exact, page.next_before
    if all_pages:
        total, exact = len(found), True
    ctx = click.get_current_context()
    rows = [
        [m.seq, m.id, m.to_json()["received_at"], m.sender, ",".join(m.recipients), m.subject]
        for m in found
    ]
    data = {
        "messages": [m.to_json() for m in found],
        "count": len(found),
        "total": total,
        "total_exact": exact,
        "next_before": after,
    }
    table(ctx, data, ["SEQ", "ID", "RECEIVED", "FROM", "TO", "SUBJECT"], rows)
    if not app_context().json and found:
        more = f"; next page: --before {after}" if after is not None else ""
        click.echo(f"{len(found)} of {total:,}{'' if exact else '+'} message(s){more}", err=True)


@relay.command("show")
@click.argument("message_id")
@click.option("--raw", is_flag=True, help="Print the message exactly as received.")
@storage_option
@json_option
def relay_show(message_id: str, raw: bool, storage: str | None) -> None:
    """Show one message: summary, headers and text parts (or --raw)."""
    from mailprov.relay.storage.mailbox import message_detail

    store = _storage(storage)
    found = store.get(message_id)
    data = store.raw(message_id)
    ctx = click.get_current_context()
    if raw and not app_context().json:
        sys.stdout.buffer.write(data)
        return
    detail = {**found.to_json(), **message_detail(data)}
    if raw:
        detail["raw"] = data.decode("utf-8", "replace")
    lines = [f"{k}: {v}" for k, v in detail["headers"]]
    for part in detail["parts"]:
        lines.append(f"\n--- part {part['index']} {part['content_type']} ({part['size']} bytes)")
        if "text" in part:
            lines.append(part["text"].rstrip())
    emit(ctx, detail, "\n".join(lines))


@relay.command("wait")
@click.option(
    "--mailbox",
    cls=Renamed,
    old=("--to",),
    metavar="ADDRESS",
    help="A message for this mailbox.",
)
@click.option("--from", "sender", metavar="TEXT", help="Sender contains TEXT.")
@click.option("--subject", metavar="TEXT", help="Subject contains TEXT.")
@click.option("--timeout", type=click.FloatRange(0, 3600), default=10.0, show_default=True)
@storage_option
@json_option
def relay_wait(
    mailbox: str | None,
    sender: str | None,
    subject: str | None,
    timeout: float,
    storage: str | None,
) -> None:
    """Wait until a matching message is stored (one already there counts); print it."""
    import time

    from mailprov.errors import WaitTimedOut

    store = _storage(storage)
    query = _query(mailbox=mailbox, sender=sender, subject=subject, limit=1, newest_first=False)
    deadline = time.monotonic() + timeout
    # Each look covers only what arrived since the last one (after_seq), never all again.
    seen = 0
    while True:
        newest = store.last_seq()
        if found := store.search(_query(**{**query.__dict__, "after_seq": seen})):
            break
        seen = newest
        if time.monotonic() >= deadline:
            raise WaitTimedOut(f"no matching message arrived within {timeout:g} s")
        time.sleep(0.05)
    message = found[0]
    emit(
        click.get_current_context(),
        {"message": message.to_json()},
        f"{message.id}\t{message.sender}\t{','.join(message.recipients)}\t{message.subject}",
    )


@relay.command("purge")
@click.option("--mailbox", metavar="ADDRESS", help="Only this mailbox's messages.")
@click.option("--dry-run", is_flag=True, help="Say how many would go; delete nothing.")
@storage_option
@json_option
def relay_purge(mailbox: str | None, dry_run: bool, storage: str | None) -> None:
    """Delete captured messages (all, or one mailbox's)."""
    store = _storage(storage)
    if dry_run:
        count = store.count(mailbox)
        emit(
            click.get_current_context(),
            {"changed": False, "would_delete": count},
            f"would delete {count} message(s)",
        )
        return
    deleted = store.purge(mailbox)
    emit(
        click.get_current_context(),
        {"changed": deleted > 0, "deleted": deleted},
        f"deleted {deleted} message(s)",
    )
