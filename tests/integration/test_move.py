"""Issue 15: ``mailbox move`` between two real backends, with mail arriving during the move.

Two Dovecot + Postfix backends (``b1`` on 127.0.0.2, ``b2`` on 127.0.0.3 for the doveadm
protocol; each with its own Maildirs) on one PostgreSQL store, rendered by ``deploy apply``
with ``[cluster] role = "backend"`` and a shared ``doveadm_password_file``. The mail is
copied by the backends themselves (``doveadm backup``/``sync`` over their doveadm servers);
the tests check what each backend's Dovecot holds and what the store says.

The test hook for "mail sent during the move" is the service's stage hook (``on_stage``):
it delivers between the stages, as a frontend would. The kills are real: the CLI in a
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
from tests.integration.stack import create_pg_database, drop_pg_database
from tests.integration.twobackends import Backends, start_backends

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
    backends = start_backends(url)
    try:
        yield backends
    finally:
        backends.stop()
        drop_pg_database(pg_base_url(), url)


def _mailbox(backends: Backends, count: int) -> tuple[str, list[str]]:
    """A new mailbox (home b1, the default) with ``count`` messages; its Message-IDs."""
    address = f"m{uuid.uuid4().hex[:8]}@example.test"
    backends.stacks["b1"].add_mailbox(address, PW)
    ids = [backends.deliver("b1", address, f"before {i}") for i in range(count)]
    assert backends.home(address) == ("b1", None)
    return address, sorted(ids)


def test_move_keeps_every_message_including_mail_sent_during_it(backends: Backends) -> None:
    """A moved mailbox has every message on its new home, exactly once: those before the
    move, one delivered to the old home between copy and switch (the tail) and one to the
    new home after the switch; the old home refuses mail for it after the switch (451)."""
    address, ids = _mailbox(backends, 5)
    stack = backends.stacks["b1"]
    settings = load_settings(config_file=str(stack.config_file))
    store = open_store(backends.store_url)
    events: list[str] = []

    def during(stage: str, event: str) -> None:
        events.append(f"{stage}:{event}")
        if (stage, event) == ("copy", "done"):
            ids.append(backends.deliver("b1", address, "between copy and switch"))
        if (stage, event) == ("switch", "done"):
            assert backends.home(address) == ("b2", "b1")
            # The old home now refuses the mailbox's mail for a while (a frontend's queue
            # retries, and its transport map then names the new home).
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                backends.deliver("b1", address, "late to the old home")
            assert refused.value.recipients[address][0] == 451
            ids.append(backends.deliver("b2", address, "first on the new home"))

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
    # The new home serves it: IMAP there lists every message.
    found = backends.stacks["b2"].messages(address, PW)
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
    again = backends.stacks["b1"].cli.json("mailbox", "move", address, "--to", "b2")
    assert again[0] == 0, again
    assert again[1]["resume"] is False
    assert backends.home(address) == ("b2", None)
    assert backends.message_ids("b2", address) == sorted(ids)


def test_kill_after_switch_is_finished_by_a_rerun(backends: Backends) -> None:
    """Killed after the switch: the store says moving_from=old, doctor names the unfinished
    move, and a re-run copies what reached the old home meanwhile and clears the marker."""
    address, ids = _mailbox(backends, 3)
    killed = backends.mailprov("mailbox", "move", address, "--to", "b2", kill_at="move:switch")
    assert killed.returncode == -9, killed.stderr
    assert backends.home(address) == ("b2", "b1")
    # A message that reached the old home's Maildir after the copy (an IMAP APPEND there).
    ids.append(backends.save("b1", address, "reached the old home after the copy"))
    cli = backends.stacks["b1"].cli
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
    cli = backends.stacks["b1"].cli
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
    backends.stacks["b1"].sql(
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
    code, doc = backends.stacks["b1"].cli.json(
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
    stack = backends.stacks["b1"]
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
