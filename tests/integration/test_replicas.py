"""Issue 15: the rendered Postfix and Dovecot read accounts from a PostgreSQL streaming replica.

One private primary (127.0.0.2) and one replica made with ``pg_basebackup -R`` (127.0.0.3),
a real stack rendered with ``[store] read_hosts = [replica, primary]``: mailprov writes to
the primary, the servers look up from either, and keep working while the primary is down.

The tests run in file order (the suite disables pytest-randomly): the failover test,
which stops the primary and promotes the replica, is the module's last.
"""

from __future__ import annotations

import re
import shutil
import smtplib
import subprocess
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import require_or_skip
from tests.integration.pgcluster import Cluster, private_cluster
from tests.integration.render.test_render_stack import imap_login_ok, imap_read
from tests.integration.stack import MailStack, start_stack

PW = "Str0ng-Fallover#7"

pytestmark = [pytest.mark.requires_postfix, pytest.mark.requires_dovecot]


@pytest.fixture(scope="module", name="cluster")
def fixture_cluster() -> Iterator[Cluster]:
    """A private PostgreSQL 15 primary and a streaming replica, for this module only."""
    with private_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="module", name="stack")
def fixture_stack(cluster: Cluster) -> Iterator[MailStack]:
    """Postfix + Dovecot rendered with the replica first and the primary as fall-over."""
    for tool in ("postfix", "postmap", "dovecot", "doveadm"):
        if shutil.which(tool, path="/usr/sbin:/usr/bin") is None:
            require_or_skip(f"'{tool}' is not installed (make test-deps installs it)")
    reads = f'read_hosts = ["{cluster.replica.host}", "{cluster.primary.host}"]\n'

    def prepare(stack: MailStack) -> None:
        text = stack.config_file.read_text()
        stack.config_file.write_text(text.replace("[store]\n", "[store]\n" + reads, 1))

    stack = start_stack(cluster.primary.url(), name="rp", prepare=prepare)
    try:
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(stack.root, ignore_errors=True)


def postmap_q(stack: MailStack, key: str, table: Path | None = None) -> str:
    """What Postfix's rendered pgsql map (default: sql-mailboxes.cf) answers for ``key``
    ('' when not found)."""
    table = table or stack.postfix_dir / "sql-mailboxes.cf"
    res = subprocess.run(
        ["postmap", "-c", str(stack.postfix_dir), "-q", key, f"pgsql:{table}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert res.returncode in (0, 1), res.stderr
    return res.stdout.strip()


def auth_test(stack: MailStack, user: str, password: str) -> bool:
    """Whether Dovecot's passdb (the rendered SQL one) accepts the password."""
    res = subprocess.run(
        ["doveadm", "-c", str(stack.dovecot_conf), "auth", "test", user, password],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return res.returncode == 0


def new_address(tag: str) -> str:
    """A unique address, so that tests sharing the stack never see each other's accounts."""
    return f"{tag}-{uuid.uuid4().hex[:8]}@example.test"


def send(stack: MailStack, to: str, subject: str) -> None:
    """One message to ``to`` through the stack's Postfix on port 25."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "sender@example.net", to, subject
    msg.set_content("over the replica\n")
    with smtplib.SMTP(stack.host, stack.ports["smtp"], timeout=10) as smtp:
        smtp.send_message(msg)


def test_rendered_servers_read_from_the_replicas(cluster: Cluster, stack: MailStack) -> None:
    """The maps and Dovecot's connect string list the replica and the primary, one port."""
    port = cluster.replica.port
    maps = (stack.postfix_dir / "sql-mailboxes.cf").read_text()
    assert f"hosts = 127.0.0.3:{port} 127.0.0.2:{port}\n" in maps
    sql = (stack.target / "dovecot" / "dovecot-sql.conf.ext").read_text()
    assert f"connect = host=127.0.0.3 host=127.0.0.2 port={port} dbname=mailprov" in sql


def test_account_added_on_the_primary_is_live_through_the_replica(
    cluster: Cluster, stack: MailStack
) -> None:
    """A mailbox added with the CLI (primary) is found by postmap, doveadm, SMTP and IMAP."""
    address = new_address("rep")
    stack.add_mailbox(address, PW)
    cluster.wait_replayed()
    assert (
        cluster.replica.scalar(f"SELECT count(*) FROM mailboxes WHERE address = '{address}'") == 1
    )
    assert postmap_q(stack, address) != ""
    assert auth_test(stack, address, PW)
    assert not auth_test(stack, address, PW + "x")
    send(stack, address, "via-replica")
    assert b"over the replica" in imap_read(stack, address, "via-replica", password=PW)


def test_replica_lag_is_a_short_user_unknown_window(cluster: Cluster, stack: MailStack) -> None:
    """While the replica has not replayed a new mailbox, a map reading only the replica does
    not find it (Postfix would answer 'User unknown'); once replayed, it does."""
    port = cluster.replica.port
    only_replica = stack.root / "replica-only-mailboxes.cf"
    rendered = (stack.postfix_dir / "sql-mailboxes.cf").read_text()
    only_replica.write_text(
        re.sub(r"^hosts = .*$", f"hosts = {cluster.replica.host}:{port}", rendered, flags=re.M)
    )
    address = new_address("lag")
    cluster.replica.scalar("SELECT pg_wal_replay_pause()")
    try:
        # The pause is a request: wait until replay has really stopped.
        deadline = time.monotonic() + 10
        while cluster.replica.scalar("SELECT pg_get_wal_replay_pause_state()") != "paused":
            assert time.monotonic() < deadline, "the replica never paused its replay"
            time.sleep(0.05)
        stack.add_mailbox(address, PW)
        assert (
            cluster.primary.scalar(f"SELECT count(*) FROM mailboxes WHERE address = '{address}'")
            == 1
        )
        assert "" == postmap_q(stack, address, only_replica)
    finally:
        cluster.replica.scalar("SELECT pg_wal_replay_resume()")
    cluster.wait_replayed()
    assert address == postmap_q(stack, address, only_replica)


def test_lookups_survive_the_primary_then_writes_go_to_the_promoted_replica(
    cluster: Cluster, stack: MailStack
) -> None:
    """Primary stopped: lookups still answer from the replica and writes are refused naming the
    primary; after 'pg_ctl promote' and store.url pointed at it, writes work again."""
    before = new_address("old")
    stack.add_mailbox(before, PW)
    cluster.wait_replayed()
    cluster.primary.stop()

    assert postmap_q(stack, before) != ""
    assert auth_test(stack, before, PW)
    assert imap_login_ok(stack, before, PW)
    send(stack, before, "primary-down")
    assert b"over the replica" in imap_read(stack, before, "primary-down", password=PW)

    status, doc = stack.cli.json(
        "mailbox", "add", new_address("refused"), "--password-stdin", input=PW + "\n"
    )
    assert status != 0, doc
    assert doc["error"]["code"] == "store-unavailable", doc
    assert f"{cluster.primary.host}:{cluster.primary.port}" in doc["error"]["message"], doc

    # Failover: promote the replica, point writes (store.url) at it; the servers need nothing.
    cluster.promote()
    assert cluster.replica.scalar("SELECT pg_is_in_recovery()") is False
    text = stack.config_file.read_text()
    stack.config_file.write_text(text.replace(cluster.primary.url(), cluster.replica.url()))
    after = new_address("new")
    stack.add_mailbox(after, PW)
    assert postmap_q(stack, after) != ""
    assert auth_test(stack, after, PW)
    assert imap_login_ok(stack, after, PW)
