"""Issue 15: ``mailbox move`` between two real backends, with mail sent during the move.

A site on three hosts (tests/integration/movesite.py): backends ``b1`` (127.0.0.3) and
``b2`` (127.0.0.4), each a Dovecot + Postfix with its own Maildirs, and a frontend ``fe``
(127.0.0.2) whose Postfix sends each mailbox's mail to its home and whose Dovecot proxies
logins there; one PostgreSQL store. ``mailbox move`` runs on the frontend's site. The
mail is copied by the backends themselves (``doveadm backup``/``sync`` over their doveadm
servers); the tests check what each backend's Dovecot holds and what the store says.

The test hook for "mail sent during the move" is the service's stage hook (``on_stage``):
it sends through the frontend between the stages. The kills are real: the CLI in a
subprocess with ``MAILPROV_TEST_KILL_AT=move:STAGE`` SIGKILLs itself after that stage.
"""

from __future__ import annotations

import shutil
import smtplib
import uuid
from collections.abc import Iterator

import pytest

from mailprov.errors import MoveRefused
from mailprov.services.accounts import Actor
from mailprov.services.move import move_mailbox, plan_move
from mailprov.settings import load_settings
from mailprov.store import open_store
from mailprov.system.run import SubprocessRunner
from tests.conftest import Cli, pg_base_url, require_or_skip
from tests.integration.movesite import Backends, start_backends
from tests.integration.stack import create_pg_database, drop_pg_database

pytestmark = [
    pytest.mark.requires_postfix,
    pytest.mark.requires_dovecot,
    pytest.mark.requires_postgres,
]

PW = "Str0ng-Mover#42"


@pytest.fixture(scope="module", name="backends")
def fixture_backends() -> Iterator[Backends]:
    """Backends b1 and b2, rendered by deploy apply, on a new database of the test server."""
    for tool in ("postfix", "dovecot", "doveadm"):
        if shutil.which(tool, path="/usr/sbin:/usr/bin") is None:
            require_or_skip(f"'{tool}' is not installed (make test-deps installs it)")
    try:
        url = create_pg_database(pg_base_url())
    except Exception as exc:  # any connection failure: say so, then skip or fail
        require_or_skip(f"no PostgreSQL test server at MAILPROV_TEST_PG_URL: {exc}")
    try:
        backends = start_backends(url)
    except RuntimeError as exc:  # the hosts' loopback addresses cannot be added
        drop_pg_database(pg_base_url(), url)
        require_or_skip(str(exc))
    try:
        yield backends
    finally:
        backends.stop()
        drop_pg_database(pg_base_url(), url)


def _mailbox(backends: Backends, count: int) -> tuple[str, list[str]]:
    """A new mailbox (home b1, the default) with ``count`` messages; its Message-IDs."""
    address = f"m{uuid.uuid4().hex[:8]}@example.test"
    backends.stacks["fe"].add_mailbox(address, PW)
    ids = [backends.deliver("b1", address, f"before {i}") for i in range(count)]
    assert backends.home(address) == ("b1", None)
    return address, sorted(ids)


def test_move_keeps_every_message_including_mail_sent_during_it(backends: Backends) -> None:
    """A moved mailbox has every message on its new home, exactly once: those before the
    move, one sent through the frontend between copy and switch (it lands on the old home:
    the tail) and one sent through the frontend after the switch (it lands on the new
    home); the old home refuses mail for it after the switch (451)."""
    address, ids = _mailbox(backends, 5)
    stack = backends.stacks["fe"]
    settings = load_settings(config_file=str(stack.config_file))
    store = open_store(backends.store_url)
    events: list[str] = []

    def during(stage: str, event: str) -> None:
        events.append(f"{stage}:{event}")
        if (stage, event) == ("copy", "done"):
            # Through the frontend, which still sends it to the old home: the tail's work.
            ids.append(backends.send(address, "between copy and switch", lands_on="b1"))
        if (stage, event) == ("switch", "done"):
            assert backends.home(address) == ("b2", "b1")
            # The old home now refuses the mailbox's mail for a while (a frontend's queue
            # retries, and its transport map then names the new home).
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                backends.deliver("b1", address, "late to the old home")
            assert refused.value.recipients[address][0] == 451
            ids.append(backends.send(address, "first on the new home", lands_on="b2"))

    try:
        planned = plan_move(store, settings.cluster, address, "b2")
        move_mailbox(
            store,
            settings,
            Actor("test", 1_800_000_000),
            planned,
            runner=SubprocessRunner(),
            dovecot_conf=stack.dovecot_conf,
            on_stage=during,
        )
    finally:
        store.close()
    assert events == [
        f"{s}:{e}" for s in ("copy", "switch", "tail", "finish") for e in ("start", "done")
    ]
    assert backends.home(address) == ("b2", None)
    assert backends.message_ids("b2", address) == sorted(ids)
    # The new home serves it: IMAP through the frontend's proxy lists every message.
    found = backends.stacks["fe"].messages(address, PW)
    assert sorted(str(m["Message-ID"]) for m in found) == sorted(ids)
    code, audit = stack.cli.json("audit", "list", "--target", address)
    assert code == 0, audit
    actions = [r["action"] for r in audit["records"]]
    assert actions[-2:] == ["mailbox.move", "mailbox.move-finished"]


