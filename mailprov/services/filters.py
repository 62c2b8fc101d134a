"""The owner's filters: forms (or a script of their own) → a checked Sieve script → the
mail server's script storage, and the forms kept in the store (``owner_filters``).

Saving is all or nothing. The forms are checked (:func:`mailprov.rules.sieve.parse_spec`),
compiled, held against ``[dovecot] sieve_max_script_size`` and compiled again by
Pigeonhole's own ``sievec`` with the rendered Dovecot config; only then, inside one
store transaction, is the script written into the mailbox's storage as the active
script ``mailprov`` and the forms stored with an audit record. A refusal at any step
changes nothing. A change of forwarding is a security event: the owner's verified
recovery contacts are told (someone who got in could otherwise siphon the mail off).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, insert, select

from mailprov.errors import (
    FiltersNotInstalled,
    ServerToolMissing,
    SieveInvalid,
    SieveTooLarge,
    TemporaryFailure,
)
from mailprov.rules import sieve as rules
from mailprov.rules.sizes import format_size, parse_size
from mailprov.services import owner
from mailprov.services.accounts import mailbox_row
from mailprov.store import audit
from mailprov.store.schema import owner_filters
from mailprov.system import sieve
from mailprov.system.run import Runner, SubprocessRunner

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mailprov.settings import SiteConfig
    from mailprov.store import Store

#: What the owner gave last: the forms, or a script of their own.
FORMS, SCRIPT = "forms", "script"


@dataclass(frozen=True)
class Filters:
    """The owner's saved filters and what the mail server runs."""

    kind: str
    spec: rules.FilterSpec
    script: str
    updated_at: int | None
    active_script: str | None

    def to_json(self) -> dict[str, Any]:
        """The API's answer."""
        return {
            **self.spec.to_json(),
            "kind": self.kind,
            "script": self.script,
            "updated_at": self.updated_at,
            "active_script": self.active_script,
            "script_name": rules.SCRIPT_NAME,
        }


def dovecot_conf(settings: SiteConfig) -> Path | None:
    """The rendered dovecot.conf ([deploy] dovecot_dir), when it is there."""
    conf = settings.resolve_path(settings.deploy.dovecot_dir) / "dovecot.conf"
    return conf if conf.is_file() else None


def mail_home(settings: SiteConfig, conn: Connection, address: str) -> sieve.MailHome:
    """The mailbox's mail home as the rendered user_query gives it (MAIL_ROOT/DOMAIN/LOCAL)."""
    row = mailbox_row(conn, address)
    dc = settings.dovecot
    root = settings.resolve_path(dc.mail_root)
    return sieve.MailHome(root / str(row.domain) / str(row.local_part), dc.vmail_uid, dc.vmail_gid)


def max_script_size(settings: SiteConfig) -> int:
    """The largest script in bytes (0: no limit of its own)."""
    return parse_size(settings.dovecot.sieve_max_script_size)


#: Built once with a bind parameter: building a statement per call costs more than the query.
_FILTERS = select(owner_filters).where(owner_filters.c.address == bindparam("address"))


def get(store: Store, settings: SiteConfig, address: str) -> Filters:
    """The owner's filters (empty forms when none were saved)."""
    with store.read() as conn:
        home = mail_home(settings, conn, address)
        row = conn.execute(_FILTERS, {"address": address}).one_or_none()
    active = sieve.active_script(home)
    if row is None:
        return Filters(FORMS, rules.FilterSpec(), "", None, active)
    doc = json.loads(row.spec)
    if doc.get("kind") == SCRIPT:
        script = str(doc.get("script", ""))
        return Filters(SCRIPT, rules.FilterSpec(), script, int(row.updated_at), active)
    spec = rules.parse_spec(doc.get("forms", {}), owner=address, max_redirects=1_000)
    script = rules.compile_sieve(spec, owner=address, header=f"filters of {address}")
    return Filters(FORMS, spec, script, int(row.updated_at), active)


def save_forms(
    store: Store,
    settings: SiteConfig,
    address: str,
    doc: dict[str, Any],
    *,
    now: int,
    runner: Runner | None = None,
) -> Filters:
    """Check, compile, verify and install the forms in ``doc``; store them.

    Raises:
        FiltersInvalid: a field of the forms is wrong.
        SieveTooLarge: the script would exceed the site's limit.
        SieveInvalid: Pigeonhole refused the compiled script.
        FiltersNotInstalled: sievec or the mail home could not be reached.
    """
    spec = rules.parse_spec(doc, owner=address, max_redirects=settings.dovecot.sieve_max_redirects)
    script = rules.compile_sieve(spec, owner=address, header=f"filters of {address}")
    stored = {"kind": FORMS, "forms": spec.to_json()}
    return _save(store, settings, address, FORMS, spec, script, stored, now=now, runner=runner)


