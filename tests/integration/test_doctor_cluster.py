"""Issue 15: ``doctor`` on the hosts of a cluster, and what replica lag means for a login.

A private PostgreSQL primary and streaming replica (tests/integration/pgcluster.py) hold
the store. A real stack whose Dovecot and Postfix read only from the replica
(``[store] read_hosts = [replica]``) shows what clients see while the replica lags: a
mailbox just created on the primary cannot log in until the replica has replayed it.
A frontend's site config on the same store (no servers of its own) lists one backend
that answers and one that does not, for doctor's cluster checks.
"""

from __future__ import annotations

import imaplib
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, free_port
from tests.integration.pgcluster import Cluster, private_cluster
from tests.integration.stack import MailStack, start_stack

PW = "Str0ng-Pacing#5"

pytestmark = [pytest.mark.requires_postfix, pytest.mark.requires_dovecot]


@pytest.fixture(scope="module", name="cluster")
def fixture_cluster() -> Iterator[Cluster]:
    """A private PostgreSQL 15 primary and a streaming replica, for this module only."""
    with private_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="module", name="stack")
def fixture_stack(cluster: Cluster) -> Iterator[MailStack]:
    """Postfix + Dovecot that read accounts from the replica only; mailprov writes to the
    primary."""
    reads = f'read_hosts = ["{cluster.replica.host}"]\n'

    def prepare(stack: MailStack) -> None:
        text = stack.config_file.read_text()
        stack.config_file.write_text(text.replace("[store]\n", "[store]\n" + reads, 1))

    stack = start_stack(cluster.primary.url(), name="dc", prepare=prepare)
    try:
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(stack.root, ignore_errors=True)


def findings(cli: Cli) -> tuple[int, list[dict[str, Any]], list[str]]:
    """``doctor --no-dns --json``: exit status, findings and the checks that ran."""
    code, doc = cli.json("doctor", "--no-dns")
    report = doc["error"]["doctor"] if code else doc
    return code, report["findings"], report["checks"]


def of(found: list[dict[str, Any]], finding_id: str) -> list[dict[str, Any]]:
    """The findings with this ID."""
    return [f for f in found if f["id"] == finding_id]


def imap_login(stack: MailStack, address: str) -> str:
    """Dovecot's refusal of ``address``'s password over IMAPS ('' when it logs in)."""
    with imaplib.IMAP4_SSL(
        stack.host, stack.ports["imaps"], ssl_context=stack.tls_context(), timeout=10
    ) as imap:
        try:
            imap.login(address, PW)
        except imaplib.IMAP4.error as exc:
            return str(exc)
        return ""


def test_a_new_mailbox_cannot_log_in_until_the_replica_replays_it(
    cluster: Cluster, stack: MailStack
) -> None:
    """With the replica's replay paused, a mailbox created on the primary is refused at login
    (Dovecot reads the replica) and doctor names the paused replay; once replay resumes,
    the same login succeeds and doctor says the replica has caught up."""
    address = f"lag-{uuid.uuid4().hex[:8]}@example.test"
    cluster.replica.scalar("SELECT pg_wal_replay_pause()")
    try:
        deadline = time.monotonic() + 10
        while cluster.replica.scalar("SELECT pg_get_wal_replay_pause_state()") != "paused":
            assert time.monotonic() < deadline, "the replica never paused its replay"
            time.sleep(0.05)
        stack.add_mailbox(address, PW)
        assert "[AUTHENTICATIONFAILED]" in imap_login(stack, address)
        code, found, checks = findings(stack.cli)
        assert "cluster" in checks
        paused = of(found, "doctor.store.replay_paused")
        assert code == 79
        assert [f["subject"] for f in paused] == [f"{cluster.replica.host}:{cluster.replica.port}"]
        assert "pg_wal_replay_resume()" in paused[0]["action"]
    finally:
        cluster.replica.scalar("SELECT pg_wal_replay_resume()")
    cluster.wait_replayed()
    assert imap_login(stack, address) == ""
    _, found, _ = findings(stack.cli)
    assert not of(found, "doctor.store.replay_paused")
    lag = of(found, "doctor.store.replica_lag")
    assert len(lag) == 1
    assert "has replayed everything it received" in lag[0]["message"]
    # The primary ([store] url) sees the replica streaming.
    streaming = of(found, "doctor.store.replica_streaming")
    assert len(streaming) == 1
    assert "(streaming), replay lag" in streaming[0]["message"]


@pytest.fixture(name="frontend")
def fixture_frontend(cluster: Cluster, stack: MailStack, tmp_path: Path) -> Iterator[Cli]:
    """A frontend's site on the same store: backend 'up' (127.0.0.5) answers on its IMAP
    and LMTP ports, backend 'down' (127.0.0.6) does not."""
    imap, lmtp = free_port(), free_port()
    listeners = []
    for port in (imap, lmtp):
        sock = socket.socket()
        sock.bind(("127.0.0.5", port))
        sock.listen()
        listeners.append(sock)
    config = tmp_path / "frontend.toml"
    config.write_text(
        f'[site]\nhostname = "mail.example.test"\n'
        f'[store]\nurl = "{cluster.primary.url()}"\n'
        f'read_hosts = ["{cluster.replica.host}", "{cluster.primary.host}"]\n'
        f"[ports]\nimap = {imap}\nlmtp = {lmtp}\n"
        '[cluster]\nrole = "frontend"\nbackends = ["up=127.0.0.5", "down=127.0.0.6"]\n'
    )
    try:
        yield Cli(tmp_path / "state", config=config)
    finally:
        for sock in listeners:
            sock.close()


def test_doctor_on_a_frontend_names_backends_lost_homes_and_unfinished_moves(
    frontend: Cli, stack: MailStack
) -> None:
    """doctor reports the host's role, a backend that answers and one that does not (an
    error), a mailbox whose home is not listed (an error), an interrupted move (a warning
    with the command that finishes it), and each store server once."""
    tag = uuid.uuid4().hex[:6]
    lost, half = f"lost-{tag}@example.test", f"half-{tag}@example.test"
    for address in (lost, half):
        stack.add_mailbox(address, PW)
    stack.sql("UPDATE mailboxes SET backend = 'gone' WHERE address = :a", a=lost)
    stack.sql(
        "UPDATE mailboxes SET backend = 'up', moving_from = 'down' WHERE address = :a", a=half
    )
    code, found, checks = findings(frontend)
    assert code == 79
    assert "cluster" in checks
    role = of(found, "doctor.cluster.role")
    assert [(f["severity"], f["subject"]) for f in role] == [("info", "frontend")]
    assert "frontend for 2 backend(s)" in role[0]["message"]
    assert [f["subject"] for f in of(found, "doctor.cluster.backend_up")] == ["up"]
    down = of(found, "doctor.cluster.backend_down")
    assert [(f["severity"], f["subject"]) for f in down] == [("error", "down")]
    assert "imap" in down[0]["message"]
    homes = of(found, "doctor.cluster.home_unknown")
    gone = [f for f in homes if f["subject"] == "gone"]
    assert len(gone) == 1
    assert gone[0]["severity"] == "error"
    assert lost in gone[0]["message"]
    moves = [f for f in of(found, "doctor.cluster.move_unfinished") if f["subject"] == half]
    assert len(moves) == 1
    assert moves[0]["severity"] == "warning"
    assert f"mailprov mailbox move {half} --to up" in moves[0]["action"]
    # The primary is a read host too: it is asked once.
    assert len(of(found, "doctor.store.replica_streaming")) == 1
    assert len(of(found, "doctor.store.replica_lag")) == 1
