"""``mailbox move ADDR --to BACKEND``: give a mailbox a new home backend without losing mail.

Four stages, each safe to interrupt (README "Beyond one machine"):

``copy``
    The new home's doveadm server pulls the mailbox from the old home's with
    ``doveadm backup -R`` (dsync over the doveadm protocol). The store still names the
    old home: killed here, the mailbox stays there with all its mail, and a re-run
    copies again (dsync makes the new copy exact, whatever an earlier attempt left).
``switch``
    One transaction sets ``backend`` to the new home and ``moving_from`` to the old
    one, with its audit record. From now on the frontends send sessions and new mail
    to the new home.
``tail``
    A two-way full ``doveadm sync`` brings over what reached the old home before the
    switch took effect (mail already queued for it, a last IMAP change).
``finish``
    ``moving_from`` is cleared (audited). Killed before this, a re-run of the same
    command sees the unfinished move and runs ``tail`` and ``finish`` again.

The old home keeps its copy of the Maildir; removing it is left to the operator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from mailprov.errors import MoveFailed, MoveRefused
from mailprov.rules.addresses import parse_address
from mailprov.rules.backends import home_backend
from mailprov.services.accounts import Actor, mailbox_row
from mailprov.services.homes import checked_backend
from mailprov.store import audit
from mailprov.store.schema import domains, mailboxes
from mailprov.system.dovecot import dsync

if TYPE_CHECKING:
    from mailprov.settings import SiteConfig
    from mailprov.settings.sections import ClusterSection
    from mailprov.store import Store
    from mailprov.system.run import Runner

STAGES = ("copy", "switch", "tail", "finish")
#: A stage's events: ("copy", "start"), ("copy", "done"), ...
StageHook = Callable[[str, str], None]
#: The longest one dsync run may take (a large mailbox over a slow link).
DSYNC_TIMEOUT = 6 * 3600.0


@dataclass(frozen=True)
class Move:
    """One mailbox's move: from where to where, and which stages are left."""

    address: str
    source: str
    target: str
    source_host: str
    target_host: str
    #: The home was switched already (an interrupted move): only tail and finish remain.
    resume: bool
    #: The mailbox row's own ``backend`` when planned (None: inherited), so that the
    #: switch can tell whether someone else changed the home meanwhile.
    own: str | None = None

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages this run goes through."""
        return STAGES[2:] if self.resume else STAGES

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "address": self.address,
            "from": self.source,
            "to": self.target,
            "resume": self.resume,
            "stages": list(self.stages),
        }


def _backends(cluster: ClusterSection) -> dict[str, str]:
    hosts = cluster.backend_hosts()
    if cluster.role == "all" or not hosts:
        raise MoveRefused(
            "this site has no backends: every mailbox lives on this one host",
            hint="list the backends in [cluster] backends (README 'Beyond one machine')",
        )
    if not cluster.doveadm_password_file:
        raise MoveRefused(
            "[cluster] doveadm_password_file is not set: the backends cannot copy mail "
            "between them",
            hint="write one shared password into a 0600 file on every host, name it in "
            "[cluster] doveadm_password_file and run 'mailprov deploy apply --reload'",
        )
    return hosts


def plan_move(store: Store, cluster: ClusterSection, raw: str, to: str) -> Move:
    """The move of mailbox ``raw`` to backend ``to``, after every refusal.

    Raises:
        MoveRefused: no backends here, same backend, another unfinished move, or the
            mailbox's home is not a listed backend.
        UnknownBackend: ``to`` is not in ``[cluster] backends``.
        NotFound: no such mailbox.
    """
    hosts = _backends(cluster)
    checked_backend(to, cluster)
    address = str(parse_address(raw))
    with store.read() as conn:
        row = mailbox_row(conn, address)
        domain_home = conn.execute(
            select(domains.c.backend).where(domains.c.id == row.domain_id)
        ).scalar_one_or_none()
    home = home_backend(row.backend, domain_home, cluster.default_home())
    leaving = row.moving_from
    if leaving:
        if home != to:
            raise MoveRefused(
                f"{address} is half-way through a move from {leaving} to {home}",
                hint=f"finish it first: mailprov mailbox move {address} --to {home}",
            )
        if leaving not in hosts:
            raise MoveRefused(
                f"{address} is moving from {leaving!r}, which is no longer one of "
                "[cluster] backends: its last messages cannot be copied from there",
                hint=f"list {leaving} in [cluster] backends again to finish the move",
            )
        return Move(address, leaving, to, hosts[leaving], hosts[to], True, row.backend)
    if home == to:
        raise MoveRefused(
            f"{address} already lives on {to}",
            hint="name another backend with --to ('mailprov doctor' lists them)",
        )
    if home not in hosts:
        raise MoveRefused(
            f"{address}'s home {home!r} is not one of [cluster] backends: its mail cannot "
            "be copied from there",
            hint=f"list {home} in [cluster] backends again, then move the mailbox",
        )
    return Move(address, home, to, hosts[home], hosts[to], False, row.backend)


def move_mailbox(
    store: Store,
    settings: SiteConfig,
    actor: Actor,
    move: Move,
    *,
    runner: Runner,
    dovecot_conf: Path,
    on_stage: StageHook | None = None,
) -> Move:
    """Run the stages of ``move`` (from :func:`plan_move`); see the module docstring.

    Raises:
        MoveFailed: doveadm could not copy the mail (the store says where it lives).
    """
    port = settings.cluster.doveadm_port
    at, peer = f"{move.target_host}:{port}", f"{move.source_host}:{port}"
    hook = on_stage or (lambda _stage, _event: None)

    def copy(two_way: bool) -> None:
        failed = dsync(
            runner,
            dovecot_conf,
            user=move.address,
            at=at,
            peer=peer,
            two_way=two_way,
            timeout=DSYNC_TIMEOUT,
        )
        if failed is not None:
            where = (
                f"it now lives on {move.target}; re-run to copy its last messages from "
                f"{move.source}"
                if two_way
                else f"it still lives on {move.source} with all its mail"
            )
            raise MoveFailed(
                f"copying {move.address} from {move.source} to {move.target} failed ({where}): "
                f"{failed}"
            )

    steps: dict[str, Callable[[], None]] = {
        "copy": lambda: copy(two_way=False),
        "switch": lambda: _switch(store, actor, move),
        "tail": lambda: copy(two_way=True),
        "finish": lambda: _finish(store, actor, move),
    }
    with store.exclusive(f"mailbox-move:{move.address}") as mine:
        if not mine:
            raise MoveRefused(
                f"another 'mailbox move' of {move.address} is running (on this or another "
                "host); two copies at once could overwrite mail already copied",
                hint=f"wait for it to end, then check with 'mailprov mailbox show {move.address}'",
            )
        # Planned before the lock: what another move finished meanwhile would make this
        # plan copy old mail over new.
        now = plan_move(store, settings.cluster, move.address, move.target)
        if now != move:
            raise MoveRefused(
                f"{move.address} changed while this move waited to start "
                f"(now: from {now.source} to {now.target}, resume {now.resume})",
                hint=f"run 'mailprov mailbox move {move.address} --to {move.target}' again",
            )
        for stage in move.stages:
            hook(stage, "start")
            steps[stage]()
            hook(stage, "done")
    return move


def _switch(store: Store, actor: Actor, move: Move) -> None:
    """backend = new home and moving_from = old home, in one audited transaction."""
    with store.begin() as conn:
        done = conn.execute(
            update(mailboxes)
            .where(
                mailboxes.c.address == move.address,
                mailboxes.c.moving_from.is_(None),
                mailboxes.c.backend.is_not_distinct_from(move.own),
            )
            .values(backend=move.target, moving_from=move.source, updated_at=actor.now)
        ).rowcount
        if done != 1:
            raise MoveRefused(
                f"{move.address} was changed while its mail was copied (removed, or moved "
                "by someone else)",
                hint=f"see 'mailprov mailbox show {move.address}' and try again",
            )
        audit.append(
            conn,
            at=actor.now,
            actor=actor.name,
            action="mailbox.move",
            target=move.address,
            details={"from": move.source, "to": move.target},
        )


def _finish(store: Store, actor: Actor, move: Move) -> None:
    """Clear moving_from: the old home holds nothing the new one lacks (audited)."""
    with store.begin() as conn:
        done = conn.execute(
            update(mailboxes)
            .where(mailboxes.c.address == move.address, mailboxes.c.moving_from == move.source)
            .values(moving_from=None, updated_at=actor.now)
        ).rowcount
        if done != 1:
            return  # finished by a concurrent run of the same move
        audit.append(
            conn,
            at=actor.now,
            actor=actor.name,
            action="mailbox.move-finished",
            target=move.address,
            details={"from": move.source, "to": move.target},
        )


def unfinished_moves(store: Store) -> list[tuple[str, str, str | None]]:
    """Every mailbox with ``moving_from`` set: (address, leaving, its own backend)."""
    with store.read() as conn:
        rows = conn.execute(
            select(mailboxes.c.address, mailboxes.c.moving_from, mailboxes.c.backend)
            .where(mailboxes.c.moving_from.is_not(None))
            .order_by(mailboxes.c.address)
        ).all()
    return [(r.address, r.moving_from, r.backend) for r in rows]
