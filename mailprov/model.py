"""Values passed between layers: frozen dataclasses, each able to say itself as JSON,
and the closed sets of values the store keeps as strings (``StrEnum``s: a member
is its value, so columns, JSON and audit details carry the same strings as before).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from mailprov.rules.addresses import domain_to_unicode
from mailprov.rules.sizes import format_size


class Secret:
    """A secret string (password, code, token) whose repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: call only where it is used or shown once on purpose."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class AddressKind(StrEnum):
    """What an address of the shared namespace (``addresses.kind``) is."""

    MAILBOX = "mailbox"
    ALIAS = "alias"


class RequestKind(StrEnum):
    """The kind of mailbox a provisioning request asks for."""

    PERSONAL = "personal"
    CORPORATE = "corporate"


class RequestState(StrEnum):
    """The states of a provisioning request (see :mod:`mailprov.services.provisioning`)."""

    OPEN = "open"
    IDENTITY_VERIFIED = "identity-verified"
    CONFIRMED = "confirmed"
    PROVISIONED = "provisioned"
    REJECTED = "rejected"
    EXPIRED = "expired"
    LOCKED = "locked"
    CANCELLED = "cancelled"


#: The states in which a request still holds its address and can move on.
LIVE_REQUEST_STATES = (
    RequestState.OPEN,
    RequestState.IDENTITY_VERIFIED,
    RequestState.CONFIRMED,
    RequestState.LOCKED,
)


class CodeState(StrEnum):
    """The states of a one-time confirmation code (``code_challenges.state``)."""

    LIVE = "live"
    USED = "used"
    LOCKED = "locked"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    UNDELIVERED = "undelivered"


class DkimStatus(StrEnum):
    """Where a DKIM selector is in its rotation."""

    NEXT = "next"
    ACTIVE = "active"
    RETIRED = "retired"


def iso(ts: int | None) -> str | None:
    """Unix seconds as ISO 8601 UTC (``2026-11-23T05:11:48Z``), None stays None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Domain:
    """A mail domain served here (name is the IDNA A-label)."""

    name: str
    active: bool
    created_at: int
    mailboxes: int = 0
    aliases: int = 0
    #: The home backend of its new mailboxes (None: the site's default).
    backend: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "name": self.name,
            "unicode": domain_to_unicode(self.name),
            "active": self.active,
            "created_at": iso(self.created_at),
            "mailboxes": self.mailboxes,
            "aliases": self.aliases,
            "backend": self.backend,
        }


@dataclass(frozen=True)
class Mailbox:
    """A mailbox (never carries its password hash out of the store layer's callers)."""

    address: str
    display_name: str
    quota_bytes: int
    active: bool
    must_change: bool
    password_changed_at: int
    temp_password_expires_at: int | None
    created_at: int
    password_stale: bool = False
    #: Its own home backend (None: inherited), and the effective one with where it comes
    #: from (rules/backends.home_backend; empty on a one-host site).
    backend: str | None = None
    home: str = ""
    home_from: str = "site"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        local, _, domain = self.address.partition("@")
        return {
            "address": self.address,
            "unicode": f"{local}@{domain_to_unicode(domain)}",
            "name": self.display_name,
            "quota_bytes": self.quota_bytes,
            "quota": format_size(self.quota_bytes),
            "active": self.active,
            "must_change": self.must_change,
            "password_changed_at": iso(self.password_changed_at),
            "temp_password_expires_at": iso(self.temp_password_expires_at),
            "password_stale": self.password_stale,
            "created_at": iso(self.created_at),
            "backend": self.backend,
            "home": self.home or None,
            "home_inherited": self.home_from != "mailbox",
            "home_from": self.home_from,
        }


@dataclass(frozen=True)
class Alias:
    """An alias: mail to ``address`` goes to every destination. ``@domain`` is a catch-all."""

    address: str
    destinations: tuple[str, ...]
    active: bool
    created_at: int
    catch_all: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "catch_all", self.address.startswith("@"))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "address": self.address,
            "destinations": list(self.destinations),
            "catch_all": self.catch_all,
            "active": self.active,
            "created_at": iso(self.created_at),
        }


class SessionStage(StrEnum):
    """What an owner's session may do (``owner_sessions.stage``).

    A session starts at ``second-factor`` when two-factor authentication is on
    (only the code may be given), at ``change-password`` when the password is
    temporary (only a new password may be set), and otherwise at ``full``.
    """

    SECOND_FACTOR = "second-factor"
    CHANGE_PASSWORD = "change-password"  # noqa: S105  (a stage name, not a secret)
    FULL = "full"


class ContactKind(StrEnum):
    """Kinds of recovery contact (``recovery_contacts.kind``)."""

    EMAIL = "email"
    PHONE = "phone"
