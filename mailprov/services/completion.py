"""Names a shell completes: domains, mailboxes and aliases that start with what was typed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from sqlalchemy import select

from mailprov.store.schema import addresses, domains

if TYPE_CHECKING:
    from mailprov.store import Store

#: At most this many candidates: a shell shows no more usefully.
LIMIT = 200


def _prefix(text: str) -> str:
    """A LIKE pattern matching ``text`` literally at the start."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def names(store: Store, kind: Literal["domain", "mailbox", "alias"], typed: str) -> list[str]:
    """Existing names of ``kind`` starting with ``typed`` (in order, at most LIMIT)."""
    if kind == "domain":
        query = select(domains.c.name).where(domains.c.name.like(_prefix(typed), escape="\\"))
        query = query.order_by(domains.c.name)
    else:
        column = addresses.c.address
        query = (
            select(column)
            .where(addresses.c.kind == kind, column.like(_prefix(typed), escape="\\"))
            .order_by(column)
        )
    with store.read() as conn:
        return [str(row[0]) for row in conn.execute(query.limit(LIMIT))]
