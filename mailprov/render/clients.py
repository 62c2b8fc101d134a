"""The client auto-configuration files and the nginx snippet, rendered from templates/clients/."""

from __future__ import annotations

from typing import Any

from mailprov import __version__
from mailprov.clientconfig import ClientSettings, template_values
from mailprov.render.environment import environment

THUNDERBIRD = "clients/config-v1.1.xml.j2"
AUTODISCOVER = "clients/autodiscover.xml.j2"
NGINX = "clients/nginx-autoconfig.conf.j2"


def _render(template: str, values: dict[str, Any]) -> str:
    return (
        environment().get_template(template).render(values, version=__version__, template=template)
    )


def thunderbird(cs: ClientSettings, *, username: str) -> str:
    """Thunderbird's config-v1.1.xml (``username`` may be the %EMAILADDRESS% placeholder)."""
    return _render(THUNDERBIRD, template_values(cs, username=username))


def autodiscover(cs: ClientSettings, *, username: str) -> str:
    """Outlook's autodiscover.xml; an empty ``username`` leaves LoginName out (address used)."""
    return _render(AUTODISCOVER, template_values(cs, username=username))


def nginx(sites: list[dict[str, str]], *, cert_file: str, key_file: str) -> str:
    """The nginx snippet serving the per-domain folders in ``sites``."""
    return _render(NGINX, {"sites": sites, "cert_file": cert_file, "key_file": key_file})
