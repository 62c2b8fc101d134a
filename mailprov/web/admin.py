"""Operations of the admin API: domains, mailboxes and aliases, for configuration management.

They have the CLI's semantics: the same services, the same ``changed`` reports and
``exist_ok``, the same error codes. Each needs an admin token (``mailprov token
create``) with the operation's scope. A password never leaves the server except
one generated here, shown once in the answer that made it.
"""

from __future__ import annotations

import json
from typing import Any

from mailprov.errors import (
    AddressTaken,
    AlreadyExists,
    Conflict,
    InUse,
    InvalidAddress,
    InvalidValue,
    NotFound,
    PasswordPolicy,
    ScopeRefused,
    StateInvalid,
    TemporaryFailure,
    UnknownBackend,
    UnknownDomain,
)
from mailprov.rules.sizes import parse_size
from mailprov.services import accounts, deploy, homes, mailbox_state, state
from mailprov.system.run import SubprocessRunner
from mailprov.web.api import API, Call

READ, WRITE = "accounts:read", "accounts:write"
TAG = "admin"
ADDRESS = {"type": "string", "minLength": 3, "maxLength": 254}
SIZE = {"type": "string", "maxLength": 32, "description": "Such as 2G or 500M; 0 = unlimited."}
ANY_OBJECT = {"type": "object"}
CHANGED = {"type": "boolean", "description": "Whether anything was written."}
BACKEND = {
    "type": "string",
    "maxLength": 63,
    "description": "A home backend: one of [cluster] backends (README 'Beyond one machine').",
}


def _listing(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [name],
        "properties": {name: {"type": "array", "items": ANY_OBJECT}},
    }


def _changed(*extra: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["changed", *extra],
        "properties": {"changed": CHANGED, **dict.fromkeys(extra, ANY_OBJECT)},
    }


# -- domains ---------------------------------------------------------------------------


@API.operation(
    "GET",
    "/api/v1/admin/domains",
    summary="List domains",
    tag=TAG,
    scope=READ,
    answer=_listing("domains"),
)
def admin_list_domains(call: Call) -> dict[str, Any]:
    """Domains with their mailbox and alias counts."""
    return {"domains": [d.to_json() for d in accounts.list_domains(call.services.store)]}


@API.operation(
    "POST",
    "/api/v1/admin/domains",
    summary="Add a domain",
    tag=TAG,
    scope=WRITE,
    body={
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 253},
            "exist_ok": {"type": "boolean", "default": False},
            "backend": BACKEND,
        },
    },
    answer=_changed("domain"),
    errors=(AlreadyExists, InvalidAddress, UnknownBackend),
)
def admin_add_domain(call: Call) -> dict[str, Any]:
    """Add a domain; with exist_ok an existing one is 'changed: false' (as 'domain add')."""
    store, name = call.services.store, call.body["name"]
    backend = call.body.get("backend")
    if backend is not None:
        homes.checked_backend(backend, call.services.settings.cluster)
    try:
        added = accounts.add_domain(store, name, actor=call.actor, backend=backend)
    except AlreadyExists:
        if not call.body.get("exist_ok"):
            raise
        return {"changed": False, "domain": accounts.get_domain(store, name).to_json()}
    return {"changed": True, "domain": added.to_json()}


@API.operation(
    "PATCH",
    "/api/v1/admin/domains/{name}",
    summary="Change a domain's home backend for new mailboxes",
    tag=TAG,
    scope=WRITE,
    body={
        "type": "object",
        "required": ["backend"],
        "additionalProperties": False,
        "properties": {
            "backend": {**BACKEND, "type": ["string", "null"], "description": "null: the site's"}
        },
    },
    answer=_changed("domain"),
    errors=(NotFound, InUse, InvalidAddress, UnknownBackend),
)
def admin_set_domain(call: Call) -> dict[str, Any]:
    """As 'domain set --backend': refused while mailboxes take their home from the domain."""
    found, changed = homes.set_domain_backend(
        call.services.store,
        call.path["name"],
        call.body["backend"] or None,
        call.services.settings.cluster,
        actor=call.actor,
    )
    return {"changed": changed, "domain": found.to_json()}


@API.operation(
    "DELETE",
    "/api/v1/admin/domains/{name}",
    summary="Remove a domain with nothing left in it",
    tag=TAG,
    scope=WRITE,
    answer=_changed(),
    errors=(NotFound, InUse, InvalidAddress),
)
def admin_remove_domain(call: Call) -> dict[str, Any]:
    """Remove a domain (refused while it has mailboxes or aliases)."""
    accounts.remove_domain(call.services.store, call.path["name"], actor=call.actor)
    return {"changed": True}


# -- mailboxes -------------------------------------------------------------------------


@API.operation(
    "GET",
    "/api/v1/admin/mailboxes",
    summary="List mailboxes",
    tag=TAG,
    scope=READ,
    answer=_listing("mailboxes"),
)
def admin_list_mailboxes(call: Call) -> dict[str, Any]:
    """Every mailbox (never a password hash)."""
    services = call.services
    found = accounts.list_mailboxes(
        services.store,
        services.settings.passwords,
        now=call.now,
        default_backend=services.settings.cluster.default_home(),
    )
    return {"mailboxes": [m.to_json() for m in found]}


