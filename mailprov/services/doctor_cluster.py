"""``doctor``'s checks of a site on several hosts (README "Beyond one machine").

Run on each host: which part this host plays, whether each backend answers, how far the
store's replicas are behind (when the servers read from ``[store] read_hosts``), mailboxes
whose home is not a listed backend, and moves left half-way.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from mailprov.rules.backends import home_backend
from mailprov.services.findings import ERROR, INFO, WARNING, Finding
from mailprov.services.move import unfinished_moves
from mailprov.settings.checks import parse_db_host
from mailprov.store.replication import ServerState, server_state, server_url
from mailprov.store.schema import domains, mailboxes

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig
    from mailprov.store import Store

#: A replica further behind than this (seconds, with WAL still to replay) is a warning.
LAG_WARNING_S = 30.0
#: Up to this many mailboxes with an unknown home are named; more are counted.
LISTED = 20


def cluster(store: Store, settings: SiteConfig, *, timeout: float = 1.0) -> list[Finding]:
    """Every cluster check that applies to this host's settings."""
    out = [role(settings)]
    if settings.cluster.backend_hosts():
        out += backends_reachable(settings, timeout=timeout)
        out += unknown_homes(store, settings)
    out += moves(store)
    if settings.store.read_hosts:
        out += replication(settings)
    return out


def role(settings: SiteConfig) -> Finding:
    """This host's role and name."""
    c = settings.cluster
    if c.role == "all":
        text = "this host plays role 'all': it receives, stores and serves every mailbox"
    elif c.role == "backend":
        text = f"this host is backend {c.name!r} of {len(c.backends)} backend(s)"
    else:
        text = f"this host is a frontend for {len(c.backends)} backend(s)"
    return Finding("doctor.cluster.role", INFO, text, "", c.name or c.role)


def backends_reachable(settings: SiteConfig, *, timeout: float) -> list[Finding]:
    """Each backend accepts TCP on the ports the other hosts use: IMAP (the proxy), LMTP
    (delivery) and doveadm (``mailbox move``, when set up)."""
    c = settings.cluster
    wanted = {"imap": settings.ports.imap, "lmtp": settings.ports.lmtp}
    if c.doveadm_password_file:
        wanted["doveadm"] = c.doveadm_port
    out = []
    for name, host in c.backend_hosts().items():
        closed = [
            f"{what} ({port})" for what, port in wanted.items() if not _answers(host, port, timeout)
        ]
        if closed:
            out.append(
                Finding(
                    "doctor.cluster.backend_down",
                    ERROR,
                    f"backend {name} ({host}) does not answer on {', '.join(closed)}: its "
                    "mailboxes' logins fail and their mail waits in the frontends' queues",
                    f"start Postfix and Dovecot on {host} ('mailprov doctor' there), and check "
                    "that this host may reach it",
                    name,
                )
            )
        else:
            out.append(
                Finding(
                    "doctor.cluster.backend_up",
                    INFO,
                    f"backend {name} ({host}) answers on {', '.join(wanted)}",
                    "",
                    name,
                )
            )
    return out