def test_kill_before_switch_leaves_the_mailbox_on_its_old_home(backends: Backends) -> None:
    """Killed after the copy, before the switch: the store still names the old home, which
    still has every message; running the command again completes the move."""
    address, ids = _mailbox(backends, 4)
    killed = backends.mailprov("mailbox", "move", address, "--to", "b2", kill_at="move:copy")
    assert killed.returncode == -9, killed.stderr
    assert backends.home(address) == ("b1", None)
    assert backends.message_ids("b1", address) == ids
    ids.append(backends.deliver("b1", address, "after the kill"))
    again = backends.stacks["fe"].cli.json("mailbox", "move", address, "--to", "b2")
    assert again[0] == 0, again
    assert again[1]["resume"] is False
    assert backends.home(address) == ("b2", None)
    assert backends.message_ids("b2", address) == sorted(ids)


def test_kill_after_switch_is_finished_by_a_rerun(backends: Backends) -> None:
    """Killed after the switch: the store says moving_from=old, doctor on the frontend names
    the unfinished move (and both backends up), and a re-run copies what reached the old
    home meanwhile and clears the marker."""
    address, ids = _mailbox(backends, 3)
    killed = backends.mailprov("mailbox", "move", address, "--to", "b2", kill_at="move:switch")
    assert killed.returncode == -9, killed.stderr
    assert backends.home(address) == ("b2", "b1")
    # A message that reached the old home's Maildir after the copy (an IMAP APPEND there).
    ids.append(backends.save("b1", address, "reached the old home after the copy"))
    cli = backends.stacks["fe"].cli
    code, doc = cli.json("doctor", "--no-dns")
    report = doc["error"]["doctor"] if code else doc
    found = {(f["id"], f["subject"]): f for f in report["findings"]}
    unfinished = found[("doctor.cluster.move_unfinished", address)]
    assert f"mailprov mailbox move {address} --to b2" in unfinished["action"]
    # Run on the frontend: both backends answer on IMAP, LMTP and doveadm.
    assert {("doctor.cluster.backend_up", "b1"), ("doctor.cluster.backend_up", "b2")} <= set(found)
    again = cli.json("mailbox", "move", address, "--to", "b2")
    assert again[0] == 0, again
    assert again[1]["resume"] is True
    assert again[1]["stages"] == ["tail", "finish"]
    assert backends.home(address) == ("b2", None)
    assert backends.message_ids("b2", address) == sorted(ids)


def test_refusals(backends: Backends, run: Cli) -> None:
    """Same backend, unknown backend, unknown mailbox, a move to elsewhere while another is
    unfinished and a site without backends are each refused with their own code and exit
    status, and change nothing."""
    address, _ = _mailbox(backends, 1)
    cli = backends.stacks["fe"].cli
    cases = [
        ((address, "--to", "b1"), "move-refused", 97, "already lives on b1"),
        ((address, "--to", "b9"), "unknown-backend", 28, "'b9' is not one of"),
        (("nobody@example.test", "--to", "b2"), "not-found", 3, "does not exist"),
    ]
    for args, code, status, words in cases:
        exit_code, doc = cli.json("mailbox", "move", *args)
        assert (exit_code, doc["error"]["code"]) == (status, code), doc
        assert words in doc["error"]["message"]
    assert backends.home(address) == ("b1", None)
    backends.stacks["fe"].sql(
        "UPDATE mailboxes SET backend = 'b2', moving_from = 'b1' WHERE address = :a", a=address
    )
    exit_code, doc = cli.json("mailbox", "move", address, "--to", "b1")
    assert (exit_code, doc["error"]["code"]) == (97, "move-refused"), doc
    assert "half-way through a move from b1 to b2" in doc["error"]["message"]
    assert f"mailbox move {address} --to b2" in doc["error"]["hint"]
    exit_code, doc = run.json("mailbox", "move", "x@example.test", "--to", "b1")
    assert (exit_code, doc["error"]["code"]) == (97, "move-refused")
    assert "no backends" in doc["error"]["message"]


def test_dry_run_copies_nothing(backends: Backends) -> None:
    """--dry-run names the stages and leaves the store and the new home untouched."""
    address, _ = _mailbox(backends, 2)
    code, doc = backends.stacks["fe"].cli.json(
        "mailbox", "move", address, "--to", "b2", "--dry-run"
    )
    assert code == 0, doc
    assert doc["dry_run"] is True
    assert doc["stages"] == ["copy", "switch", "tail", "finish"]
    assert backends.home(address) == ("b1", None)
    assert backends.message_ids("b2", address) == []


def test_a_home_changed_during_the_copy_is_not_switched(backends: Backends) -> None:
    """If the mailbox's home changes while its mail is copied (another operator's move),
    the switch is refused and the store keeps what the other change wrote."""
    address, _ = _mailbox(backends, 1)
    stack = backends.stacks["fe"]
    settings = load_settings(config_file=str(stack.config_file))
    store = open_store(backends.store_url)

    def meanwhile(stage: str, event: str) -> None:
        if (stage, event) == ("copy", "done"):
            stack.sql("UPDATE mailboxes SET backend = 'b2' WHERE address = :a", a=address)

    try:
        planned = plan_move(store, settings.cluster, address, "b2")
        with pytest.raises(MoveRefused, match="was changed while its mail was copied"):
            move_mailbox(
                store,
                settings,
                Actor("test", 1_800_000_000),
                planned,
                runner=SubprocessRunner(),
                dovecot_conf=stack.dovecot_conf,
                on_stage=meanwhile,
            )
    finally:
        store.close()
    assert backends.home(address) == ("b2", None)
