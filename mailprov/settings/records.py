"""Checks for values that end up in DNS records and mail headers: addresses, report URIs, SPF.

Same contract as :mod:`mailprov.settings.checks`: (value, folder) -> the value to keep, or
:class:`~mailprov.settings.checks.Invalid`.
"""

from __future__ import annotations

import re
from pathlib import Path

from mailprov.settings.checks import Invalid, fqdn, host

_LOCAL_PART_RE = re.compile(r"[A-Za-z0-9_+=-]+(?:\.[A-Za-z0-9_+=-]+)*")
_SELECTOR_PREFIX_RE = re.compile(r"(?:[a-z0-9][a-z0-9-]{0,49})?")
_REPORT_SIZE_RE = re.compile(r"![0-9]{1,10}[kmgt]?")
_HTTPS_PATH_RE = re.compile(r"(?:/[A-Za-z0-9._~/-]*)?")
# SPF text: printable ASCII and spaces, without the quote and backslash a TXT string escapes.
_SPF_RE = re.compile(r"v=spf1(?: [!#-\[\]-~]+)*", re.IGNORECASE)


def mail_address(value: str, base: Path) -> str:
    """A plain mail address (``local@host``; one-label hosts such as localhost are fine)."""
    local, at, domain = value.rpartition("@")
    if not at or not _LOCAL_PART_RE.fullmatch(local) or len(local) > 64:
        raise Invalid(
            "not a plain mail address",
            hint="e.g. mailprov@example.org (no display name, spaces or quotes)",
        )
    try:
        return f"{local}@{host(domain, base)}"
    except Invalid:
        raise Invalid("the part after '@' is not a host name", hint="e.g. example.org") from None


def _mailto(value: str, base: Path, *, sizes: bool) -> str:
    if not value.lower().startswith("mailto:"):
        raise Invalid(f"'{value[:64]}' is not a mailto: URI", hint="e.g. mailto:dmarc@example.org")
    address = value[len("mailto:") :]
    limit = ""
    if sizes and "!" in address:
        address, _, limit = address.partition("!")
        if not _REPORT_SIZE_RE.fullmatch("!" + limit):
            raise Invalid(f"'!{limit[:16]}' is not a size limit", hint="e.g. !10m")
        limit = "!" + limit
    local, _, domain = mail_address(address, base).partition("@")
    try:
        domain = fqdn(domain, base)
    except Invalid:
        raise Invalid(
            "a report address needs a full domain", hint="e.g. dmarc@example.org"
        ) from None
    return f"mailto:{local}@{domain}{limit}"


def mailto_list(value: str, base: Path) -> str:
    """DMARC rua/ruf: comma-separated ``mailto:ADDRESS[!SIZE]`` URIs."""
    return ",".join(_mailto(part, base, sizes=True) for part in value.split(","))


def _https(value: str, base: Path) -> str:
    rest = value[len("https://") :]
    name, slash, path = rest.partition("/")
    if not _HTTPS_PATH_RE.fullmatch(slash + path):
        raise Invalid(
            f"'{value[:64]}' holds characters a report URI cannot",
            hint="e.g. https://tlsrpt.example.org/v1",
        )
    return f"https://{fqdn(name, base)}{slash}{path}"


def report_uri_list(value: str, base: Path) -> str:
    """TLS-RPT rua: comma-separated ``mailto:`` or ``https://`` URIs."""
    return ",".join(
        _https(part, base)
        if part.lower().startswith("https://")
        else _mailto(part, base, sizes=False)
        for part in value.split(",")
    )


def spf(value: str, _base: Path) -> str:
    """SPF text: ``v=spf1`` then space-separated terms of printable ASCII (no quotes)."""
    if not _SPF_RE.fullmatch(value):
        raise Invalid(
            "not SPF text",
            hint='start with "v=spf1", separate terms by one space, no quotes or backslashes; '
            'e.g. "v=spf1 mx -all"',
        )
    return value


def mx_pattern(value: str, base: Path) -> str:
    """An MTA-STS mx pattern: a host name, or ``*.`` and a domain."""
    if value.startswith("*."):
        return "*." + fqdn(value[2:], base)
    return fqdn(value, base)


def selector_prefix(value: str, _base: Path) -> str:
    """The start of generated DKIM selectors: one DNS label's worth, lower-case."""
    if not _SELECTOR_PREFIX_RE.fullmatch(value):
        raise Invalid(
            "not a selector prefix",
            hint="up to 50 lower-case letters, digits and hyphens, starting with a letter or digit",
        )
    return value
