"""Sizes such as quotas: ``2G``, ``500M``, ``1.5GiB``, ``0`` (unlimited), in binary units."""

from __future__ import annotations

import re

from mailprov.errors import InvalidValue

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Bytes in a size such as ``2G`` (binary units: 1G = 1024**3 bytes). ``0`` means unlimited."""
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE_RE.fullmatch(text.strip())
        if not match:
            raise InvalidValue(
                f"'{text[:32]}' is not a size",
                hint="give a number with an optional unit K, M, G or T, e.g. 2G (0 = unlimited)",
            )
        value = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    if value < 0:
        raise InvalidValue("a size cannot be negative")
    return value


def format_size(value: int) -> str:
    """A byte count the way a person writes it: ``2G``, ``500M``, ``unlimited``."""
    if value == 0:
        return "unlimited"
    for unit in ("T", "G", "M", "K"):
        if value % _UNITS[unit] == 0:
            return f"{value // _UNITS[unit]}{unit}"
    return str(value)