def save_script(
    store: Store,
    settings: SiteConfig,
    address: str,
    script: str,
    *,
    now: int,
    runner: Runner | None = None,
) -> Filters:
    """Install a Sieve script the owner wrote (instead of the forms); store it.

    Raises:
        SieveTooLarge: the script exceeds the site's limit.
        SieveInvalid: Pigeonhole refused it (``problems`` names the lines).
        FiltersNotInstalled: sievec or the mail home could not be reached.
    """
    stored = {"kind": SCRIPT, "script": script}
    empty = rules.FilterSpec()
    return _save(store, settings, address, SCRIPT, empty, script, stored, now=now, runner=runner)


def _verify(settings: SiteConfig, script: str, runner: Runner) -> None:
    limit = max_script_size(settings)
    size = len(script.encode("utf-8"))
    if limit and size > limit:
        raise SieveTooLarge(
            f"the Sieve script would be {size} bytes; this site allows {format_size(limit)}",
            size=size,
            limit=limit,
        )
    try:
        problems = sieve.check(runner, script, dovecot_conf(settings))
    except (ServerToolMissing, TemporaryFailure) as exc:
        raise FiltersNotInstalled(
            f"the script could not be checked: {exc.message}",
            hint="the administrator should install Pigeonhole (Debian: dovecot-sieve)",
        ) from None
    if problems:
        raise SieveInvalid(
            f"Pigeonhole refused the Sieve script: {problems[0]}", problems=problems[:10]
        )


def _save(
    store: Store,
    settings: SiteConfig,
    address: str,
    kind: str,
    spec: rules.FilterSpec,
    script: str,
    stored: dict[str, Any],
    *,
    now: int,
    runner: Runner | None,
) -> Filters:
    _verify(settings, script, runner or SubprocessRunner())
    forwarding = spec.forwarding.to if spec.forwarding else ()
    contacts: list[str] | None = None
    with store.begin() as conn:
        home = mail_home(settings, conn, address)
        old = conn.execute(
            select(owner_filters.c.spec).where(owner_filters.c.address == address)
        ).scalar_one_or_none()
        conn.execute(delete(owner_filters).where(owner_filters.c.address == address))
        conn.execute(
            insert(owner_filters).values(
                address=address, spec=json.dumps(stored, ensure_ascii=False), updated_at=now
            )
        )
        audit.append(
            conn,
            at=now,
            actor=f"owner:{address}",
            action="owner.filters-saved",
            target=address,
            details={
                "kind": kind,
                "rules": len(spec.rules),
                "forwards": len(forwarding),
                "vacation": spec.vacation is not None,
                "bytes": len(script.encode("utf-8")),
            },
        )
        if _forwards(old) != _forwards(json.dumps(stored)):
            contacts = owner.security_event(
                conn, address, "forwarding-changed", now=now, details={"forwards": len(forwarding)}
            )
        # Last, so a refusal here rolls the store back: nothing changed anywhere.
        _install(settings, home, script)
    if contacts:
        owner.send_security_notices(settings, address, "forwarding-changed", contacts)
    return Filters(kind, spec, script, now, rules.SCRIPT_NAME)


def all_forwards(store: Store) -> dict[str, tuple[str, ...]]:
    """Every mailbox whose filters forward mail -> where to (see :func:`_forwards`)."""
    with store.read() as conn:
        rows = conn.execute(select(owner_filters.c.address, owner_filters.c.spec)).all()
    return {row.address: fwd for row in rows if (fwd := _forwards(row.spec))}


def _forwards(raw: str | None) -> tuple[str, ...]:
    """The forwarding addresses of stored filters (a script of the owner's own that
    redirects counts as one unknown address: its change is told too)."""
    if raw is None:
        return ()
    doc = json.loads(raw)
    if doc.get("kind") == SCRIPT:
        text = str(doc.get("script", ""))
        return (text,) if "redirect" in text.lower() else ()
    fwd = (doc.get("forms") or {}).get("forwarding")
    return tuple(fwd["to"]) if fwd else ()


def _install(settings: SiteConfig, home: sieve.MailHome, script: str) -> None:
    root = settings.resolve_path(settings.dovecot.mail_root)
    try:
        sieve.install(home, root, rules.SCRIPT_NAME, script)
    except (sieve.StorageRefused, OSError) as exc:
        raise FiltersNotInstalled(
            f"the script could not be written to the mail home: {exc}",
            hint="the administrator should check [dovecot] mail_root and that "
            "'mailprov serve' may write there (as root or the vmail user)",
        ) from None
