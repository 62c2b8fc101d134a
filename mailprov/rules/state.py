"""The pure diff between the declared site state and the store: ``apply``'s plan.

:func:`diff` compares the specs of :mod:`mailprov.rules.declared` with a snapshot of the store
(:class:`Current`) and returns the object-level :class:`Plan` and every rule the result
would break. Nothing here reads or writes anything.

Semantics (``apply`` documents them): objects in the store but not in the state are kept
unless ``prune``; a declared object's *given* attributes are made true, the ones it omits
are left as they are (a new mailbox gets the defaults); an alias's destinations are
exactly the ones declared. Secrets are masked in everything a plan shows.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from mailprov.rules import hashing
from mailprov.rules.backends import home_backend
from mailprov.rules.declared import Declared, MailboxSpec
from mailprov.rules.positions import Path
from mailprov.rules.sizes import format_size
from mailprov.rules.statefile import Problem

#: How a secret is shown in a plan.
MASKED = "***"
VERSION = 1


@dataclass(frozen=True)
class MailboxNow:
    """A mailbox as the store has it."""

    name: str
    quota_bytes: int
    active: bool
    password_hash: str
    backend: str | None = None  # its own home backend (None: inherited)
    home: str = ""  # the effective one (rules/backends.home_backend)


@dataclass(frozen=True)
class Current:
    """The part of the store (and DKIM key folders) a state speaks about."""

    domains: set[str]
    mailboxes: dict[str, MailboxNow]
    aliases: dict[str, tuple[str, ...]]
    dkim: dict[str, dict[str, str]]  # domain -> selector -> algorithm (next/active keys)
    domain_backends: dict[str, str] = field(default_factory=dict)  # those that have one


@dataclass(frozen=True)
class Change:
    """One object to create, update or delete, with each attribute's before -> after."""

    kind: str  # domain | dkim | mailbox | alias
    key: str
    action: str  # create | update | delete
    attributes: dict[str, tuple[Any, Any]]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "kind": self.kind,
            "key": self.key,
            "action": self.action,
            "attributes": {k: {"before": b, "after": a} for k, (b, a) in self.attributes.items()},
        }


#: The order changes are shown and carried out in (see ``services.state.apply``).
ORDER = [
    ("domain", "create"),
    ("dkim", "create"),
    ("alias", "delete"),
    ("mailbox", "create"),
    ("mailbox", "update"),
    ("alias", "create"),
    ("alias", "update"),
    ("mailbox", "delete"),
    ("domain", "delete"),
]


@dataclass(frozen=True)
class Plan:
    """The changes that make the store what the state declares."""

    changes: list[Change]

    @property
    def changed(self) -> bool:
        """True if anything would change."""
        return bool(self.changes)

    def of(self, kind: str, action: str) -> list[Change]:
        """The changes of one kind and action, in order."""
        return [c for c in self.changes if c.kind == kind and c.action == action]

    def summary(self) -> dict[str, int]:
        """How many objects each action touches."""
        out = {"create": 0, "update": 0, "delete": 0}
        for change in self.changes:
            out[change.action] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"summary": self.summary(), "changes": [c.to_json() for c in self.changes]}


# -- the diff ----------------------------------------------------------------------------


def diff(
    current: Current,
    wanted: Declared,
    *,
    prune: bool,
    default_quota: int,
    default_algorithm: str,
    backends: Collection[str] = (),
    default_backend: str = "",
) -> tuple[Plan, list[Problem]]:
    """The changes that turn ``current`` into ``wanted``, and the rules the result breaks.

    ``backends``: the site's backend names; ``default_backend``: the home of a new mailbox
    that neither it nor its domain names (both empty on a one-host site).
    """
    problems: list[Problem] = []
    final = _Final(
        set(wanted.domains) | (set() if prune else current.domains),
        set(wanted.mailboxes) | (set() if prune else set(current.mailboxes)),
        set(wanted.aliases) | (set() if prune else set(current.aliases)),
        prune,
    )
    homes = _Homes(tuple(backends), default_backend)
    changes = _domains(current, wanted, default_algorithm, problems, homes)
    changes += _mailboxes(current, wanted, final, default_quota, problems, homes)
    changes += _aliases(current, wanted, final, problems)
    if prune:
        changes += _deletions(current, wanted)
    rank = {step: n for n, step in enumerate(ORDER)}
    changes.sort(key=lambda c: rank[(c.kind, c.action)])
    return Plan(changes), problems


