"""What PostgreSQL says about its streaming replication, for ``doctor``.

On the primary, ``pg_stat_replication`` lists each streaming replica with its replay lag;
on a replica, ``now() - pg_last_xact_replay_timestamp()`` is how old the last transaction
it replayed is. An idle primary writes nothing, so that age grows without anything
waiting: a replica that has replayed all the WAL it received is "caught up" whatever
the age says (``pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

#: How long doctor waits for a read host to answer.
CONNECT_TIMEOUT_S = 3


@dataclass(frozen=True)
class Streaming:
    """One replica as the primary's ``pg_stat_replication`` sees it."""

    name: str
    client: str
    state: str
    #: Seconds the replica's replay is behind (None: the primary has no figure yet).
    replay_lag: float | None


@dataclass(frozen=True)
class ServerState:
    """One PostgreSQL server: a primary with its replicas, or a replica with its lag."""

    where: str
    replica: bool
    replicas: tuple[Streaming, ...] = ()
    #: Replica: seconds since the last transaction it replayed was committed.
    replay_age: float | None = None
    #: Replica: it has replayed all the WAL it has received.
    caught_up: bool = False
    #: Replica: replay paused (pg_wal_replay_pause()).
    paused: bool = False


def server_url(url: str, host: str, port: int) -> str:
    """``url`` (the store's) pointed at another server: a replica has the same database,
    user and password."""
    return make_url(url).set(host=host, port=port).render_as_string(hide_password=False)


def server_state(url: str) -> ServerState:
    """Ask the server at ``url`` about replication.

    Raises:
        SQLAlchemyError: it cannot be reached or queried (the caller says so).
    """
    parsed = make_url(url)
    where = f"{parsed.host}:{parsed.port or 5432}"
    engine = create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    try:
        with engine.connect() as conn:
            if not conn.execute(text("SELECT pg_is_in_recovery()")).scalar():
                rows = conn.execute(
                    text(
                        "SELECT application_name, coalesce(host(client_addr), 'local'), state,"
                        " extract(epoch FROM replay_lag) FROM pg_stat_replication"
                        " ORDER BY application_name"
                    )
                ).all()
                return ServerState(
                    where,
                    replica=False,
                    replicas=tuple(
                        Streaming(r[0], r[1], r[2], None if r[3] is None else float(r[3]))
                        for r in rows
                    ),
                )
            row = conn.execute(
                text(
                    "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp()),"
                    " pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn(),"
                    " pg_is_wal_replay_paused()"
                )
            ).one()
            age = None if row[0] is None else max(0.0, float(row[0]))
            return ServerState(
                where, replica=True, replay_age=age, caught_up=bool(row[1]), paused=bool(row[2])
            )
    finally:
        engine.dispose()


__all__ = ["SQLAlchemyError", "ServerState", "Streaming", "server_state", "server_url"]