def _answers(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unknown_homes(store: Store, settings: SiteConfig) -> list[Finding]:
    """Mailboxes whose home (own, else domain's, else the default) is not a listed backend."""
    hosts = settings.cluster.backend_hosts()
    default = settings.cluster.default_home()
    with store.read() as conn:
        rows = conn.execute(
            select(mailboxes.c.address, mailboxes.c.backend, domains.c.backend)
            .join(domains, domains.c.id == mailboxes.c.domain_id)
            .order_by(mailboxes.c.address)
        ).all()
    lost: dict[str, list[str]] = {}
    for address, own, domain in rows:
        home = home_backend(own, domain, default)
        if home not in hosts:
            lost.setdefault(home, []).append(address)
    out = []
    for home, addresses in sorted(lost.items()):
        shown = ", ".join(addresses[:LISTED]) + (" …" if len(addresses) > LISTED else "")
        out.append(
            Finding(
                "doctor.cluster.home_unknown",
                ERROR,
                f"{len(addresses)} mailbox(es) live on backend {home!r}, which is not in "
                f"[cluster] backends: their logins and mail have nowhere to go ({shown})",
                f"list {home}=HOST in [cluster] backends on every host again (their mail is "
                f"there), then move them if you retire it: 'mailprov mailbox move ADDRESS "
                f"--to BACKEND'",
                home,
            )
        )
    return out


def moves(store: Store) -> list[Finding]:
    """Mailboxes whose move switched the home but did not copy the last messages yet."""
    return [
        Finding(
            "doctor.cluster.move_unfinished",
            WARNING,
            f"{address} moved to {home} but the mail that reached {leaving} meanwhile was "
            "not copied yet (the move was interrupted)",
            f"run 'mailprov mailbox move {address} --to {home}' again: it copies the rest",
            address,
        )
        for address, leaving, home in unfinished_moves(store)
    ]


def replication(settings: SiteConfig) -> list[Finding]:
    """The store's primary (``[store] url``) and each read host: streaming replicas on the
    primary, replay lag on a replica."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415  (lazy: heavy)

    url = settings.store.url
    parsed = make_url(url)
    default_port = parsed.port or 5432
    # Each server once, by host:port (the primary is often a read host too).
    servers = {f"{parsed.host}:{default_port}": url}
    for entry in settings.store.read_hosts:
        host, port = parse_db_host(entry, default_port)
        servers.setdefault(f"{host}:{port}", server_url(url, host, port))
    out = []
    for where, server in servers.items():
        try:
            state = server_state(server)
        except SQLAlchemyError as exc:
            out.append(
                Finding(
                    "doctor.store.server_unreachable",
                    ERROR if server == url else WARNING,
                    f"the store's server {where} does not answer: {type(exc).__name__}"
                    + ("" if server == url else " (the servers read from the others)"),
                    "start it, or take it out of [store] read_hosts",
                    where,
                )
            )
            continue
        out += _primary(state) if not state.replica else _replica(state)
    return out


def _primary(state: ServerState) -> list[Finding]:
    if not state.replicas:
        return [
            Finding(
                "doctor.store.no_replicas",
                WARNING,
                f"the primary {state.where} streams to no replica (pg_stat_replication is "
                "empty): the read hosts serve what they last replayed",
                "start the replicas and check their primary_conninfo",
                state.where,
            )
        ]
    return [
        Finding(
            "doctor.store.replica_streaming",
            WARNING if (r.replay_lag or 0) > LAG_WARNING_S else INFO,
            f"the primary {state.where} streams to {r.name or 'a replica'} at {r.client} "
            f"({r.state}), replay lag {_seconds(r.replay_lag)}",
            "a lagging replica answers 'user unknown' for new mailboxes until it catches up",
            r.client,
        )
        for r in state.replicas
    ]


def _replica(state: ServerState) -> list[Finding]:
    if state.paused:
        return [
            Finding(
                "doctor.store.replay_paused",
                ERROR,
                f"the replica {state.where} has paused its replay (pg_wal_replay_pause()): "
                "new mailboxes cannot log in where the servers read from it",
                "resume it: SELECT pg_wal_replay_resume();",
                state.where,
            )
        ]
    behind = not state.caught_up and (state.replay_age or 0) > LAG_WARNING_S
    said = (
        "has replayed everything it received"
        if state.caught_up
        else f"is replaying, {_seconds(state.replay_age)} behind"
    )
    return [
        Finding(
            "doctor.store.replica_lag",
            WARNING if behind else INFO,
            f"the replica {state.where} {said} (last replayed transaction "
            f"{_seconds(state.replay_age)} old)",
            "check its connection to the primary and its disk" if behind else "",
            state.where,
        )
    ]


def _seconds(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1f} s"
