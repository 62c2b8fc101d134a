"""Setting keys of a TOML config file as text, keeping its comments and layout.

mailprov writes its own config only to wire in what it made (``tls self-signed
--configure``); a person's comments and order must survive that. So this is a
line editor for the simple shape mailprov's config has (``[section]`` headers,
``key = value`` lines, each value on one line): it replaces the key's line in
its section, or adds the line at the end of the section, or adds the section.
The caller validates the result by loading it before it is written.
"""

from __future__ import annotations

import json
import re

_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]\s*(#.*)?$")


def toml_string(value: str) -> str:
    """A TOML basic string (JSON's escaping is valid TOML; DEL must be escaped too)."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def set_keys(text: str, section: str, values: dict[str, str]) -> str:
    """``text`` with ``[section] key = "value"`` set for each item of ``values``."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _section_of(line) == section), None)
    if start is None:
        tail = [""] if lines and lines[-1].strip() else []
        added = [f"[{section}]", *(f"{k} = {toml_string(v)}" for k, v in values.items())]
        return "\n".join([*lines, *tail, *added]) + "\n"
    end = next(
        (i for i in range(start + 1, len(lines)) if _section_of(lines[i]) is not None), len(lines)
    )
    pending = dict(values)
    for i in range(start + 1, end):
        key = lines[i].split("=", 1)[0].strip() if "=" in lines[i] else None
        if key in pending and not lines[i].lstrip().startswith("#"):
            lines[i] = f"{key} = {toml_string(pending.pop(key))}"
    insert_at = end
    while insert_at > start + 1 and not lines[insert_at - 1].strip():
        insert_at -= 1
    lines[insert_at:insert_at] = [f"{k} = {toml_string(v)}" for k, v in pending.items()]
    return "\n".join(lines) + "\n"


def _section_of(line: str) -> str | None:
    match = _HEADER.match(line)
    return match.group(1) if match else None
