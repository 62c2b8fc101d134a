"""Declared mailbox state for configuration management: `mailbox add --exist-ok`, `mailbox set`.

``existing_mailbox`` tells whether a mailbox already exists as declared (so a
re-run changes nothing); ``update_mailbox`` changes only the attributes that
differ, in one transaction with one audit record. Neither reads nor writes a
password.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from mailprov.errors import Conflict
from mailprov.rules.addresses import clean_name, parse_address
from mailprov.rules.sizes import format_size
from mailprov.rules.spam import DEFAULT, Default
from mailprov.services.accounts import mailbox_row, taken_error
from mailprov.store import audit
from mailprov.store.schema import addresses, mailboxes

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mailprov.services.accounts import Actor
    from mailprov.store import Store

#: The attributes ``mailbox set`` changes: option name -> column.
COLUMNS = {
    "name": "display_name",
    "quota_bytes": "quota_bytes",
    "active": "active",
    # The owner's spam settings (NULL: the domain's default); DEFAULT clears one.
    "spam_threshold": "spam_threshold",
    "spam_to_junk": "spam_to_junk",
}


@dataclass(frozen=True)
class Change:
    """One attribute's value before and after."""

    before: Any
    after: Any

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"before": self.before, "after": self.after}


def _differences(row: Any, wanted: dict[str, Any]) -> dict[str, Change]:
    found: dict[str, Change] = {}
    for attr, value in wanted.items():
        if value is None:
            continue
        after = None if value == DEFAULT else value  # NULL: the default one level up
        current = getattr(row, COLUMNS[attr])
        if attr in ("active", "spam_to_junk") and current is not None:
            current = bool(current)
        if current != after:
            found[attr] = Change(current, after)
    return found


def _describe(changes: dict[str, Change]) -> str:
    def show(attr: str, value: Any) -> str:
        return format_size(value) if attr == "quota_bytes" else repr(value)

    return ", ".join(
        f"{attr} {show(attr, c.before)} (given: {show(attr, c.after)})"
        for attr, c in changes.items()
    )


def existing_mailbox(
    store: Store, raw: str, *, display_name: str | None, quota_bytes: int | None
) -> bool:
    """Whether mailbox ``raw`` exists with the given attributes (None = not compared).

    Returns False when the address is free.

    Raises:
        AddressTaken: the address is an alias.
        Conflict: the mailbox exists with other attributes (they are named).
    """
    address = parse_address(raw)
    wanted = {
        "name": None if display_name is None else clean_name(display_name),
        "quota_bytes": quota_bytes,
    }
    with store.read() as conn:
        row = conn.execute(select(mailboxes).where(mailboxes.c.address == str(address))).first()
        if row is None:
            if _kind(conn, str(address)) is not None:
                raise taken_error(conn, address)
            return False
    differing = _differences(row, wanted)
    if differing:
        raise Conflict(
            f"mailbox {address} exists with other attributes: {_describe(differing)}",
            hint=f"change them with 'mailprov mailbox set {address}'",
            differing={k: c.to_json() for k, c in differing.items()},
        )
    return True


def _kind(conn: Connection, address: str) -> str | None:
    kind = conn.execute(
        select(addresses.c.kind).where(addresses.c.address == address)
    ).scalar_one_or_none()
    return None if kind is None else str(kind)


def update_mailbox(
    store: Store,
    raw: str,
    *,
    actor: Actor,
    display_name: str | None = None,
    quota_bytes: int | None = None,
    active: bool | None = None,
    spam_threshold: float | Default | None = None,
    spam_to_junk: bool | Default | None = None,
    dry_run: bool = False,
) -> tuple[str, dict[str, Change]]:
    """Set the given attributes (None = leave alone; DEFAULT clears a spam setting, so the
    domain's applies); returns the address and what differed.

    A spam threshold must have passed :func:`mailprov.services.spam.checked_threshold`.

    Only differing attributes are written, with one ``mailbox.set`` audit record naming
    them; nothing is written when none differs or with ``dry_run``.
    """
    address = str(parse_address(raw))
    wanted = {
        "name": None if display_name is None else clean_name(display_name),
        "quota_bytes": quota_bytes,
        "active": active,
        "spam_threshold": spam_threshold,
        "spam_to_junk": spam_to_junk,
    }
    if dry_run:
        with store.read() as conn:
            return address, _differences(mailbox_row(conn, address), wanted)
    with store.begin() as conn:
        changes = _differences(mailbox_row(conn, address), wanted)
        write_changes(conn, address, changes, actor=actor)
    return address, changes


def write_changes(
    conn: Connection, address: str, changes: dict[str, Change], *, actor: Actor
) -> None:
    """Write ``changes`` (attribute -> before/after, keys of :data:`COLUMNS`) of mailbox
    ``address`` in the caller's transaction, with one ``mailbox.set`` audit record naming them;
    nothing when there are none.
    """
    if not changes:
        return
    conn.execute(
        update(mailboxes)
        .where(mailboxes.c.address == address)
        .values(updated_at=actor.now, **{COLUMNS[a]: c.after for a, c in changes.items()})
    )
    audit.append(
        conn,
        at=actor.now,
        actor=actor.name,
        action="mailbox.set",
        target=address,
        details={a: c.to_json() for a, c in changes.items()},
    )
