"""OpenDKIM's config files (opendkim.conf, KeyTable, SigningTable, TrustedHosts) from templates.

The loader reads the package's ``templates`` folder when installed (the wheel
ships ``templates/`` as ``mailprov/templates``) and the repository's
``templates/`` otherwise. It follows the house Jinja settings (StrictUndefined,
no autoescape, trimmed blocks), so it can be folded into the render area's one
environment without changing a template.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailprov import __version__

if TYPE_CHECKING:
    from jinja2 import Environment

#: Rendered file name -> template name.
FILES = {
    "opendkim.conf": "opendkim/opendkim.conf.j2",
    "KeyTable": "opendkim/KeyTable.j2",
    "SigningTable": "opendkim/SigningTable.j2",
    "TrustedHosts": "opendkim/TrustedHosts.j2",
}


def templates_dir() -> Path:
    """The templates folder: inside the installed package, else the source tree's."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    msg = f"no templates folder next to {here}"  # a broken install, not a user error
    raise FileNotFoundError(msg)


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja environment for these templates (house settings)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined  # noqa: PLC0415

    return Environment(
        loader=FileSystemLoader(str(templates_dir())),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701  (config files, not HTML)
    )


@dataclass(frozen=True)
class SigningKey:
    """One signing key as OpenDKIM's tables name it."""

    domain: str
    selector: str
    key_file: str

    @property
    def key_name(self) -> str:
        """The KeyTable key name: the record's DNS name."""
        return f"{self.selector}._domainkey.{self.domain}"


@dataclass(frozen=True)
class OpendkimContext:
    """Everything the templates use, computed here rather than in Jinja."""

    config_dir: str
    socket: str
    pid_file: str
    user: str
    keys: tuple[SigningKey, ...]
    trusted_hosts: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """The template variables."""
        domains = sorted({k.domain for k in self.keys})
        return {
            "version": __version__,
            "config_dir": self.config_dir,
            "socket": self.socket,
            "pid_file": self.pid_file,
            "user": self.user,
            "keys": sorted(self.keys, key=lambda k: (k.domain, k.selector)),
            "domains": domains,
            "multiple": len(self.keys) > len(domains),
            "trusted_hosts": self.trusted_hosts,
        }


def render(context: OpendkimContext) -> dict[str, str]:
    """File name -> rendered text, for every OpenDKIM file."""
    env = environment()
    values = context.as_dict()
    return {name: env.get_template(template).render(values, template=template) for name, template in FILES.items()}
