"""Domains, mailboxes and aliases: the use cases behind ``mailprov domain|mailbox|alias``.

Every function takes the store, the acting user and ``now`` (Unix seconds) as
arguments, returns values from :mod:`mailprov.model`, raises
:class:`~mailprov.errors.MailprovError` leaves, and writes its audit record in
the same transaction as its change. Nothing here prints or reads the environment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from mailprov.errors import (
    AddressTaken,
    AlreadyExists,
    InUse,
    InvalidAddress,
    NotFound,
    UnknownDomain,
)
from mailprov.model import AddressKind, Alias, Domain, Mailbox, Secret
from mailprov.rules import hashing, passwords
from mailprov.rules.addresses import (
    Address,
    clean_name,
    normalise_domain,
    parse_address,
    parse_destination,
    suggest,
)
from mailprov.rules.backends import home_backend, home_origin
from mailprov.store import audit
from mailprov.store.schema import addresses, alias_destinations, aliases, domains, mailboxes

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mailprov.settings import PasswordsSection
    from mailprov.store import Store

SUGGESTIONS = 5
DAY = 86_400


@dataclass(frozen=True)
class Actor:
    """Who does a change, and when: recorded in the audit log."""

    name: str
    now: int


# -- domains -------------------------------------------------------------------


def _domain_row(conn: Connection, name: str) -> Any:
    row = conn.execute(select(domains).where(domains.c.name == name)).first()
    if row is None:
        raise NotFound(
            f"domain {name} does not exist", hint="list domains with 'mailprov domain list'"
        )
    return row


def domain_row(conn: Connection, a_label: str) -> Any:
    """The ``domains`` row of ``a_label``; NotFound naming it when there is none."""
    return _domain_row(conn, a_label)


def insert_domain(
    conn: Connection, a_label: str, *, actor: Actor, backend: str | None = None
) -> Domain:
    """Add domain ``a_label`` (normalised) in the caller's transaction, with its audit record.

    ``backend``: the home of its new mailboxes, checked by the caller (None: the site's).
    """
    conn.execute(
        insert(domains).values(name=a_label, active=True, created_at=actor.now, backend=backend)
    )
    audit.append(
        conn,
        at=actor.now,
        actor=actor.name,
        action="domain.add",
        target=a_label,
        details={"backend": backend} if backend else None,
    )
    return Domain(a_label, active=True, created_at=actor.now, backend=backend)


def add_domain(store: Store, name: str, *, actor: Actor, backend: str | None = None) -> Domain:
    """Add a domain to serve. Refuses a duplicate. ``backend`` as :func:`insert_domain`."""
    a_label = normalise_domain(name)
    try:
        with store.begin() as conn:
            insert_domain(conn, a_label, actor=actor, backend=backend)
    except IntegrityError:
        raise AlreadyExists(
            f"domain {a_label} already exists", hint="see it with 'mailprov domain show'"
        ) from None
    return Domain(a_label, active=True, created_at=actor.now, backend=backend)


def _counts(conn: Connection, domain_id: int | None = None) -> dict[tuple[int, str], int]:
    query = select(addresses.c.domain_id, addresses.c.kind, func.count()).group_by(
        addresses.c.domain_id, addresses.c.kind
    )
    if domain_id is not None:
        query = query.where(addresses.c.domain_id == domain_id)
    return {(row[0], row[1]): row[2] for row in conn.execute(query)}


def list_domains(store: Store) -> list[Domain]:
    """Every domain with its mailbox and alias counts, by name."""
    with store.read() as conn:
        counts = _counts(conn)
        rows = conn.execute(select(domains).order_by(domains.c.name)).all()
    return [
        Domain(
            r.name,
            bool(r.active),
            r.created_at,
            counts.get((r.id, "mailbox"), 0),
            counts.get((r.id, "alias"), 0),
            r.backend,
        )
        for r in rows
    ]


def domain_names(store: Store, *, active_only: bool = False) -> list[str]:
    """Every domain's name (A-label), in order: what callers need that do not show counts.

    ``active_only``: only the domains that take new mailboxes (the portal's choice).
    """
    with store.read() as conn:
        query = select(domains.c.name).order_by(domains.c.name)
        if active_only:
            query = query.where(domains.c.active)
        return [str(n) for n in conn.execute(query).scalars()]


def get_domain(store: Store, name: str) -> Domain:
    """One domain with its counts."""
    a_label = normalise_domain(name)
    with store.read() as conn:
        row = _domain_row(conn, a_label)
        counts = _counts(conn, row.id)
    return Domain(
        row.name,
        bool(row.active),
        row.created_at,
        counts.get((row.id, "mailbox"), 0),
        counts.get((row.id, "alias"), 0),
        row.backend,
    )


def remove_domain(store: Store, name: str, *, actor: Actor) -> None:
    """Remove a domain that has no mailboxes and no aliases left."""
    a_label = normalise_domain(name)
    with store.begin() as conn:
        delete_domain(conn, a_label, actor=actor)


def delete_domain(conn: Connection, a_label: str, *, actor: Actor) -> None:
    """``remove_domain`` in the caller's transaction (``a_label`` normalised)."""
    row = _domain_row(conn, a_label)
    counts = _counts(conn, row.id)
    used = sum(counts.values())
    if used:
        raise InUse(
            f"domain {a_label} still has {counts.get((row.id, 'mailbox'), 0)} mailbox(es) "
            f"and {counts.get((row.id, 'alias'), 0)} alias(es)",
            hint="remove them first ('mailprov mailbox list --domain', 'mailprov alias list')",
        )
    conn.execute(delete(domains).where(domains.c.id == row.id))
    audit.append(conn, at=actor.now, actor=actor.name, action="domain.remove", target=a_label)


# -- the address namespace -----------------------------------------------------


def _domain_id_for(conn: Connection, address: Address) -> int:
    domain_id = conn.execute(
        select(domains.c.id).where(domains.c.name == address.domain)
    ).scalar_one_or_none()
    if domain_id is None:
        raise UnknownDomain(f"{address.domain} is not a domain served here ({address})")
    return int(domain_id)


def free_suggestions(conn: Connection, address: Address, count: int = SUGGESTIONS) -> list[str]:
    """Up to ``count`` free alternatives to a taken address, checked in the store."""
    candidates = [str(c) for _, c in zip(range(count * 8), suggest(address), strict=False)]
    taken = set(
        conn.execute(
            select(addresses.c.address).where(addresses.c.address.in_(candidates))
        ).scalars()
    )
    return [c for c in candidates if c not in taken][:count]


def taken_error(conn: Connection, address: Address) -> AddressTaken:
    """The address-taken error for ``address``: what holds it, and free suggestions."""
    kind = conn.execute(
        select(addresses.c.kind).where(addresses.c.address == str(address))
    ).scalar_one_or_none()
    what = f"an {kind}" if kind == "alias" else f"a {kind or 'mailbox'}"
    return AddressTaken(
        f"{address} is already taken by {what}",
        suggestions=free_suggestions(conn, address),
    )


def check_available(store: Store, raw: str, *, for_alias: bool = False) -> Address:
    """Validate an address for a new mailbox/alias and check that it is free.

    Raises:
        InvalidAddress: a rule is broken (role names are kept for aliases).
        UnknownDomain: the domain is not served here.
        AddressTaken: with ``suggestions``.
    """
    address = parse_address(raw, allow_catch_all=for_alias)
    if address.is_role and not for_alias:
        raise InvalidAddress(
            f"{address} is a role address, kept for aliases (RFC 2142)",
            hint=f"make it an alias: 'mailprov alias add {address} DESTINATION'",
        )
    with store.read() as conn:
        _domain_id_for(conn, address)
        if conn.execute(
            select(addresses.c.address).where(addresses.c.address == str(address))
        ).first():
            raise taken_error(conn, address)
    return address


def _claim(conn: Connection, address: Address, kind: str, now: int) -> int:
    """Insert the address into the namespace (the database refuses a second claim)."""
    domain_id = _domain_id_for(conn, address)
    conn.execute(
        insert(addresses).values(
            address=str(address), domain_id=domain_id, kind=kind, created_at=now
        )
    )
    return domain_id


# -- mailboxes -------------------------------------------------------------------


def _mailbox(
    row: Any,
    *,
    now: int,
    max_age_days: int | None,
    domain_backend: str | None = None,
    default_backend: str = "",
) -> Mailbox:
    stale = bool(max_age_days) and now - row.password_changed_at > (max_age_days or 0) * DAY
    return Mailbox(
        address=row.address,
        display_name=row.display_name,
        quota_bytes=row.quota_bytes,
        active=bool(row.active),
        must_change=bool(row.must_change),
        password_changed_at=row.password_changed_at,
        temp_password_expires_at=row.temp_password_expires_at,
        created_at=row.created_at,
        password_stale=stale,
        backend=row.backend,
        home=home_backend(row.backend, domain_backend, default_backend),
        home_from=home_origin(row.backend, domain_backend),
    )


def effective_max_age(settings: PasswordsSection) -> int | None:
    """The password age (days) after which a password is stale, or None for never."""
    policy = passwords.get_policy(settings.policy)
    return settings.max_age_days or policy.max_age_days


@dataclass(frozen=True)
class NewPassword:
    """A password about to be set: its hash, and the clear text only if it was generated."""

    hash: str
    generated: Secret | None


def prepare_password(
    settings: PasswordsSection,
    address: Address,
    *,
    password: Secret | None = None,
    password_hash: str | None = None,
) -> NewPassword:
    """Check a given password against the policy (or generate one) and hash it.

    Exactly one of ``password`` and ``password_hash`` may be given; with neither, a
    password is generated and returned once in ``generated``.
    """
    if password_hash is not None:
        hashing.split_hash(password_hash)
        return NewPassword(password_hash, None)
    policy = passwords.get_policy(settings.policy, min_length=settings.min_length or None)
    if password is None:
        clear = passwords.generate_password(policy, settings.generated_length)
        return NewPassword(hashing.hash_password(clear, settings.scheme), Secret(clear))
    clear = password.reveal()
    passwords.check_password(clear, policy, context=(address.local,))
    return NewPassword(hashing.hash_password(clear, settings.scheme), None)


@dataclass(frozen=True)
class NewMailbox:
    """One mailbox to insert: the row's values, checked by the caller (``clean_name`` etc.)."""

    address: Address
    password_hash: str
    display_name: str = ""
    quota_bytes: int = 0
    active: bool = True
    temp_expires_at: int | None = None  # a temporary password (must be changed) expires then
    details: Mapping[str, Any] | None = None  # the audit record's details
    backend: str | None = None  # its home backend, checked (None: the domain's or the site's)


def insert_mailboxes(conn: Connection, new: Sequence[NewMailbox], *, actor: Actor) -> None:
    """The one mailbox writer: claim each address, insert the rows and one ``mailbox.add``
    audit record each, in the caller's transaction (three statements for any number).

    Raises:
        UnknownDomain: a domain is not served here.
        IntegrityError: an address is taken (the caller turns it into its error).
    """
    if not new:
        return
    wanted = {m.address.domain for m in new}
    domain_ids = dict(
        conn.execute(select(domains.c.name, domains.c.id).where(domains.c.name.in_(wanted))).all()
    )
    now = actor.now
    address_rows, mailbox_rows, audit_rows = [], [], []
    for m in new:
        domain_id = domain_ids.get(m.address.domain)
        if domain_id is None:
            raise UnknownDomain(f"{m.address.domain} is not a domain served here ({m.address})")
        address = str(m.address)
        address_rows.append(
            {
                "address": address,
                "domain_id": domain_id,
                "kind": AddressKind.MAILBOX,
                "created_at": now,
            }
        )
        mailbox_rows.append(
            {
                "address": address,
                "domain_id": domain_id,
                "local_part": m.address.local,
                "domain": m.address.domain,
                "display_name": m.display_name,
                "password_hash": m.password_hash,
                "quota_bytes": m.quota_bytes,
                "active": m.active,
                "must_change": m.temp_expires_at is not None,
                "password_changed_at": now,
                "temp_password_expires_at": m.temp_expires_at,
                "created_at": now,
                "updated_at": now,
                "backend": m.backend,
            }
        )
        audit_rows.append(
            {
                "at": now,
                "actor": actor.name,
                "action": "mailbox.add",
                "target": address,
                "details": m.details,
            }
        )
    conn.execute(insert(addresses), address_rows)
    conn.execute(insert(mailboxes), mailbox_rows)
    audit.append_many(conn, audit_rows)


def add_mailbox(
    store: Store,
    raw_address: str,
    new_password: NewPassword,
    *,
    actor: Actor,
    display_name: str = "",
    quota_bytes: int = 0,
    temporary_hours: int | None = None,
    backend: str | None = None,
) -> Mailbox:
    """Create a mailbox. ``temporary_hours`` makes the password temporary (must be changed);
    ``backend`` is its home, checked by the caller (:func:`mailprov.services.homes.new_home`).

    Raises:
        AddressTaken: the address is a mailbox or alias already (with suggestions).
    """
    address = parse_address(raw_address)
    name = clean_name(display_name)
    expires = actor.now + temporary_hours * 3600 if temporary_hours else None
    row = NewMailbox(
        address,
        new_password.hash,
        name,
        quota_bytes,
        temp_expires_at=expires,
        details={"quota_bytes": quota_bytes, "temporary": expires is not None}
        | ({"backend": backend} if backend else {}),
        backend=backend,
    )
    try:
        with store.begin() as conn:
            insert_mailboxes(conn, [row], actor=actor)
    except IntegrityError:
        with store.read() as conn:
            raise taken_error(conn, address) from None
    return Mailbox(
        str(address),
        name,
        quota_bytes,
        True,
        expires is not None,
        actor.now,
        expires,
        actor.now,
        backend=backend,
        home=backend or "",
        home_from=home_origin(backend, None),
    )


#: Built once with a bind parameter: building a statement per call costs more than the query.
_MAILBOX = select(mailboxes).where(mailboxes.c.address == bindparam("address"))


def mailbox_row(conn: Connection, address: str) -> Any:
    """The ``mailboxes`` row of ``address``; NotFound naming it when there is none."""
    row = conn.execute(_MAILBOX, {"address": address}).first()
    if row is None:
        raise NotFound(
            f"mailbox {address} does not exist", hint="list mailboxes with 'mailprov mailbox list'"
        )
    return row


def get_mailbox(
    store: Store, raw: str, settings: PasswordsSection, *, now: int, default_backend: str = ""
) -> Mailbox:
    """One mailbox; ``default_backend`` is the site's default home
    (``ClusterSection.default_home()``), for the effective home of one that inherits it."""
    address = str(parse_address(raw))
    with store.read() as conn:
        row = mailbox_row(conn, address)
        domain_backend = conn.execute(
            select(domains.c.backend).where(domains.c.id == row.domain_id)
        ).scalar_one_or_none()
    return _mailbox(
        row,
        now=now,
        max_age_days=effective_max_age(settings),
        domain_backend=domain_backend,
        default_backend=default_backend,
    )


def list_mailboxes(
    store: Store,
    settings: PasswordsSection,
    *,
    now: int,
    domain: str | None = None,
    limit: int | None = None,
    after: str | None = None,
    default_backend: str = "",
) -> list[Mailbox]:
    """Mailboxes by address, optionally of one domain; a page: at most ``limit`` after ``after``.

    Paging is by key (the address), so a page costs the same however deep it is.
    ``default_backend``: as :func:`get_mailbox`.
    """
    query = (
        select(mailboxes, domains.c.backend.label("domain_backend"))
        .join(domains, domains.c.id == mailboxes.c.domain_id)
        .order_by(mailboxes.c.address)
    )
    if domain:
        query = query.where(mailboxes.c.domain == normalise_domain(domain))
    if after:
        query = query.where(mailboxes.c.address > after.lower())
    if limit is not None:
        query = query.limit(limit)
    max_age = effective_max_age(settings)
    with store.read() as conn:
        return [
            _mailbox(
                r,
                now=now,
                max_age_days=max_age,
                domain_backend=r.domain_backend,
                default_backend=default_backend,
            )
            for r in conn.execute(query)
        ]


def mailbox_addresses(store: Store) -> list[str]:
    """Every mailbox's address, in order (no other column read)."""
    with store.read() as conn:
        query = select(mailboxes.c.address).order_by(mailboxes.c.address)
        return [str(a) for a in conn.execute(query).scalars()]


def current_hash(store: Store, raw: str) -> str:
    """The stored password hash of a mailbox (for verification only; never shown)."""
    with store.read() as conn:
        return str(mailbox_row(conn, str(parse_address(raw))).password_hash)


def set_password(store: Store, raw: str, new_password: NewPassword, *, actor: Actor) -> None:
    """Replace a mailbox's password; a permanent password clears ``must_change``."""
    address = str(parse_address(raw))
    with store.begin() as conn:
        mailbox_row(conn, address)
        write_password(conn, address, new_password, actor=actor)


def write_password(
    conn: Connection, address: str, new_password: NewPassword, *, actor: Actor
) -> None:
    """``set_password`` in the caller's transaction, for an existing mailbox ``address``."""
    conn.execute(
        update(mailboxes)
        .where(mailboxes.c.address == address)
        .values(
            password_hash=new_password.hash,
            password_changed_at=actor.now,
            must_change=False,
            temp_password_expires_at=None,
            updated_at=actor.now,
        )
    )
    audit.append(
        conn,
        at=actor.now,
        actor=actor.name,
        action="mailbox.passwd",
        target=address,
        details={"generated": new_password.generated is not None},
    )


def set_active(store: Store, raw: str, active: bool, *, actor: Actor) -> bool:
    """Enable or disable a mailbox; returns whether anything changed."""
    address = str(parse_address(raw))
    with store.begin() as conn:
        row = mailbox_row(conn, address)
        if bool(row.active) == active:
            return False
        conn.execute(
            update(mailboxes)
            .where(mailboxes.c.address == address)
            .values(active=active, updated_at=actor.now)
        )
        action = "mailbox.enable" if active else "mailbox.disable"
        audit.append(conn, at=actor.now, actor=actor.name, action=action, target=address)
    return True


def remove_mailbox(store: Store, raw: str, *, actor: Actor, force: bool = False) -> list[str]:
    """Remove a mailbox. Refuses while aliases point at it, unless ``force``.

    With ``force`` the mailbox is dropped from those aliases (an alias left with no
    destination is removed too). Returns the aliases that were changed.
    """
    address = str(parse_address(raw))
    with store.begin() as conn:
        return delete_mailbox(conn, address, actor=actor, force=force)


def delete_mailbox(
    conn: Connection, address: str, *, actor: Actor, force: bool = False
) -> list[str]:
    """``remove_mailbox`` in the caller's transaction (``address`` normalised)."""
    mailbox_row(conn, address)
    pointing = sorted(
        conn.execute(
            select(aliases.c.address)
            .join(alias_destinations, alias_destinations.c.alias_id == aliases.c.id)
            .where(alias_destinations.c.destination == address)
        ).scalars()
    )
    if pointing and not force:
        raise InUse(
            f"mailbox {address} is a destination of {len(pointing)} alias(es): "
            + ", ".join(pointing[:5]),
            hint="remove it from those aliases first, or use --from-aliases to do so",
            aliases=pointing,
        )
    conn.execute(delete(alias_destinations).where(alias_destinations.c.destination == address))
    _drop_empty_aliases(conn, pointing)
    conn.execute(delete(mailboxes).where(mailboxes.c.address == address))
    conn.execute(delete(addresses).where(addresses.c.address == address))
    audit.append(
        conn,
        at=actor.now,
        actor=actor.name,
        action="mailbox.remove",
        target=address,
        details={"aliases_changed": pointing} if pointing else None,
    )
    return pointing


def _drop_empty_aliases(conn: Connection, sources: Iterable[str]) -> None:
    for source in sources:
        alias_id = conn.execute(
            select(aliases.c.id).where(aliases.c.address == source)
        ).scalar_one()
        left = conn.execute(
            select(func.count()).where(alias_destinations.c.alias_id == alias_id)
        ).scalar_one()
        if not left:
            conn.execute(delete(aliases).where(aliases.c.id == alias_id))
            conn.execute(delete(addresses).where(addresses.c.address == source))


# -- aliases ---------------------------------------------------------------------------


def _check_local_destinations(conn: Connection, destinations: Sequence[str]) -> None:
    """A destination in a domain served here must be an existing mailbox or alias."""
    local_domains = set(conn.execute(select(domains.c.name)).scalars())
    local = [d for d in destinations if d.split("@", 1)[1] in local_domains]
    if not local:
        return
    known = set(
        conn.execute(select(addresses.c.address).where(addresses.c.address.in_(local))).scalars()
    )
    missing = [d for d in local if d not in known]
    if missing:
        raise NotFound(
            f"destination {missing[0]} is in a domain served here but is no mailbox or alias",
            hint="create the mailbox first, or fix the destination",
        )


@dataclass(frozen=True)
class AliasChange:
    """The alias after ``add_alias``, and the destinations that were new."""

    alias: Alias
    added: tuple[str, ...]

    @property
    def changed(self) -> bool:
        """True if anything was added."""
        return bool(self.added)


def add_alias(
    store: Store, raw_source: str, raw_destinations: Sequence[str], *, actor: Actor
) -> AliasChange:
    """Create an alias, or add destinations to an existing one (idempotent).

    ``@domain`` is a catch-all: it receives mail for addresses of the domain that are
    neither mailboxes nor aliases.

    Raises:
        AddressTaken: the source is a mailbox.
    """
    source = parse_address(raw_source, allow_catch_all=True)
    targets = list(dict.fromkeys(parse_destination(d) for d in raw_destinations))
    try:
        with store.begin() as conn:
            return add_destinations(conn, source, targets, actor=actor)
    except IntegrityError:
        with store.read() as conn:
            raise taken_error(conn, source) from None


def add_destinations(
    conn: Connection,
    source: Address,
    targets: Sequence[str],
    *,
    actor: Actor,
    checked: bool = False,
) -> AliasChange:
    """``add_alias`` in the caller's transaction (``targets`` parsed, without duplicates).

    ``checked``: the caller has made sure that local destinations exist (or will, when its
    transaction ends), so they are not looked up here.

    Raises:
        IntegrityError: the source is a mailbox (the caller turns it into its error).
    """
    if not targets:
        raise InvalidAddress("an alias needs at least one destination")
    if str(source) in targets:
        raise InvalidAddress(f"alias {source} cannot deliver to itself")
    if not checked:
        _check_local_destinations(conn, targets)
    row = conn.execute(select(aliases).where(aliases.c.address == str(source))).first()
    existing: list[str] = []
    if row is None:
        domain_id = _claim(conn, source, "alias", actor.now)
        alias_id = conn.execute(
            insert(aliases).values(
                address=str(source), domain_id=domain_id, active=True, created_at=actor.now
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        created_at = actor.now
    else:
        alias_id, created_at = row.id, row.created_at
        existing = list(
            conn.execute(
                select(alias_destinations.c.destination).where(
                    alias_destinations.c.alias_id == alias_id
                )
            ).scalars()
        )
    new = [t for t in targets if t not in existing]
    if new:
        conn.execute(
            insert(alias_destinations), [{"alias_id": alias_id, "destination": t} for t in new]
        )
        audit.append(
            conn,
            at=actor.now,
            actor=actor.name,
            action="alias.add",
            target=str(source),
            details={"destinations": new},
        )
    alias = Alias(str(source), tuple(sorted({*existing, *new})), True, created_at)
    return AliasChange(alias, tuple(new))


def list_aliases(store: Store, *, domain: str | None = None) -> list[Alias]:
    """Aliases by address, with their destinations."""
    query = (
        select(
            aliases.c.address,
            aliases.c.active,
            aliases.c.created_at,
            alias_destinations.c.destination,
        )
        .join(alias_destinations, alias_destinations.c.alias_id == aliases.c.id)
        .order_by(aliases.c.address, alias_destinations.c.destination)
    )
    if domain:
        query = query.join(domains, domains.c.id == aliases.c.domain_id).where(
            domains.c.name == normalise_domain(domain)
        )
    grouped: dict[str, tuple[bool, int, list[str]]] = {}
    with store.read() as conn:
        for row in conn.execute(query):
            entry = grouped.setdefault(row.address, (bool(row.active), row.created_at, []))
            entry[2].append(row.destination)
    return [Alias(a, tuple(d), active, at) for a, (active, at, d) in grouped.items()]


def remove_alias(
    store: Store, raw_source: str, raw_destinations: Sequence[str] = (), *, actor: Actor
) -> Alias | None:
    """Remove an alias, or only some of its destinations. Returns what is left, if anything."""
    return remove_alias_change(store, raw_source, raw_destinations, actor=actor)[1]


def remove_alias_change(
    store: Store,
    raw_source: str,
    raw_destinations: Sequence[str] = (),
    *,
    actor: Actor,
    missing_ok: bool = False,
) -> tuple[bool, Alias | None]:
    """``remove_alias`` that also says whether anything changed.

    With ``missing_ok`` an absent alias, or destinations it does not have, are no error:
    they are already gone (nothing is written when nothing is left to remove).
    """
    source = str(parse_address(raw_source, allow_catch_all=True))
    drop = [parse_destination(d) for d in raw_destinations]
    with store.begin() as conn:
        return remove_destinations(
            conn, source, drop, actor=actor, missing_ok=missing_ok, whole=not raw_destinations
        )


def remove_destinations(
    conn: Connection,
    source: str,
    drop: Sequence[str],
    *,
    actor: Actor,
    missing_ok: bool = False,
    whole: bool = False,
) -> tuple[bool, Alias | None]:
    """``remove_alias_change`` in the caller's transaction: ``whole`` removes the alias."""
    row = conn.execute(select(aliases).where(aliases.c.address == source)).first()
    if row is None:
        if missing_ok:
            return False, None
        raise NotFound(f"alias {source} does not exist", hint="see 'mailprov alias list'")
    current = set(
        conn.execute(
            select(alias_destinations.c.destination).where(alias_destinations.c.alias_id == row.id)
        ).scalars()
    )
    unknown = [d for d in drop if d not in current]
    if unknown and not missing_ok:
        raise NotFound(f"{unknown[0]} is not a destination of alias {source}")
    drop = [d for d in drop if d in current]
    if not whole and not drop:
        return False, Alias(source, tuple(sorted(current)), bool(row.active), row.created_at)
    removed = drop or sorted(current)
    conn.execute(
        delete(alias_destinations).where(
            and_(
                alias_destinations.c.alias_id == row.id,
                alias_destinations.c.destination.in_(removed),
            )
        )
    )
    left = sorted(current - set(removed))
    if not left:
        conn.execute(delete(aliases).where(aliases.c.id == row.id))
        conn.execute(delete(addresses).where(addresses.c.address == source))
    audit.append(
        conn,
        at=actor.now,
        actor=actor.name,
        action="alias.remove",
        target=source,
        details={"destinations": removed},
    )
    return True, (Alias(source, tuple(left), bool(row.active), row.created_at) if left else None)
