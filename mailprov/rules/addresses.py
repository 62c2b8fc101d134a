"""Address rules: normalise, validate, IDNA-encode and suggest free alternatives.

Pure functions, no I/O. The rules are the SPEC's address row: a local part of
Latin letters, digits, dots and hyphens only, lower-cased, no leading, trailing
or doubled dot or hyphen, at most 64 characters; the whole address at most 254;
the domain stored as its IDNA A-label and shown as its U-label. Role addresses
(RFC 2142 and a few more) are reserved for aliases.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

import idna

from mailprov.errors import InvalidAddress

MAX_LOCAL = 64
MAX_ADDRESS = 254
MAX_DOMAIN = 253

#: RFC 2142 mailbox names plus the ones every mail admin expects to be kept back.
ROLE_LOCAL_PARTS = frozenset(
    {"postmaster", "abuse", "hostmaster", "webmaster", "admin", "root", "mailer-daemon"}
)

_LOCAL_RE = re.compile(r"[a-z0-9]+(?:[.-][a-z0-9]+)*")
_LABEL_RE = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_SHOWN_MAX = 64


def _shown(value: str) -> str:
    """A user-supplied value made safe to echo in a message: escaped and cut short."""
    text = value.encode("unicode_escape").decode("ascii")
    return text if len(text) <= _SHOWN_MAX else text[:_SHOWN_MAX] + "..."


@dataclass(frozen=True, order=True)
class Address:
    """A normalised mail address: lower-case local part and IDNA A-label domain.

    An empty local part is the catch-all ``@domain``, which only aliases may use.
    """

    local: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def is_catch_all(self) -> bool:
        """True for ``@domain``."""
        return not self.local

    @property
    def is_role(self) -> bool:
        """True for role addresses reserved for aliases (postmaster, abuse, ...)."""
        return self.local in ROLE_LOCAL_PARTS

    @property
    def unicode(self) -> str:
        """The address with its domain shown as the U-label."""
        return f"{self.local}@{domain_to_unicode(self.domain)}"


@functools.lru_cache(maxsize=4096)
def normalise_domain(raw: str) -> str:
    """Return the IDNA A-label (ASCII, lower-case) form of a domain name.

    Cached: a bulk file names the same few domains thousands of times (IDNA is slow).

    Raises:
        InvalidAddress: the name is empty, too long, or not a valid host name.
    """
    name = raw.strip()
    if name.endswith("."):
        name = name[:-1]
    if not name or any(ch.isspace() or ord(ch) < 32 for ch in name):
        raise InvalidAddress(
            f"'{_shown(raw)}' is not a valid domain name",
            hint="give a domain such as example.org, without spaces or control characters",
        )
    try:
        ascii_name = name.lower() if name.isascii() else _idna_encode(name)
    except UnicodeError as exc:
        raise InvalidAddress(
            f"'{_shown(raw)}' is not a valid domain name ({exc})",
            hint="give a domain such as example.org",
        ) from None
    labels = ascii_name.split(".")
    if (
        len(ascii_name) > MAX_DOMAIN
        or len(labels) < 2
        or not all(_LABEL_RE.fullmatch(label) for label in labels)
    ):
        raise InvalidAddress(
            f"'{_shown(raw)}' is not a valid domain name",
            hint="a domain needs at least two labels of letters, digits and hyphens",
        )
    if labels[-1].isdigit():
        raise InvalidAddress(
            f"'{_shown(raw)}' is not a valid domain name (the last label is a number)"
        )
    return ascii_name


def _idna_encode(name: str) -> str:
    """IDNA 2008 with UTS #46 mapping (what browsers and mail clients do)."""

    try:
        return str(idna.encode(name, uts46=True).decode("ascii"))
    except idna.IDNAError as exc:
        raise UnicodeError(str(exc)) from None


def domain_to_unicode(a_label: str) -> str:
    """Show an A-label domain as its U-label; an undecodable label is shown as is."""
    if "xn--" not in a_label:
        return a_label

    try:
        return str(idna.decode(a_label))
    except (idna.IDNAError, UnicodeError):
        return a_label


def parse_address(raw: str, *, allow_catch_all: bool = False) -> Address:
    """Normalise and validate an address according to the SPEC's rules.

    Args:
        raw: what the user typed.
        allow_catch_all: accept ``@domain`` (aliases only).

    Raises:
        InvalidAddress: naming the first rule broken.
    """
    if not isinstance(raw, str) or raw.count("@") != 1:
        raise InvalidAddress(
            f"'{_shown(str(raw))}' is not a mail address: it needs exactly one '@'"
        )
    local_raw, domain_raw = raw.split("@")
    domain = normalise_domain(domain_raw)
    local = local_raw.lower()
    if not local:
        if allow_catch_all:
            return Address("", domain)
        raise InvalidAddress(
            f"'{_shown(raw)}' has an empty local part",
            hint="only an alias may be a catch-all '@domain'",
        )
    check_local_part(local, raw)
    address = Address(local, domain)
    if len(str(address)) > MAX_ADDRESS:
        raise InvalidAddress(
            f"'{_shown(raw)}' is longer than {MAX_ADDRESS} characters",
            hint="choose a shorter name",
        )
    return address


