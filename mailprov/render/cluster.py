"""What the templates need to render a host's ``[cluster]`` role (README "Beyond one machine").

The store keeps only backend names (``mailboxes.backend``, ``domains.backend``); where each
backend is reached comes from the validated ``[cluster] backends`` and is written into
the SQL here, as a ``CASE`` over the names, so that a new mailbox needs no reload and an
unknown name (set by hand, or a backend removed from the list) gives NULL: a temporary
failure, never a bounce.

Every value is built from settings checked at load: backend names match
``[a-z0-9][a-z0-9_-]*`` and hosts are IP addresses or host names, so none can carry a
quote into the SQL.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig

#: A mailbox's effective home in SQL (``m``: mailboxes, ``d``: its domain), as
#: :func:`mailprov.rules.backends.home_backend` computes it: its own, the domain's, the site's.
HOME = "COALESCE(m.backend, d.backend, '{default}')"


def _case(home: str, values: dict[str, str]) -> str:
    """``CASE home WHEN 'name' THEN 'value' … END`` (NULL for a name not listed)."""
    whens = " ".join(f"WHEN '{name}' THEN '{value}'" for name, value in values.items())
    return f"CASE {home} {whens} END"


def _lmtp_nexthop(host: str, port: int) -> str:
    """Postfix's LMTP destination: brackets skip MX lookups; IPv6 needs ``ipv6:``."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"lmtp:inet:[ipv6:{host}]:{port}"
    except ValueError:
        pass
    return f"lmtp:inet:[{host}]:{port}"


def _bracketed(host: str) -> str:
    """An IPv6 address in brackets (for Postfix's inet:HOST:PORT), anything else as it is."""
    return f"[{host}]" if ":" in host else host


def _dovecot_network(raw: str) -> str:
    """Dovecot's form of a network (no brackets around IPv6)."""
    return str(ipaddress.ip_network(raw.strip("[]").replace("]/", "/"), strict=False))


def context(config: SiteConfig) -> dict[str, Any]:
    """The ``cluster`` values of the templates (roles other than ``all`` use them)."""
    cluster = config.cluster
    hosts = cluster.backend_hosts()
    home = HOME.format(default=cluster.default_home())
    lmtp = config.ports.lmtp
    # Postfix restriction classes, one per backend (by position: names may hold '-').
    quota_classes = {n: f"quota_{i}" for i, n in enumerate(hosts, start=1)}
    quota_port = config.ports.quota_status
    return {
        "role": cluster.role,
        "frontend": cluster.role == "frontend",
        "backend": cluster.role == "backend",
        "name": cluster.name,
        # SQL: the mailbox's home, the host its sessions go to, and its Postfix transport.
        "home": home,
        "proxy_host": _case(home, hosts),
        # Dovecot's %s is the service being proxied; each goes to the same port here.
        "proxy_port": _case(
            "'%s'",
            {
                "imap": str(config.ports.imap),
                "pop3": str(config.ports.pop3),
                "sieve": str(config.ports.managesieve),
            },
        ),
        # An unknown name: the error(8) agent in retry mode keeps the mail queued (4.3.5).
        "transport": "COALESCE("
        + _case(home, {n: _lmtp_nexthop(h, lmtp) for n, h in hosts.items()})
        + f", 'retry:4.3.5 home backend ' || {home} || ' is not in [cluster] backends')",
        # A frontend asks each mailbox's home whether it has room (quota-status, at RCPT).
        "quota_class": _case(home, quota_classes),
        "quota_classes": {
            quota_classes[n]: f"check_policy_service inet:{_bracketed(h)}:{quota_port}"
            for n, h in hosts.items()
        },
        # A backend's LMTP for the frontends listens at its own address in the list.
        "lmtp_address": hosts.get(cluster.name, "127.0.0.1"),
        "frontends": ", ".join(_dovecot_network(n) for n in cluster.frontends),
        # A frontend's source address towards the backends (empty: the system's choice).
        "source_address": cluster.source_address if cluster.role == "frontend" else "",
        "source_ipv6": ":" in cluster.source_address,
    }
