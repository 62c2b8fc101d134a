"""Reading a message's header block without the email package (cheap enough for every message)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from email.header import decode_header, make_header


def parse_headers(raw: bytes) -> tuple[str, list[tuple[str, str]]]:
    """The header block as text, and its (name, unfolded value) pairs. Cheap: no email parser."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    block = (raw if end < 0 else raw[:end]).decode("utf-8", "replace")
    pairs: list[tuple[str, str]] = []
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and pairs:
            name, value = pairs[-1]
            pairs[-1] = (name, value + " " + line.strip())
        elif ":" in line:
            name, _, value = line.partition(":")
            pairs.append((name.strip(), value.strip()))
    return block, pairs


def header_value(pairs: Sequence[tuple[str, str]], name: str) -> str:
    """The first value of header ``name`` (RFC 2047 words decoded), or ''."""
    lname = name.lower()
    for key, value in pairs:
        if key.lower() == lname:
            if "=?" in value:
                with contextlib.suppress(Exception):
                    return str(make_header(decode_header(value)))
            return value
    return ""


def header_matches(block: str, name: str, value: str) -> bool:
    """True if header ``name`` of the block contains ``value`` (no case)."""
    _, pairs = parse_headers(block.encode("utf-8"))
    lname, lvalue = name.strip().lower(), value.lower()
    return any(k.lower() == lname and lvalue in v.lower() for k, v in pairs)
