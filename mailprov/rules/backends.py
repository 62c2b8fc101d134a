"""Backends: the hosts that store mail when a site runs on several mail hosts.

A site's backends are listed once, in ``[cluster] backends``, as ``NAME=HOST`` (the same
list on every host). Each mailbox has a home backend: its own (``mailbox add --backend``),
else its domain's, else the site's default. Frontends send a mailbox's IMAP/POP3 sessions
and its mail to its home; a backend serves the mailboxes whose home it is.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Literal

from mailprov.errors import InvalidValue, UnknownBackend

#: Where a mailbox's home comes from: its own, its domain's, or the site's default.
HomeOrigin = Literal["mailbox", "domain", "site"]

#: A backend's name: short, lower-case, safe in SQL, config files and logs.
BACKEND_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def backend_name(value: str) -> str:
    """A backend name, checked (lower-case letters, digits, '_' and '-')."""
    if not BACKEND_NAME_RE.fullmatch(value):
        raise InvalidValue(
            f"{value!r} is not a backend name",
            hint="lower-case letters, digits, '_' and '-' (at most 63), e.g. backend-1",
        )
    return value


def parse_backend(entry: str) -> tuple[str, str]:
    """``NAME=HOST`` → (name, host); the host is checked by the caller's host rule."""
    name, sep, host = entry.partition("=")
    if not sep or not host:
        raise InvalidValue(
            f"{entry!r} is not NAME=HOST",
            hint="name the backend and where frontends reach it, e.g. backend-1=10.0.0.2",
        )
    return backend_name(name.strip()), host.strip()


def home_backend(mailbox: str | None, domain: str | None, default: str) -> str:
    """The backend that stores a mailbox's mail: its own, else its domain's, else the
    site's default (empty on a single-host site)."""
    return mailbox or domain or default


def home_origin(mailbox: str | None, domain: str | None) -> HomeOrigin:
    """Which level :func:`home_backend` took the home from (anything but "mailbox" is
    inherited)."""
    if mailbox:
        return "mailbox"
    return "domain" if domain else "site"


def known_backend(name: str, backends: Collection[str]) -> str:
    """``name`` checked against the site's backends (``[cluster] backends``' names).

    Raises:
        UnknownBackend: the site has no such backend, or no backends at all (one host).
    """
    if not backends:
        raise UnknownBackend(
            f"backend {name!r}: this site has no backends (its hosts' [cluster] role is 'all': "
            "one host stores every mailbox)",
            hint="leave out --backend, or list the site's backends in [cluster] backends "
            "(README, 'Beyond one machine')",
        )
    if backend_name(name) not in backends:
        raise UnknownBackend(
            f"backend {name!r} is not one of this site's backends: {', '.join(backends)}",
            hint="name one of [cluster] backends",
        )
    return name
