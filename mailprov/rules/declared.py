"""Reading a state document: schema-checked data -> normalised, keyed specs, or problems.

:func:`declared` applies the address, size, hash and selector rules to every object and
reports each rule broken at the path of the value that breaks it (the caller finds its line).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mailprov.errors import InvalidValue, MailprovError
from mailprov.rules import dkim, hashing
from mailprov.rules.addresses import (
    Address,
    clean_name,
    normalise_domain,
    parse_address,
    parse_destination,
)
from mailprov.rules.backends import backend_name
from mailprov.rules.positions import Path
from mailprov.rules.sizes import parse_size
from mailprov.rules.statefile import Problem


@dataclass(frozen=True)
class DkimSpec:
    """A DKIM selector a domain must have (``algorithm`` None: any, or the default if new)."""

    selector: str
    algorithm: str | None = None


@dataclass(frozen=True)
class DomainSpec:
    """A declared domain (A-label)."""

    name: str
    dkim: tuple[DkimSpec, ...]
    path: Path
    backend: str | None = None  # home of its new mailboxes (None: not managed)


@dataclass(frozen=True)
class MailboxSpec:
    """A declared mailbox; None = the attribute is not managed."""

    address: str
    local: str
    domain: str
    name: str | None
    quota_bytes: int | None
    active: bool | None
    password_hash: str | None
    generate_password: bool
    path: Path
    backend: str | None = None  # its home backend (None: not managed; a new one: the default)


@dataclass(frozen=True)
class AliasSpec:
    """A declared alias (``@domain``: catch-all) and its exact destinations, sorted."""

    address: str
    domain: str
    destinations: tuple[str, ...]
    path: Path


@dataclass(frozen=True)
class Declared:
    """Everything a state file declares, normalised and keyed by name or address."""

    domains: dict[str, DomainSpec] = field(default_factory=dict)
    mailboxes: dict[str, MailboxSpec] = field(default_factory=dict)
    aliases: dict[str, AliasSpec] = field(default_factory=dict)


def declared(doc: Mapping[str, Any]) -> tuple[Declared, list[Problem]]:
    """Normalise a schema-checked document; every rule it breaks is a problem at its path."""
    out = Declared()
    problems: list[Problem] = []

    def check(path: Path, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MailprovError as exc:
            problems.append(Problem(path, exc.message))
            return None

    for raw, body in doc.get("domains", {}).items():
        path: Path = ("domains", raw)
        name = check(path, normalise_domain, raw)
        keys = []
        for n, item in enumerate(body.get("dkim", [])):
            selector = check((*path, "dkim", n, "selector"), dkim.check_selector, item["selector"])
            keys.append(DkimSpec(selector or "", item.get("algorithm")))
        backend = body.get("backend")
        if backend is not None:
            check((*path, "backend"), backend_name, backend)
        if name is not None:
            spec_d = DomainSpec(name, tuple(keys), path, backend)
            _put(out.domains, name, spec_d, path, problems)
    for raw, body in doc.get("mailboxes", {}).items():
        path = ("mailboxes", raw)
        address = check(path, _mailbox_address, raw)
        name = check((*path, "name"), clean_name, body["name"]) if "name" in body else None
        raw_quota = body.get("quota")
        if isinstance(raw_quota, float):  # JSON Schema counts 1.0 as an integer
            raw_quota = int(raw_quota)
        quota = check((*path, "quota"), parse_size, raw_quota) if "quota" in body else None
        digest = body.get("password_hash")
        if digest is not None and check((*path, "password_hash"), _check_hash, digest) is None:
            continue
        if digest is not None and body.get("generate_password"):
            problems.append(Problem(path, "give password_hash or generate_password, not both"))
            continue
        if (
            address is None
            or ("name" in body and name is None)
            or ("quota" in body and quota is None)
        ):
            continue
        spec = MailboxSpec(
            address=str(address),
            local=address.local,
            domain=address.domain,
            name=name,
            quota_bytes=quota,
            active=body.get("active"),
            password_hash=digest,
            generate_password=bool(body.get("generate_password", False)),
            path=path,
            backend=body.get("backend"),
        )
        _put(out.mailboxes, spec.address, spec, path, problems)
    for raw, body in doc.get("aliases", {}).items():
        path = ("aliases", raw)
        source = check(path, parse_address, raw, allow_catch_all=True)
        targets = [
            check((*path, "destinations", n), parse_destination, d)
            for n, d in enumerate(body["destinations"])
        ]
        if source is None or None in targets:
            continue
        if str(source) in targets:
            problems.append(Problem(path, f"alias {source} cannot deliver to itself"))
        alias = AliasSpec(str(source), source.domain, tuple(sorted(set(targets))), path)
        _put(out.aliases, alias.address, alias, path, problems)
    return out, problems


def _put(into: dict[str, Any], key: str, spec: Any, path: Path, problems: list[Problem]) -> None:
    if key in into:
        problems.append(Problem(path, f"{key} is declared twice (also as {into[key].path[-1]!r})"))
    else:
        into[key] = spec


def _mailbox_address(raw: str) -> Address:
    address = parse_address(raw)
    if address.is_role:
        raise InvalidValue(
            f"{address} is a role address (RFC 2142), kept for aliases: declare it there"
        )
    return address


def _check_hash(digest: str) -> str:
    try:
        hashing.split_hash(digest)
    except MailprovError:
        # split_hash's message does not show the value; this one says what is accepted.
        raise InvalidValue(
            "is not a hash mailprov accepts: use "
            + ", ".join("{" + s + "}" for s in hashing.SCHEMES)
            + " in Dovecot's form"
        ) from None
    return digest
