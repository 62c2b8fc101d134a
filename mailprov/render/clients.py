"""Mail client settings for one address: the settings sheet and the files clients fetch.

Thunderbird's ``config-v1.1.xml``, Outlook's ``autodiscover.xml`` and the nginx
snippet that serves them come from templates (``templates/clients/``) through the
one environment of :mod:`mailprov.render.environment`; Apple's ``.mobileconfig``
is a property list written by :mod:`plistlib`, so it is always a valid plist. No
password is ever put into any of them: clients ask the user. No I/O here.
"""

from __future__ import annotations

import plistlib
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from mailprov import __version__
from mailprov.errors import ConfigInvalid
from mailprov.render.environment import environment
from mailprov.render.tls_profile import LOGIN_CIPHERS
from mailprov.settings.checks import parse_endpoint

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig

#: Namespace for the stable payload UUIDs of .mobileconfig profiles (same input, same file).
_PROFILE_NS = uuid.UUID("0f3c2a8e-6d5b-4c1e-9a7f-4b2d8e6c1a90")
#: Thunderbird's placeholder for "the address the user typed".
EMAIL_PLACEHOLDER = "%EMAILADDRESS%"

THUNDERBIRD = "clients/config-v1.1.xml.j2"
AUTODISCOVER = "clients/autodiscover.xml.j2"
NGINX = "clients/nginx-autoconfig.conf.j2"


@dataclass(frozen=True)
class ClientSettings:
    """Where a mail client connects, and as whom."""

    address: str
    domain: str
    hostname: str
    imaps: int
    pop3s: int
    submissions: int
    submission: int
    display_name: str = ""

    def servers(self) -> list[dict[str, Any]]:
        """The four services a client may use, best first within each direction."""
        return [
            {
                "protocol": "IMAP",
                "direction": "incoming",
                "port": self.imaps,
                "security": "SSL/TLS",
            },
            {
                "protocol": "POP3",
                "direction": "incoming",
                "port": self.pop3s,
                "security": "SSL/TLS",
            },
            {
                "protocol": "SMTP",
                "direction": "outgoing",
                "port": self.submissions,
                "security": "SSL/TLS",
            },
            {
                "protocol": "SMTP",
                "direction": "outgoing",
                "port": self.submission,
                "security": "STARTTLS",
            },
        ]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (no password: there is none here)."""
        return {
            "address": self.address,
            "username": self.address,
            "hostname": self.hostname,
            "authentication": "normal password, over TLS only",
            "servers": [s | {"hostname": self.hostname} for s in self.servers()],
        }


def sheet(cs: ClientSettings) -> str:
    """The settings sheet a person copies into a mail client."""
    lines = [
        f"Mail settings for {cs.address}",
        "",
        f"  User name:        {cs.address}",
        "  Password:         your mailbox password (never sent in clear: TLS is required)",
        "",
    ]
    for server in cs.servers():
        label = f"{server['protocol']} ({server['direction']})"
        lines.append(f"  {label:<18}{cs.hostname}  port {server['port']}  {server['security']}")
    lines += ["", "  Authentication:   normal password"]
    return "\n".join(lines) + "\n"


def template_values(cs: ClientSettings, *, username: str) -> dict[str, Any]:
    """Values for the XML templates, escaped for XML here (templates stay declarative)."""
    return {
        "domain": escape(cs.domain),
        "hostname": escape(cs.hostname),
        "username": escape(username),
        "display_name": escape(cs.display_name or cs.domain),
        "imaps": cs.imaps,
        "pop3s": cs.pop3s,
        "submissions": cs.submissions,
        "submission": cs.submission,
    }


def mobileconfig(cs: ClientSettings) -> bytes:
    """An Apple configuration profile (XML plist) with one IMAP account, no password."""
    account_id = uuid.uuid5(_PROFILE_NS, f"account:{cs.address}")
    profile_id = uuid.uuid5(_PROFILE_NS, f"profile:{cs.address}")
    reverse = ".".join(reversed(cs.domain.split(".")))
    account = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{reverse}.mailprov.account.{account_id}",
        "PayloadUUID": str(account_id).upper(),
        "PayloadDisplayName": f"Mail ({cs.address})",
        "EmailAccountDescription": cs.address,
        "EmailAccountName": cs.display_name or cs.address,
        "EmailAccountType": "EmailTypeIMAP",
        "EmailAddress": cs.address,
        "IncomingMailServerHostName": cs.hostname,
        "IncomingMailServerPortNumber": cs.imaps,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": cs.address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": cs.hostname,
        "OutgoingMailServerPortNumber": cs.submissions,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": cs.address,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{reverse}.mailprov.{profile_id}",
        "PayloadUUID": str(profile_id).upper(),
        "PayloadDisplayName": f"Mail for {cs.address}",
        "PayloadDescription": "Sets up the mail account; the device asks for the password.",
        "PayloadOrganization": cs.domain,
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [account],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=True)


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


def serve_proxy(config: SiteConfig) -> dict[str, Any] | None:
    """How nginx reaches ``mailprov serve``: the public name and port it answers on (from
    [web] public_url) and the upstream ([web] listen); None when serve does HTTPS itself.

    Raises:
        ConfigInvalid: [web] listen asks for any free port (0): nginx needs a fixed one.
    """
    if config.web.tls:
        return None
    host, port = parse_endpoint(config.web.listen)
    if port == 0:
        raise ConfigInvalid(
            f"web.listen = {config.web.listen!r}: nginx cannot proxy to 'any free port'",
            hint="give [web] listen a fixed port, e.g. 127.0.0.1:8080",
        )
    public = urlsplit(config.portal_url())
    https = public.scheme == "https"
    public_port = public.port or (443 if https else 80)
    return {
        "host": public.hostname,
        "port": public_port,
        "https": https,
        "redirect_port": "" if public_port == 443 else f":{public_port}",
        "upstream": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "ciphers": LOGIN_CIPHERS,
    }


def nginx(
    sites: list[dict[str, str]],
    *,
    cert_file: str,
    key_file: str,
    web_host: str,
    http_port: int = 80,
    https_port: int = 443,
    serve: dict[str, Any] | None = None,
) -> str:
    """The nginx snippet serving the per-domain folders in ``sites``, and ``web_host``.

    ``web_host`` is the name the SRV and CNAME records point at; it serves the first
    site's autodiscover file (the file is the same for every domain). ``serve``
    (:func:`serve_proxy`) adds the reverse proxy to ``mailprov serve``: inside the
    ``web_host`` server when the portal has the same name and HTTPS port (one
    ``server_name`` may have only one server per port), else in a server of its own.
    """
    merged = bool(
        serve
        and sites
        and serve["https"]
        and serve["host"] == web_host
        and serve["port"] == https_port
    )
    return _render(
        NGINX,
        {
            "sites": sites,
            "cert_file": cert_file,
            "key_file": key_file,
            "web_host": web_host,
            "autodiscover_root": sites[0]["autodiscover_root"] if sites else "",
            "http_port": http_port,
            "https_port": https_port,
            "serve": serve,
            "serve_merged": merged,
        },
    )
