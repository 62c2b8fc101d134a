"""What the systemd unit templates print about each unit's sandbox: who it runs as,
what it may write, and which IP peers it may reach.

Every unit mailprov renders runs sandboxed (``templates/systemd/*.j2`` say why for
each setting); the parts that depend on the site config are computed here:

* The site config stays 0640. The relay (a ``DynamicUser``) reads it through the
  group :data:`CONFIG_GROUP` (``SupplementaryGroups=``; ``mailprov init`` gives the
  config that group). The sweep and ``serve`` run as root, the store's owner, with no
  capabilities, so they can write only files root owns, and only in
  ``ReadWritePaths=``: the SQLite store's folder (``serve`` also reads the 0600 pepper).
* Network: a unit whose peers are all on this host gets ``IPAddressAllow=localhost``;
  a PostgreSQL store or smarthost given by IP address is added to that list. A peer
  given by name needs DNS and an address known only at run time, so that unit gets
  no IP allow-list (the rest of its sandbox stays). A unit that needs no IP at all
  (the sweep on SQLite) gets ``PrivateNetwork=yes``.
"""

from __future__ import annotations

import ipaddress
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig

#: The group that may read the site config (the relay unit joins it).
CONFIG_GROUP = "mailprov"

LOOPBACK = "localhost"


def _peer(host: str) -> str | None:
    """``localhost``, the IP address itself, or None for a name only DNS can resolve."""
    host = host.strip("[]")
    if host == LOOPBACK:
        return LOOPBACK
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return LOOPBACK if address.is_loopback else str(address)


def _network(peers: list[str | None]) -> dict[str, Any]:
    """The unit's network values: IP families and the allow-list (empty: no list)."""
    if not peers:
        return {"private": True, "families": "AF_UNIX", "ip_allow": ""}
    allow = "" if None in peers else " ".join(dict.fromkeys(p for p in peers if p))
    return {"private": False, "families": "AF_UNIX AF_INET AF_INET6", "ip_allow": allow}


def _listen_host(value: str) -> str:
    """The host part of ``HOST:PORT`` / ``[V6]:PORT`` (unchecked: the relay checks it)."""
    return value.rpartition(":")[0] or value


def _relay_peers(config: SiteConfig, store: dict[str, Any]) -> list[str | None]:
    relay = config.relay
    # Clients reach the listeners: a listener beyond loopback takes clients from anywhere.
    listeners = [v for v in (relay.listen, relay.tls_listen, relay.api_listen) if v]
    peers: list[str | None] = [LOOPBACK]
    for value in listeners:
        peer = _peer(_listen_host(value))
        peers.append(peer if peer == LOOPBACK else None)
    if store["backend"] == "postgresql":
        peers.append(_peer(store["pg_hosts"].rpartition(":")[0]))
    if relay.mode == "forward":
        peers.append(_peer(relay.smarthost_host))
    return peers


def _notify_peers(config: SiteConfig) -> list[str | None]:
    """Where notices go: the smarthost, or (a hook) anywhere the hook may reach."""
    if config.notify.hook:
        return [None]
    return [_peer(config.notify.smarthost)] if config.notify.smarthost else []


def _serve_peers(config: SiteConfig, store: dict[str, Any]) -> list[str | None]:
    # Clients: the reverse proxy on loopback, or anyone when it serves HTTPS itself.
    peer = _peer(_listen_host(config.web.listen))
    peers: list[str | None] = [LOOPBACK, peer if peer == LOOPBACK else None]
    if store["backend"] == "postgresql":
        peers.append(_peer(store["pg_hosts"].rpartition(":")[0]))
    return peers + _notify_peers(config)


def systemd_context(
    config: SiteConfig,
    store: dict[str, Any],
    *,
    mailprov_command: str,
    config_file: str,
    signer_user: str,
) -> dict[str, Any]:
    """The ``systemd`` template values (paths and names already checked by the caller)."""
    sweep_peers: list[str | None] = []
    read_write = []
    if store["backend"] == "sqlite":
        # SQLite writes a journal file next to the database: the folder must be writable.
        read_write.append(str(PurePosixPath(store["sqlite_path"]).parent))
    else:
        sweep_peers.append(_peer(store["pg_hosts"].rpartition(":")[0]))
    # The sweep mails password-age reminders.
    sweep_peers += _notify_peers(config)
    milter = _peer(config.dkim.milter_host)
    return {
        "mailprov_command": mailprov_command,
        "config_file": config_file,
        "config_group": CONFIG_GROUP,
        "relay": {"network": _network(_relay_peers(config, store))},
        "sweep": {"read_write": read_write, "network": _network(sweep_peers)},
        "serve": {"read_write": read_write, "network": _network(_serve_peers(config, store))},
        # Postfix connects to the signer's milter port; only a loopback one can be fenced.
        "signer": {
            "user": signer_user,
            "network": _network([milter if milter == LOOPBACK else None]),
        },
    }
