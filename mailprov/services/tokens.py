"""Admin API tokens: created with scopes, shown once, kept only as a hash, revocable, audited.

A token reads ``mpa_<id>_<secret>``: the id finds the row (and names the token
in lists and the audit log), the secret is 32 random bytes compared as SHA-256
in constant time. A fast hash is right here: a random 256-bit secret cannot be
guessed from its hash, unlike a person's password.

Scopes: ``accounts:read`` (list and show domains, mailboxes, aliases; export),
``accounts:write`` (change them; implies read), ``deploy`` (apply with deploy).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from mailprov.errors import AdminTokenRefused, InvalidValue, NotFound, ScopeRefused
from mailprov.model import Secret
from mailprov.store import audit
from mailprov.store.schema import admin_tokens

if TYPE_CHECKING:
    from mailprov.services.accounts import Actor
    from mailprov.store import Store

SCOPES = ("accounts:read", "accounts:write", "deploy")
#: A scope and the scopes it includes.
IMPLIES = {"accounts:write": {"accounts:read"}}
PREFIX = "mpa"
#: last_used_at is written at most this often per token.
TOUCH_SECONDS = 60


@dataclass(frozen=True)
class AdminToken:
    """A token as listed (never its secret)."""

    id: str
    scopes: tuple[str, ...]
    label: str
    actor: str
    created_at: int
    expires_at: int | None
    last_used_at: int | None
    revoked_at: int | None

    def allows(self, scope: str) -> bool:
        """Whether this token grants ``scope``."""
        granted = set(self.scopes)
        for held in self.scopes:
            granted |= IMPLIES.get(held, set())
        return scope in granted

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "id": self.id,
            "scopes": list(self.scopes),
            "label": self.label,
            "created_by": self.actor,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "last_used_at": self.last_used_at,
            "revoked": self.revoked_at is not None,
        }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def _token(row: Any) -> AdminToken:
    return AdminToken(
        row.id,
        tuple(row.scopes.split()),
        row.label,
        row.actor,
        row.created_at,
        row.expires_at,
        row.last_used_at,
        row.revoked_at,
    )


def check_scopes(scopes: list[str]) -> tuple[str, ...]:
    """The scopes, checked and in a stable order."""
    if not scopes:
        raise InvalidValue("a token needs at least one scope", hint="use " + ", ".join(SCOPES))
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise InvalidValue(
            f"unknown scope {unknown[0]!r}", hint="the scopes are: " + ", ".join(SCOPES)
        )
    return tuple(s for s in SCOPES if s in scopes)


def create(
    store: Store,
    scopes: list[str],
    *,
    actor: Actor,
    label: str = "",
    expires_in: int | None = None,
) -> tuple[Secret, AdminToken]:
    """A new token; its clear form is returned here and never again."""
    chosen = check_scopes(scopes)
    label = " ".join(label.split())
    if len(label) > 64:
        raise InvalidValue("a token label must be at most 64 characters")
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    expires = actor.now + expires_in if expires_in else None
    with store.begin() as conn:
        conn.execute(
            insert(admin_tokens).values(
                id=token_id,
                secret_hash=_digest(secret),
                scopes=" ".join(chosen),
                label=label,
                actor=actor.name,
                created_at=actor.now,
                expires_at=expires,
            )
        )
        audit.append(
            conn,
            at=actor.now,
            actor=actor.name,
            action="token.create",
            target=f"token:{token_id}",
            details={"scopes": list(chosen), "label": label, "expires_at": expires},
        )
    record = AdminToken(token_id, chosen, label, actor.name, actor.now, expires, None, None)
    return Secret(f"{PREFIX}_{token_id}_{secret}"), record


def list_tokens(store: Store) -> list[AdminToken]:
    """Every token, oldest first (revoked ones too, marked)."""
    with store.read() as conn:
        rows = conn.execute(select(admin_tokens).order_by(admin_tokens.c.created_at))
        return [_token(r) for r in rows]


def revoke(store: Store, token_id: str, *, actor: Actor, missing_ok: bool = False) -> bool:
    """Revoke a token; returns whether anything changed.

    Raises:
        NotFound: no such token (unless ``missing_ok``).
    """
    with store.begin() as conn:
        row = conn.execute(select(admin_tokens).where(admin_tokens.c.id == token_id)).first()
        if row is None:
            if missing_ok:
                return False
            raise NotFound(
                f"there is no admin token {token_id}", hint="list them with 'mailprov token list'"
            )
        if row.revoked_at is not None:
            return False
        conn.execute(
            update(admin_tokens).where(admin_tokens.c.id == token_id).values(revoked_at=actor.now)
        )
        audit.append(
            conn,
            at=actor.now,
            actor=actor.name,
            action="token.revoke",
            target=f"token:{token_id}",
        )
    return True


def authenticate(store: Store, presented: Secret, scope: str, *, now: int) -> AdminToken:
    """The live token ``presented`` is, if it grants ``scope``.

    Raises:
        AdminTokenRefused: malformed, unknown, wrong secret, revoked or expired (one answer).
        ScopeRefused: a live token without ``scope``.
    """
    prefix, _, rest = presented.reveal().partition("_")
    token_id, _, secret = rest.partition("_")
    if prefix != PREFIX or not token_id or not secret:
        raise AdminTokenRefused
    with store.read() as conn:
        row = conn.execute(select(admin_tokens).where(admin_tokens.c.id == token_id)).first()
    good = row is not None and hmac.compare_digest(row.secret_hash, _digest(secret))
    if row is None or not good or row.revoked_at is not None:
        raise AdminTokenRefused
    if row.expires_at is not None and row.expires_at <= now:
        raise AdminTokenRefused("the admin token has expired", hint="create a new one")
    token = _token(row)
    if not token.allows(scope):
        raise ScopeRefused(f"this needs the scope '{scope}'", scope=scope)
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_SECONDS:
        with store.begin() as conn:
            conn.execute(
                update(admin_tokens).where(admin_tokens.c.id == token_id).values(last_used_at=now)
            )
    return token
