"""``mailprov apply`` and ``export``: the whole site as one declared state, and converging to it.

:func:`read` checks a state file (schema, then rules) into :class:`~mailprov.rules.state.Declared`;
:func:`plan` diffs it against the store without writing; :func:`apply` takes the store's
write lock, diffs again against what is there *now*, and carries out the plan in one
transaction through the same writers the single commands use (so every change has its
usual audit record, plus one ``state.apply`` record), then makes the missing DKIM keys.
:func:`export` reads the store into the same format.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mailprov.errors import TemporaryFailure
from mailprov.model import DkimStatus, Secret
from mailprov.rules import passwords, statefile
from mailprov.rules.addresses import Address, parse_address
from mailprov.rules.backends import home_backend
from mailprov.rules.declared import Declared, MailboxSpec, declared
from mailprov.rules.sizes import parse_size
from mailprov.rules.state import (
    Current,
    MailboxNow,
    Plan,
    diff,
    to_document,
)
from mailprov.services import dkim
from mailprov.services.accounts import (
    NewMailbox,
    add_destinations,
    delete_domain,
    delete_mailbox,
    insert_domain,
    insert_mailboxes,
    remove_destinations,
    write_password,
)
from mailprov.services.accounts import NewPassword as NewPasswordValue
from mailprov.services.mailbox_state import Change as AttributeChange
from mailprov.services.mailbox_state import write_changes
from mailprov.store import audit
from mailprov.store.schema import alias_destinations, aliases, domains, mailboxes

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mailprov.services.accounts import Actor
    from mailprov.settings import SiteConfig
    from mailprov.store import Store


@dataclass(frozen=True)
class StateFile:
    """A state file read and checked: its text (to place problems) and what it declares."""

    source: str
    text: str
    fmt: str
    wanted: Declared


@dataclass
class Applied:
    """What ``apply`` did."""

    plan: Plan
    generated: dict[str, Secret] = field(default_factory=dict)
    dkim: list[dkim.DkimKey] = field(default_factory=list)


def read(text: str, *, source: str, fmt: str | None = None) -> StateFile:
    """Parse and check a state file (TOML or JSON).

    Raises:
        StateInvalid: syntax, schema or rule problems, each with its line.
    """
    kind = fmt or statefile.detect_format(text, source)
    doc = statefile.parse(text, fmt=kind, source=source)
    wanted, problems = declared(doc)
    if problems:
        raise statefile.fail(problems, text=text, fmt=kind, source=source)
    return StateFile(source, text, kind, wanted)


def _dkim_now(settings: SiteConfig, names: set[str]) -> dict[str, dict[str, str]]:
    """The next and active selectors of each domain (key folders only)."""
    out = {}
    for name in sorted(names):
        keys = dkim.keys_of(settings, name)
        out[name] = {k.selector: k.algorithm for k in keys if k.status != DkimStatus.RETIRED}
    return out


def snapshot(
    conn: Connection, dkim_now: dict[str, dict[str, str]], default_backend: str = ""
) -> Current:
    """What the store holds, as a state compares it (``default_backend``: the site's
    default home, for the effective home of a mailbox that inherits it)."""
    domain_rows = conn.execute(select(domains.c.name, domains.c.backend)).all()
    names = {r.name for r in domain_rows}
    domain_backends = {r.name: r.backend for r in domain_rows if r.backend}
    boxes = {
        r.address: MailboxNow(
            r.display_name,
            r.quota_bytes,
            bool(r.active),
            r.password_hash,
            r.backend,
            home_backend(r.backend, domain_backends.get(r.domain), default_backend),
        )
        for r in conn.execute(
            select(
                mailboxes.c.address,
                mailboxes.c.domain,
                mailboxes.c.display_name,
                mailboxes.c.quota_bytes,
                mailboxes.c.active,
                mailboxes.c.password_hash,
                mailboxes.c.backend,
            )
        )
    }
    grouped: dict[str, list[str]] = {}
    query = select(aliases.c.address, alias_destinations.c.destination).join(
        alias_destinations, alias_destinations.c.alias_id == aliases.c.id
    )
    for address, destination in conn.execute(query):
        grouped.setdefault(address, []).append(destination)
    targets = {a: tuple(sorted(d)) for a, d in grouped.items()}
    dkim = {d: k for d, k in dkim_now.items() if d in names}
    return Current(names, boxes, targets, dkim, domain_backends)


def _diff(state: StateFile, current: Current, settings: SiteConfig, prune: bool) -> Plan:
    planned, problems = diff(
        current,
        state.wanted,
        prune=prune,
        default_quota=parse_size(settings.accounts.default_quota),
        default_algorithm=settings.dkim.algorithms[0],
        backends=list(settings.cluster.backend_hosts()),
        default_backend=settings.cluster.default_home(),
    )
    if problems:
        raise statefile.fail(problems, text=state.text, fmt=state.fmt, source=state.source)
    return planned


def plan(store: Store, settings: SiteConfig, state: StateFile, *, prune: bool = False) -> Plan:
    """The changes ``apply`` would make now. Reads only.

    Raises:
        StateInvalid: the result would break a rule (a taken address, a missing domain or
            destination, a new mailbox without a password ...), each with its line.
    """
    dkim_now = _dkim_now(settings, set(state.wanted.domains))
    with store.read() as conn:
        current = snapshot(conn, dkim_now, settings.cluster.default_home())
    return _diff(state, current, settings, prune)


def apply(
    store: Store,
    settings: SiteConfig,
    state: StateFile,
    *,
    actor: Actor,
    prune: bool = False,
) -> Applied:
    """Make the store what ``state`` declares, in one transaction (see the module docstring).

    Raises:
        StateInvalid: as :func:`plan`; nothing was changed.
        TemporaryFailure: another writer took an address meanwhile; nothing was changed.
    """
    generated: dict[str, tuple[str, Secret]] = {}
    if any(m.generate_password for m in state.wanted.mailboxes.values()):
        # Hash new passwords before taking the write lock (ARGON2ID takes a while).
        generated = _generate(settings, state.wanted, plan(store, settings, state, prune=prune))
    dkim_now = _dkim_now(settings, set(state.wanted.domains))
    try:
        with store.begin() as conn:
            current = snapshot(conn, dkim_now, settings.cluster.default_home())
            planned = _diff(state, current, settings, prune)
            missing = [
                c.key
                for c in planned.of("mailbox", "create")
                if c.key not in generated and state.wanted.mailboxes[c.key].password_hash is None
            ]
            if missing:  # removed by someone else since the first look: rare, hash them now
                generated.update(_generate(settings, state.wanted, planned))
            _carry_out(conn, planned, state, actor, {a: h for a, (h, _) in generated.items()})
            if planned.changed:
                audit.append(
                    conn,
                    at=actor.now,
                    actor=actor.name,
                    action="state.apply",
                    target=state.source[-256:],
                    details={"prune": prune, **planned.summary()},
                )
    except IntegrityError:
        raise TemporaryFailure(
            "another change to the store took an address while apply ran; nothing was changed",
            hint="run apply again",
        ) from None
    made = []
    for change in planned.of("dkim", "create"):
        domain, _, selector = change.key.partition("/")
        made.append(
            dkim.keygen(
                store,
                settings,
                domain,
                actor=actor,
                selector=selector,
                algorithm=change.attributes["algorithm"][1],
            )
        )
    shown = {a: s for a, (_, s) in generated.items() if a in _created(planned)}
    return Applied(planned, shown, made)


def _created(planned: Plan) -> set[str]:
    return {c.key for c in planned.of("mailbox", "create")}


def _generate(
    settings: SiteConfig, wanted: Declared, planned: Plan
) -> dict[str, tuple[str, Secret]]:
    """A new password (hash, clear) for each new mailbox that asks for one."""
    new = [a for a in _created(planned) if wanted.mailboxes[a].password_hash is None]
    if not new:
        return {}
    policy = passwords.get_policy(
        settings.passwords.policy, min_length=settings.passwords.min_length or None
    )
    clear = [passwords.generate_password(policy, settings.passwords.generated_length) for _ in new]
    from mailprov.services.bulk import hash_parallel  # noqa: PLC0415  (lazy: its process pool is needed only to hash)

    hashes = hash_parallel(clear, settings.passwords.scheme)
    return {a: (h, Secret(c)) for a, h, c in zip(new, hashes, clear, strict=True)}


def _carry_out(
    conn: Connection, planned: Plan, state: StateFile, actor: Actor, hashes: dict[str, str]
) -> None:
    """Every change of the plan, in :data:`~mailprov.rules.state.ORDER`."""
    wanted = state.wanted
    for change in planned.of("domain", "create"):
        backend = change.attributes.get("backend", (None, None))[1]
        insert_domain(conn, change.key, actor=actor, backend=backend)
    for change in planned.of("alias", "delete"):
        remove_destinations(conn, change.key, [], actor=actor, whole=True)
    new = []
    for change in planned.of("mailbox", "create"):
        spec = wanted.mailboxes[change.key]
        quota = (
            spec.quota_bytes
            if spec.quota_bytes is not None
            else parse_size(str(change.attributes["quota"][1]))
        )
        new.append(
            NewMailbox(
                Address(spec.local, spec.domain),
                spec.password_hash or hashes[spec.address],
                spec.name or "",
                quota,
                active=spec.active is not False,
                details={"via": "apply", "quota_bytes": quota},
                backend=change.attributes.get("backend", (None, None))[1],
            )
        )
    insert_mailboxes(conn, new, actor=actor)
    for change in planned.of("mailbox", "update"):
        _update_mailbox(conn, change.attributes, wanted.mailboxes[change.key], actor)
    for change in planned.of("alias", "create") + planned.of("alias", "update"):
        alias = wanted.aliases[change.key]
        before = change.attributes["destinations"][0] or []
        source = parse_address(alias.address, allow_catch_all=True)
        added = [d for d in alias.destinations if d not in before]
        if added:
            add_destinations(conn, source, added, actor=actor, checked=True)
        dropped = [d for d in before if d not in alias.destinations]
        if dropped:
            remove_destinations(conn, alias.address, dropped, actor=actor)
    for change in planned.of("mailbox", "delete"):
        delete_mailbox(conn, change.key, actor=actor)
    for change in planned.of("domain", "delete"):
        delete_domain(conn, change.key, actor=actor)


def _update_mailbox(
    conn: Connection, shown: dict[str, tuple[Any, Any]], spec: MailboxSpec, actor: Actor
) -> None:
    changes = {}
    if "name" in shown:
        changes["name"] = AttributeChange(*shown["name"])
    if "quota" in shown:
        before, after = (parse_size(str(v)) for v in shown["quota"])
        changes["quota_bytes"] = AttributeChange(before, after)
    if "active" in shown:
        changes["active"] = AttributeChange(*shown["active"])
    write_changes(conn, spec.address, changes, actor=actor)
    if "password" in shown and spec.password_hash is not None:
        write_password(conn, spec.address, NewPasswordValue(spec.password_hash, None), actor=actor)


# -- export ------------------------------------------------------------------------------


def export(store: Store, settings: SiteConfig, *, with_hashes: bool = False) -> dict[str, Any]:
    """The store as a state document (what ``apply`` reads); hashes only ``with_hashes``."""
    with store.read() as conn:
        names = set(conn.execute(select(domains.c.name)).scalars())
        current = snapshot(conn, _dkim_now(settings, names), settings.cluster.default_home())
    return to_document(current, with_hashes=with_hashes)


def export_lines(doc: dict[str, Any], fmt: str) -> Iterator[str]:
    """The document as TOML or JSON text, a line at a time (for streaming)."""
    if fmt == "json":
        yield from statefile.to_json_lines(doc)
    else:
        yield from statefile.to_toml_lines(doc)