@API.operation(
    "GET",
    "/api/v1/admin/mailboxes/{address}",
    summary="Show a mailbox",
    tag=TAG,
    scope=READ,
    answer={"type": "object", "required": ["mailbox"], "properties": {"mailbox": ANY_OBJECT}},
    errors=(NotFound, InvalidAddress),
)
def admin_show_mailbox(call: Call) -> dict[str, Any]:
    """One mailbox (never its password hash)."""
    services = call.services
    found = accounts.get_mailbox(
        services.store,
        call.path["address"],
        services.settings.passwords,
        now=call.now,
        default_backend=services.settings.cluster.default_home(),
    )
    return {"mailbox": found.to_json()}


@API.operation(
    "POST",
    "/api/v1/admin/mailboxes",
    summary="Create a mailbox",
    tag=TAG,
    scope=WRITE,
    body={
        "type": "object",
        "required": ["address"],
        "additionalProperties": False,
        "properties": {
            "address": ADDRESS,
            "name": {"type": "string", "maxLength": 256},
            "quota": SIZE,
            "password_hash": {
                "type": "string",
                "maxLength": 512,
                "description": "A ready {SCHEME}hash; without it a password is generated "
                "and returned once as 'password'.",
            },
            "temporary": {"type": "boolean", "default": False},
            "exist_ok": {"type": "boolean", "default": False},
            "backend": {
                **BACKEND,
                "description": "Its home (default: the domain's, else the site's).",
            },
        },
    },
    answer={
        "type": "object",
        "required": ["changed", "mailbox"],
        "properties": {
            "changed": CHANGED,
            "mailbox": ANY_OBJECT,
            "password": {"type": "string", "description": "Only a generated one, only here."},
        },
    },
    errors=(
        AddressTaken,
        Conflict,
        InvalidAddress,
        UnknownDomain,
        InvalidValue,
        PasswordPolicy,
        UnknownBackend,
    ),
)
def admin_add_mailbox(call: Call) -> dict[str, Any]:
    """Create a mailbox (as 'mailbox add'); exist_ok compares name and quota, never the password."""
    services, body = call.services, call.body
    settings = services.settings
    quota = parse_size(body["quota"]) if "quota" in body else None
    if body.get("exist_ok") and mailbox_state.existing_mailbox(
        services.store, body["address"], display_name=body.get("name"), quota_bytes=quota
    ):
        found = accounts.get_mailbox(
            services.store,
            body["address"],
            settings.passwords,
            now=call.now,
            default_backend=settings.cluster.default_home(),
        )
        return {"changed": False, "mailbox": found.to_json()}
    parsed = accounts.check_available(services.store, body["address"])
    home = homes.new_home(services.store, parsed.domain, body.get("backend"), settings.cluster)
    new = accounts.prepare_password(
        settings.passwords, parsed, password_hash=body.get("password_hash")
    )
    made = accounts.add_mailbox(
        services.store,
        str(parsed),
        new,
        actor=call.actor,
        display_name=body.get("name", ""),
        quota_bytes=quota if quota is not None else parse_size(settings.accounts.default_quota),
        temporary_hours=settings.passwords.temp_password_hours if body.get("temporary") else None,
        backend=home,
    )
    answer: dict[str, Any] = {"changed": True, "mailbox": made.to_json()}
    if new.generated is not None:
        answer["password"] = new.generated.reveal()
    return answer


@API.operation(
    "PATCH",
    "/api/v1/admin/mailboxes/{address}",
    summary="Change a mailbox's name, quota or state",
    tag=TAG,
    scope=WRITE,
    body={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "maxLength": 256},
            "quota": SIZE,
            "active": {"type": "boolean"},
        },
    },
    answer=_changed("changes"),
    errors=(NotFound, InvalidAddress, InvalidValue),
)
def admin_set_mailbox(call: Call) -> dict[str, Any]:
    """Set what is given (as 'mailbox set'); only what differs is written."""
    body = call.body
    _, changes = mailbox_state.update_mailbox(
        call.services.store,
        call.path["address"],
        actor=call.actor,
        display_name=body.get("name"),
        quota_bytes=parse_size(body["quota"]) if "quota" in body else None,
        active=body.get("active"),
    )
    return {"changed": bool(changes), "changes": {k: c.to_json() for k, c in changes.items()}}


@API.operation(
    "DELETE",
    "/api/v1/admin/mailboxes/{address}",
    summary="Remove a mailbox from the store (its Maildir stays on disk)",
    tag=TAG,
    scope=WRITE,
    answer=_changed(),
    errors=(NotFound, InUse, InvalidAddress),
)
def admin_remove_mailbox(call: Call) -> dict[str, Any]:
    """Remove a mailbox (refused while aliases deliver to it, as 'mailbox remove')."""
    accounts.remove_mailbox(call.services.store, call.path["address"], actor=call.actor)
    return {"changed": True}


