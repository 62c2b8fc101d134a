"""The inbox's HTML, rendered with Jinja2 from ``templates/inbox/`` (shipped in the wheel).

This is not the config renderer's environment (:mod:`mailprov.render.environment`):
that one writes config files and must not escape; this one writes HTML from
captured mail and escapes every value (``autoescape``), with ``StrictUndefined``
so a missing value is an error in the tests rather than an empty cell. The
templates are found where the config templates are
(:func:`~mailprov.render.environment.templates_dir`). The static script and
style are read once and served from memory.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from mailprov.render.environment import templates_dir

STATIC = {
    "inbox.js": "application/javascript; charset=utf-8",
    "inbox.css": "text/css; charset=utf-8",
}


@cache
def environment() -> Environment:
    """The inbox's environment: HTML autoescape, StrictUndefined."""
    return Environment(
        loader=FileSystemLoader(str(templates_dir() / "inbox")),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context: Any) -> str:
    """One page of the inbox."""
    return environment().get_template(template).render(**context)


@cache
def static(name: str) -> bytes | None:
    """A static file's bytes (only the names in :data:`STATIC`), or None."""
    if name not in STATIC:
        return None
    return (templates_dir() / "inbox" / "static" / name).read_bytes()