def check_local_part(local: str, raw: str | None = None) -> None:
    """Raise InvalidAddress naming what is wrong with a lower-cased local part."""
    shown = _shown(raw if raw is not None else local)
    if len(local) > MAX_LOCAL:
        raise InvalidAddress(
            f"'{shown}': the name before '@' is longer than {MAX_LOCAL} characters"
        )
    bad = sorted({ch for ch in local if not (ch.isascii() and (ch.isalnum() or ch in ".-"))})
    if bad:
        listed = ", ".join(f"'{_shown(ch)}'" for ch in bad[:5])
        raise InvalidAddress(
            f"'{shown}': the name before '@' may hold only Latin letters, digits, dots "
            f"and hyphens (found {listed})"
        )
    if local[0] in ".-" or local[-1] in ".-":
        raise InvalidAddress(f"'{shown}': the name before '@' may not start or end with '.' or '-'")
    if not _LOCAL_RE.fullmatch(local):
        raise InvalidAddress(
            f"'{shown}': the name before '@' may not hold two dots or hyphens in a row"
        )


def parse_destination(raw: str) -> str:
    """Validate an alias destination: any well-formed address, local or remote.

    Remote destinations (forwarding) may use local parts that mailprov itself would
    not hand out (``+``, ``_``), but never spaces, quotes, commas or control
    characters, which would change the meaning of a Postfix lookup result.
    """
    text = raw.strip()
    if text.count("@") != 1:
        raise InvalidAddress(f"'{_shown(raw)}' is not a mail address: it needs exactly one '@'")
    local, domain_raw = text.split("@")
    if not local or len(local) > MAX_LOCAL or not re.fullmatch(r"[A-Za-z0-9._+=-]+", local):
        raise InvalidAddress(
            f"'{_shown(raw)}' is not a usable destination address",
            hint="a destination's name may hold letters, digits and . _ + = -",
        )
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidAddress(f"'{_shown(raw)}' is not a usable destination address")
    domain = normalise_domain(domain_raw)
    result = f"{local.lower()}@{domain}"
    if len(result) > MAX_ADDRESS:
        raise InvalidAddress(f"'{_shown(raw)}' is longer than {MAX_ADDRESS} characters")
    return result


def _fit(base: str, suffix: str, limit: int) -> str:
    """``base + suffix``, with base cut so the result is at most ``limit`` characters."""
    return base[: max(limit - len(suffix), 1)].rstrip(".-") + suffix


def suggest(address: Address) -> Iterator[Address]:
    """Deterministic alternatives for a taken address, best first, all valid.

    The caller checks which are free. Variations: dot/hyphen swaps and joins,
    name order swapped, initials, then numbered forms.
    """
    local = address.local or "mail"
    parts = [p for p in re.split(r"[.-]", local) if p]
    seen = {local}
    candidates: list[str] = []
    if len(parts) > 1:
        candidates += [
            "-".join(parts),
            ".".join(parts),
            "".join(parts),
            ".".join(reversed(parts)),
            parts[0][0] + "." + ".".join(parts[1:]),
            ".".join(parts[:-1]) + "." + parts[-1][0],
        ]
    limit = min(MAX_LOCAL, MAX_ADDRESS - 1 - len(address.domain))
    candidates += [_fit(local, str(n), limit) for n in range(1, 10)]
    candidates += [_fit(local, f".{n}", limit) for n in range(10, 100)]
    for candidate in candidates:
        if candidate in seen or len(candidate) > MAX_LOCAL:
            continue
        seen.add(candidate)
        if not _LOCAL_RE.fullmatch(candidate) or candidate in ROLE_LOCAL_PARTS:
            continue
        option = Address(candidate, address.domain)
        if len(str(option)) <= MAX_ADDRESS:
            yield option


def clean_name(name: str) -> str:
    """A display name on one line, inner whitespace collapsed (at most 256 characters)."""
    cleaned = " ".join(name.split())
    if len(cleaned) > 256 or any(ord(c) < 32 for c in name if c not in "\t "):
        raise InvalidAddress(
            "a display name must be one line of at most 256 characters", hint="shorten --name"
        )
    return cleaned