@dataclass(frozen=True)
class _Final:
    """What the store holds after the plan: domains, mailboxes and aliases."""

    domains: set[str]
    mailboxes: set[str]
    aliases: set[str]
    prune: bool

    def served(self, domain: str, path: Path) -> list[Problem]:
        if domain in self.domains:
            return []
        hint = "declare it under [domains]"
        if self.prune:
            hint += " (--prune keeps only declared domains)"
        return [Problem(path, f"{domain} is not a domain served here: {hint}")]


@dataclass(frozen=True)
class _Homes:
    """The site's backend names and default home (empty on one host)."""

    backends: tuple[str, ...]
    default: str

    def unknown(self, name: str | None, path: Path) -> list[Problem]:
        if name is None or name in self.backends:
            return []
        known = ", ".join(self.backends) or "none: this site runs on one host"
        return [Problem((*path, "backend"), f"{name} is not one of [cluster] backends ({known})")]


def _domains(
    current: Current,
    wanted: Declared,
    default_algorithm: str,
    problems: list[Problem],
    homes: _Homes,
) -> list[Change]:
    changes = []
    for name, domain in sorted(wanted.domains.items()):
        problems += homes.unknown(domain.backend, domain.path)
        if name not in current.domains:
            made = {"backend": (None, domain.backend)} if domain.backend else {}
            changes.append(Change("domain", name, "create", made))
        elif domain.backend is not None and domain.backend != current.domain_backends.get(name):
            problems.append(
                Problem(
                    (*domain.path, "backend"),
                    f"{name}'s backend is {current.domain_backends.get(name) or 'the site default'}"
                    f"; change it with 'mailprov domain set {name} --backend', which checks the "
                    "mailboxes that take their home from it",
                )
            )
        have = current.dkim.get(name, {})
        for key in domain.dkim:
            algorithm = have.get(key.selector)
            if algorithm is None:
                algo = key.algorithm or default_algorithm
                changes.append(
                    Change("dkim", f"{name}/{key.selector}", "create", {"algorithm": (None, algo)})
                )
            elif key.algorithm not in (None, algorithm):
                problems.append(
                    Problem(
                        domain.path,
                        f"DKIM selector {key.selector} exists with algorithm {algorithm}; "
                        "a key's algorithm cannot change (declare a new selector)",
                    )
                )
    return changes


def _mailboxes(
    current: Current,
    wanted: Declared,
    final: _Final,
    default_quota: int,
    problems: list[Problem],
    homes: _Homes,
) -> list[Change]:
    changes = []
    for address, mailbox in sorted(wanted.mailboxes.items()):
        problems += final.served(mailbox.domain, mailbox.path)
        problems += homes.unknown(mailbox.backend, mailbox.path)
        if address in current.aliases or address in wanted.aliases:
            problems.append(
                Problem(mailbox.path, f"{address} is an alias; an address is one or the other")
            )
            continue
        before = current.mailboxes.get(address)
        if before is None:
            made = _create_mailbox(mailbox, default_quota, problems)
            home = _new_home(mailbox, wanted, current, homes)
            if home:
                made.attributes["backend"] = (None, home)
            changes.append(made)
        elif mailbox.backend is not None and mailbox.backend != before.home:
            problems.append(
                Problem(
                    (*mailbox.path, "backend"),
                    f"{address} lives on {before.home or 'this host'}; a mailbox changes its "
                    f"home with 'mailprov mailbox move {address} --to {mailbox.backend}', "
                    "which copies its mail",
                )
            )
        else:
            changed = _mailbox_changes(before, mailbox)
            if changed:
                changes.append(Change("mailbox", address, "update", changed))
    return changes


def _aliases(
    current: Current, wanted: Declared, final: _Final, problems: list[Problem]
) -> list[Change]:
    changes = []
    for address, alias in sorted(wanted.aliases.items()):
        problems += final.served(alias.domain, alias.path)
        if address in current.mailboxes:
            problems.append(
                Problem(alias.path, f"{address} is a mailbox; an address is one or the other")
            )
            continue
        for target in alias.destinations:
            local = target.split("@", 1)[1] in final.domains
            if local and target not in final.mailboxes and target not in final.aliases:
                after = " (after --prune)" if final.prune else ""
                problems.append(
                    Problem(
                        (*alias.path, "destinations"),
                        f"destination {target} is in a domain served here but is "
                        f"no mailbox or alias{after}",
                    )
                )
        before = current.aliases.get(address)
        after_targets = list(alias.destinations)
        if before is None:
            changes.append(
                Change("alias", address, "create", {"destinations": (None, after_targets)})
            )
        elif before != alias.destinations:
            changes.append(
                Change("alias", address, "update", {"destinations": (list(before), after_targets)})
            )
    return changes


