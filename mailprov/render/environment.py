"""The one Jinja2 environment every mailprov template is rendered with.

Templates ship inside the wheel as ``mailprov/templates`` (pyproject's
force-include). In a source checkout or an editable install that folder does
not exist, so the loader falls back to the repository's ``templates/`` folder.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import BaseLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined

PACKAGE_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
SOURCE_TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates"


def templates_dir() -> Path:
    """The folder the templates are loaded from (wheel first, then the source tree)."""
    return PACKAGE_TEMPLATES if PACKAGE_TEMPLATES.is_dir() else SOURCE_TEMPLATES


def _loader() -> BaseLoader:
    if PACKAGE_TEMPLATES.is_dir():
        return PackageLoader("mailprov", "templates")
    return FileSystemLoader(str(SOURCE_TEMPLATES))


@cache
def environment() -> Environment:
    """The shared environment: StrictUndefined, no autoescape, exact whitespace control."""
    return Environment(
        loader=_loader(),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701  (config files, not HTML; values are validated instead)
    )
