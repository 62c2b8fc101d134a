"""The owner's spam settings: read them at each level, resolve them, change them.

A mailbox's and a domain's own values live in the store (``spam_threshold``,
``spam_to_junk``; NULL = take the default one level up), the site's in ``[rspamd]``.
:func:`mailprov.rules.spam.resolve` gives the effective values; Dovecot's ``user_query``
reads the same columns at every delivery (``mailprov.render.spam``). Changes go through
the writers the admin commands use, each with its audit record (``mailbox.set``,
``domain.set``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from mailprov.rules.addresses import normalise_domain, parse_address
from mailprov.rules.spam import DEFAULT, Default, SpamLevel, SpamSettings, check_threshold, resolve
from mailprov.services.accounts import domain_row, mailbox_row
from mailprov.services.mailbox_state import Change, update_mailbox
from mailprov.store import audit
from mailprov.store.schema import domains

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mailprov.services.accounts import Actor
    from mailprov.settings import SiteConfig
    from mailprov.store import Store


@dataclass(frozen=True)
class MailboxSpam:
    """A mailbox's own spam settings, its domain's, and the effective ones."""

    address: str
    own: SpamLevel
    domain: SpamLevel
    site: SpamLevel
    effective: SpamSettings
    #: rspamd runs ([rspamd] enabled): only then is anything scored and filed.
    active: bool
    reject_score: float

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (the API's answer)."""
        return {
            "address": self.address,
            **self.effective.to_json(),
            "own": _level(self.own),
            "domain": _level(self.domain),
            "site": _level(self.site),
            "active": self.active,
            "reject_score": self.reject_score,
        }


def _level(level: SpamLevel) -> dict[str, Any]:
    return {"threshold": level.threshold, "to_junk": level.to_junk}


def _row_level(row: Any) -> SpamLevel:
    threshold, to_junk = row.spam_threshold, row.spam_to_junk
    return SpamLevel(
        None if threshold is None else float(threshold),
        None if to_junk is None else bool(to_junk),
    )


def site_level(settings: SiteConfig) -> SpamLevel:
    """The site's defaults ([rspamd] spam_threshold, spam_to_junk)."""
    return SpamLevel(settings.rspamd.spam_threshold, settings.rspamd.spam_to_junk)


def checked_threshold(settings: SiteConfig, value: object) -> float:
    """A threshold an owner or admin gave, checked (above 0, two decimals, below reject).

    Raises:
        InvalidValue: what is wrong with it.
    """
    return check_threshold(value, below=settings.rspamd.reject_score)


def _levels(conn: Connection, address: str) -> tuple[SpamLevel, SpamLevel]:
    row = mailbox_row(conn, address)
    domain = conn.execute(
        select(domains.c.spam_threshold, domains.c.spam_to_junk).where(
            domains.c.id == row.domain_id
        )
    ).one()
    return _row_level(row), _row_level(domain)


def mailbox_spam(store: Store, settings: SiteConfig, raw: str) -> MailboxSpam:
    """The spam settings of mailbox ``raw`` at every level, and the effective ones.

    Raises:
        NotFound: there is no such mailbox.
    """
    address = str(parse_address(raw))
    with store.read() as conn:
        own, domain = _levels(conn, address)
    site = site_level(settings)
    return MailboxSpam(
        address,
        own,
        domain,
        site,
        resolve(own, domain, site),
        settings.rspamd.enabled,
        settings.rspamd.reject_score,
    )


def set_own(
    store: Store,
    settings: SiteConfig,
    raw: str,
    *,
    threshold: float | None,
    to_junk: bool | None,
    actor: Actor,
) -> tuple[MailboxSpam, dict[str, Change]]:
    """Make the mailbox's own values these (None: take the domain's); the owner's API.

    Raises:
        InvalidValue: the threshold is out of range.
    """
    checked = None if threshold is None else checked_threshold(settings, threshold)
    _, changes = update_mailbox(
        store,
        raw,
        actor=actor,
        spam_threshold=DEFAULT if checked is None else checked,
        spam_to_junk=DEFAULT if to_junk is None else to_junk,
    )
    return mailbox_spam(store, settings, raw), changes


# -- domains -------------------------------------------------------------------------


@dataclass(frozen=True)
class DomainSpam:
    """A domain's own defaults for its mailboxes, and what its mailboxes get from them."""

    domain: str
    own: SpamLevel
    effective: SpamSettings

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"own": _level(self.own), **self.effective.to_json()}


def domain_spam(store: Store, settings: SiteConfig, name: str) -> DomainSpam:
    """Domain ``name``'s spam defaults (what a mailbox without its own values gets).

    Raises:
        NotFound: the domain is not served here.
    """
    a_label = normalise_domain(name)
    with store.read() as conn:
        own = _row_level(domain_row(conn, a_label))
    return DomainSpam(a_label, own, resolve(SpamLevel(), own, site_level(settings)))


def update_domain(
    store: Store,
    name: str,
    *,
    actor: Actor,
    spam_threshold: float | Default | None = None,
    spam_to_junk: bool | Default | None = None,
    dry_run: bool = False,
) -> tuple[str, dict[str, Change]]:
    """Set domain ``name``'s spam defaults (None = leave alone, DEFAULT = the site's);
    returns its A-label and what differed. Only differing values are written, with one
    ``domain.set`` audit record; nothing with ``dry_run``. A threshold must have passed
    :func:`checked_threshold`.

    Raises:
        NotFound: the domain is not served here.
    """
    a_label = normalise_domain(name)
    wanted = {"spam_threshold": spam_threshold, "spam_to_junk": spam_to_junk}
    with store.read() if dry_run else store.begin() as conn:
        row = domain_row(conn, a_label)
        before = {"spam_threshold": row.spam_threshold, "spam_to_junk": row.spam_to_junk}
        if before["spam_to_junk"] is not None:
            before["spam_to_junk"] = bool(before["spam_to_junk"])
        changes = {}
        for attr, value in wanted.items():
            after = None if value == DEFAULT else value
            if value is not None and before[attr] != after:
                changes[attr] = Change(before[attr], after)
        if changes and not dry_run:
            write_domain_changes(conn, a_label, changes, actor=actor)
    return a_label, changes


def write_domain_changes(
    conn: Connection, a_label: str, changes: dict[str, Change], *, actor: Actor
) -> None:
    """Write domain spam ``changes`` in the caller's transaction, with one ``domain.set``
    audit record; nothing when there are none."""
    if not changes:
        return
    conn.execute(
        update(domains)
        .where(domains.c.name == a_label)
        .values(**{a: c.after for a, c in changes.items()})
    )
    audit.append(
        conn,
        at=actor.now,
        actor=actor.name,
        action="domain.set",
        target=a_label,
        details={a: c.to_json() for a, c in changes.items()},
    )