# -- aliases ---------------------------------------------------------------------------


@API.operation(
    "GET",
    "/api/v1/admin/aliases",
    summary="List aliases",
    tag=TAG,
    scope=READ,
    answer=_listing("aliases"),
)
def admin_list_aliases(call: Call) -> dict[str, Any]:
    """Aliases and their destinations."""
    return {"aliases": [a.to_json() for a in accounts.list_aliases(call.services.store)]}


@API.operation(
    "POST",
    "/api/v1/admin/aliases",
    summary="Add an alias or destinations to it",
    tag=TAG,
    scope=WRITE,
    body={
        "type": "object",
        "required": ["source", "destinations"],
        "additionalProperties": False,
        "properties": {
            "source": ADDRESS,
            "destinations": {"type": "array", "minItems": 1, "maxItems": 1000, "items": ADDRESS},
        },
    },
    answer=_changed("alias"),
    errors=(AddressTaken, InvalidAddress, UnknownDomain, NotFound),
)
def admin_add_alias(call: Call) -> dict[str, Any]:
    """Make source deliver to destinations (as 'alias add': changed false if all were there)."""
    change = accounts.add_alias(
        call.services.store, call.body["source"], call.body["destinations"], actor=call.actor
    )
    return {"changed": change.changed, "added": list(change.added), "alias": change.alias.to_json()}


@API.operation(
    "DELETE",
    "/api/v1/admin/aliases/{source}",
    summary="Remove an alias",
    tag=TAG,
    scope=WRITE,
    answer=_changed(),
    errors=(NotFound, InvalidAddress),
)
def admin_remove_alias(call: Call) -> dict[str, Any]:
    """Remove an alias and all its destinations."""
    changed, _ = accounts.remove_alias_change(
        call.services.store, call.path["source"], (), actor=call.actor
    )
    return {"changed": changed}


# -- the declared state ------------------------------------------------------------------


@API.operation(
    "POST",
    "/api/v1/admin/apply",
    summary="Make the site what a state document declares (as 'mailprov apply')",
    tag=TAG,
    scope=WRITE,
    body={
        "type": "object",
        "required": ["state"],
        "additionalProperties": False,
        "properties": {
            "state": {
                "type": "object",
                "description": "A state document, as 'mailprov export --format json' prints "
                "(its schema: mailprov/data/state.schema.json).",
            },
            "check": {"type": "boolean", "default": False, "description": "Plan only."},
            "prune": {"type": "boolean", "default": False},
            "deploy": {
                "type": "boolean",
                "default": False,
                "description": "Then install the rendered config (needs the 'deploy' scope).",
            },
        },
    },
    answer={
        "type": "object",
        "required": ["changed", "plan"],
        "properties": {
            "changed": CHANGED,
            "plan": ANY_OBJECT,
            "passwords": {
                "type": "object",
                "description": "Generated passwords of new mailboxes, only here, only once.",
            },
            "deploy": ANY_OBJECT,
        },
    },
    errors=(StateInvalid, ScopeRefused, TemporaryFailure),
)
def admin_apply(call: Call) -> dict[str, Any]:
    """Apply a declared state: the same plan, one transaction and report as the CLI's.

    A second call with the same document is 'changed: false'. With 'check' nothing is
    written; with 'deploy' the rendered config is installed after the store commit.
    """
    body, services = call.body, call.services
    if body.get("deploy") and not (call.admin is not None and call.admin.allows("deploy")):
        raise ScopeRefused("'deploy': true needs the scope 'deploy'", scope="deploy")
    read = state.read(json.dumps(body["state"]), source="request body", fmt="json")
    if body.get("check"):
        planned = state.plan(
            services.store, services.settings, read, prune=body.get("prune", False)
        )
        return {"changed": planned.changed, "check": True, "plan": planned.to_json()}
    done = state.apply(
        services.store, services.settings, read, actor=call.actor, prune=body.get("prune", False)
    )
    answer: dict[str, Any] = {"changed": done.plan.changed, "plan": done.plan.to_json()}
    if done.generated:
        answer["passwords"] = {a: s.reveal() for a, s in sorted(done.generated.items())}
    if body.get("deploy"):
        result = deploy.apply(services.settings, runner=SubprocessRunner(), store=services.store)
        answer["deploy"] = {"changed": result.changed, "generation": result.generation}
        answer["changed"] = answer["changed"] or result.changed
    return answer


@API.operation(
    "GET",
    "/api/v1/admin/export",
    summary="The site as a state document (as 'mailprov export --format json')",
    tag=TAG,
    scope=READ,
    answer={"type": "object", "required": ["mailboxes"], "properties": {}},
)
def admin_export(call: Call) -> dict[str, Any]:
    """Domains, mailboxes and aliases, without password hashes (those need the CLI's
    '--with-hashes', where the output is a file made 0600).
    """
    return state.export(call.services.store, call.services.settings, with_hashes=False)
