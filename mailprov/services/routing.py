"""Where mail to the store's addresses can go: reports for the account commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from mailprov.rules.addresses import parse_address
from mailprov.rules.routing import deliverable, reaching
from mailprov.store.schema import alias_destinations, aliases, domains, mailboxes

if TYPE_CHECKING:
    from mailprov.store import Store


def undeliverable_aliases(store: Store, via: str) -> list[str]:
    """The enabled aliases that reach mailbox ``via`` and now lead to no mailbox or forward.

    Postfix refuses mail to these at RCPT time (the alias maps return only deliverable
    destinations), so the list says which addresses a disable has turned off.
    """
    address = str(parse_address(via))
    graph: dict[str, list[str]] = {}
    with store.read() as conn:
        for alias, dest in conn.execute(
            select(aliases.c.address, alias_destinations.c.destination)
            .join(alias_destinations, alias_destinations.c.alias_id == aliases.c.id)
            .where(aliases.c.active)
        ):
            graph.setdefault(alias, []).append(dest)
        live_boxes = set(
            conn.execute(
                select(mailboxes.c.address)
                .join(domains, domains.c.id == mailboxes.c.domain_id)
                .where(mailboxes.c.active, domains.c.active)
            ).scalars()
        )
        local = set(conn.execute(select(domains.c.name)).scalars())
    live = deliverable(graph, live_boxes, local)
    return sorted(reaching(graph, address) - live)