def _new_home(spec: MailboxSpec, wanted: Declared, current: Current, homes: _Homes) -> str:
    """A new mailbox's home, written into its row: its own, its domain's, the site's."""
    if spec.backend:
        return spec.backend
    if not homes.backends:
        return ""
    declared = wanted.domains.get(spec.domain)
    domain = (declared.backend if declared else None) or current.domain_backends.get(spec.domain)
    return home_backend(None, domain, homes.default)


def show_quota(quota_bytes: int) -> str:
    """A quota as a state file writes it: ``2G``, or ``0`` for unlimited."""
    return "0" if quota_bytes == 0 else format_size(quota_bytes)


def _create_mailbox(spec: MailboxSpec, default_quota: int, problems: list[Problem]) -> Change:
    if spec.password_hash is None and not spec.generate_password:
        problems.append(
            Problem(
                spec.path,
                f"{spec.address} is new and needs password_hash, or generate_password = true",
            )
        )
    password = MASKED if spec.password_hash is not None else "(generated)"
    quota = spec.quota_bytes if spec.quota_bytes is not None else default_quota
    return Change(
        "mailbox",
        spec.address,
        "create",
        {
            "name": (None, spec.name or ""),
            "quota": (None, show_quota(quota)),
            "active": (None, True if spec.active is None else spec.active),
            "password": (None, password),
        },
    )


def _mailbox_changes(before: MailboxNow, spec: MailboxSpec) -> dict[str, tuple[Any, Any]]:
    out: dict[str, tuple[Any, Any]] = {}
    if spec.name is not None and spec.name != before.name:
        out["name"] = (before.name, spec.name)
    if spec.quota_bytes is not None and spec.quota_bytes != before.quota_bytes:
        out["quota"] = (show_quota(before.quota_bytes), show_quota(spec.quota_bytes))
    if spec.active is not None and spec.active != before.active:
        out["active"] = (before.active, spec.active)
    if spec.password_hash is not None and not hashing.same_secret(
        spec.password_hash, before.password_hash
    ):
        out["password"] = (MASKED, MASKED + " (changed)")
    return out


def _deletions(current: Current, wanted: Declared) -> list[Change]:
    out = []
    for address, targets in sorted(current.aliases.items()):
        if address not in wanted.aliases:
            out.append(Change("alias", address, "delete", {"destinations": (list(targets), None)}))
    for address, box in sorted(current.mailboxes.items()):
        if address not in wanted.mailboxes:
            attributes = {
                "name": (box.name, None),
                "quota": (show_quota(box.quota_bytes), None),
                "active": (box.active, None),
            }
            out.append(Change("mailbox", address, "delete", attributes))
    for name in sorted(current.domains - set(wanted.domains)):
        out.append(Change("domain", name, "delete", {}))
    return out


def to_document(current: Current, *, with_hashes: bool = False) -> dict[str, Any]:
    """What ``export`` writes: the state that declares ``current`` exactly."""
    doc: dict[str, Any] = {"version": VERSION, "domains": {}, "mailboxes": {}, "aliases": {}}
    for name in sorted(current.domains):
        keys = [{"selector": s, "algorithm": a} for s, a in current.dkim.get(name, {}).items()]
        doc["domains"][name] = {"dkim": keys} if keys else {}
        if current.domain_backends.get(name):
            doc["domains"][name]["backend"] = current.domain_backends[name]
    for address, box in sorted(current.mailboxes.items()):
        entry: dict[str, Any] = {
            "name": box.name,
            "quota": show_quota(box.quota_bytes),
            "active": box.active,
        }
        if box.backend:
            entry["backend"] = box.backend
        if with_hashes:
            entry["password_hash"] = box.password_hash
        doc["mailboxes"][address] = entry
    for address, targets in sorted(current.aliases.items()):
        doc["aliases"][address] = {"destinations": list(targets)}
    return doc
