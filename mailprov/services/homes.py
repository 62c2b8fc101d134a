"""Home backends: which backend stores a new mailbox's mail, and a domain's default.

A site on several hosts lists its backends in ``[cluster] backends``; the store keeps only
their names (``mailboxes.backend``, ``domains.backend``; NULL: one level up). The effective
home of a mailbox is :func:`mailprov.rules.backends.home_backend` of the three levels.

A new mailbox gets its home written into its row (its own, the domain's or the site's
default at that moment), so that a later change of the domain's or the site's default
never re-homes existing mail: moving a mailbox is ``mailbox move``, which copies it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import and_, func, select, update

from mailprov.errors import InUse, NotFound
from mailprov.model import Domain
from mailprov.rules.addresses import normalise_domain
from mailprov.rules.backends import home_backend, known_backend
from mailprov.services.accounts import get_domain
from mailprov.store import audit
from mailprov.store.schema import domains, mailboxes

if TYPE_CHECKING:
    from mailprov.services.accounts import Actor
    from mailprov.settings.sections import ClusterSection
    from mailprov.store import Store


def checked_backend(name: str, cluster: ClusterSection) -> str:
    """``name`` if it is one of the site's backends (UnknownBackend otherwise)."""
    return known_backend(name, list(cluster.backend_hosts()))


def new_home(store: Store, domain: str, given: str | None, cluster: ClusterSection) -> str | None:
    """The home of a new mailbox of ``domain``: ``given`` (checked), else the domain's, else
    the site's default; None on a one-host site (role ``all``, no backends).

    Raises:
        UnknownBackend: ``given`` is not one of the site's backends, or the site has none.
    """
    if given is not None:
        return checked_backend(given, cluster)
    if not cluster.backends:
        return None
    with store.read() as conn:
        own = conn.execute(
            select(domains.c.backend).where(domains.c.name == normalise_domain(domain))
        ).scalar_one_or_none()
    return home_backend(None, own, cluster.default_home())


def set_domain_backend(
    store: Store,
    name: str,
    backend: str | None,
    cluster: ClusterSection,
    *,
    actor: Actor,
) -> tuple[Domain, bool]:
    """Set (or with None clear) the home of ``name``'s new mailboxes; returns the domain
    and whether it changed.

    Raises:
        UnknownBackend: ``backend`` is not one of the site's backends.
        InUse: mailboxes of the domain inherit their home from it (made before the site
            had backends, or by a path that leaves it unset): the change would re-home
            them without their mail.
    """
    if backend is not None:
        checked_backend(backend, cluster)
    a_label = normalise_domain(name)
    with store.begin() as conn:
        row = conn.execute(select(domains).where(domains.c.name == a_label)).first()
        if row is None:
            raise NotFound(
                f"domain {a_label} does not exist", hint="list domains with 'mailprov domain list'"
            )
        changed = row.backend != backend
        default = cluster.default_home()
        before = home_backend(None, row.backend, default)
        after = home_backend(None, backend, default)
        inheriting = conn.execute(
            select(func.count()).where(
                and_(mailboxes.c.domain_id == row.id, mailboxes.c.backend.is_(None))
            )
        ).scalar_one()
        if changed and inheriting and before != after:
            raise InUse(
                f"{inheriting} mailbox(es) of {a_label} take their home from the domain: "
                f"their mail is on {before or 'this host'}, and this change would send their "
                f"sessions and mail to {after}",
                hint="move those mailboxes first ('mailprov mailbox move'), or keep the "
                "domain's backend",
                inheriting=inheriting,
            )
        if changed:
            conn.execute(update(domains).where(domains.c.id == row.id).values(backend=backend))
            audit.append(
                conn,
                at=actor.now,
                actor=actor.name,
                action="domain.set",
                target=a_label,
                details={"backend": {"before": row.backend, "after": backend}},
            )
    found = get_domain(store, a_label)  # (--dry-run rolled the change back: say what it made)
    return Domain(
        found.name, found.active, found.created_at, found.mailboxes, found.aliases, backend
    ), changed
