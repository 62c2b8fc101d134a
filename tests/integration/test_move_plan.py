"""``mailbox move``'s plan: the refusals and the resumed move, on each store (no servers)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from mailprov.errors import MoveRefused, UnknownBackend
from mailprov.services.accounts import Actor
from mailprov.services.move import move_mailbox, plan_move
from mailprov.settings import SiteConfig
from mailprov.settings.sections import ClusterSection
from mailprov.store import open_store
from tests.conftest import Cli

ADDRESS = "ann@example.test"
CLUSTER = ClusterSection(
    role="frontend",
    backends=["b1=10.0.0.3", "b2=10.0.0.4"],
    doveadm_password_file="/etc/mailprov/doveadm-password",
)


@pytest.fixture(name="mailbox")
def fixture_mailbox(run: Cli, store: Any) -> Any:
    """A mailbox on the store (home: inherited, the site's default b1)."""
    result = run("mailbox", "add", ADDRESS, "--password-stdin", input="Str0ng-Mover#42\n")
    assert result.exit_code == 0, result.output
    return store


def _set(store: Any, **values: str | None) -> None:
    with store.engine.begin() as conn:
        for column, value in values.items():
            conn.execute(
                text(f"UPDATE mailboxes SET {column} = :v WHERE address = :a"),
                {"v": value, "a": ADDRESS},
            )


def test_a_plain_move_runs_every_stage(mailbox: Any) -> None:
    """From the inherited home b1 to b2: all four stages, from b1's host to b2's."""
    planned = plan_move(mailbox, CLUSTER, ADDRESS.upper(), "b2")
    assert (planned.address, planned.source, planned.target) == (ADDRESS, "b1", "b2")
    assert (planned.source_host, planned.target_host) == ("10.0.0.3", "10.0.0.4")
    assert planned.stages == ("copy", "switch", "tail", "finish")


def test_an_interrupted_move_resumes_with_the_tail(mailbox: Any) -> None:
    """Home switched to b2 with moving_from b1: the same command runs tail and finish."""
    _set(mailbox, backend="b2", moving_from="b1")
    planned = plan_move(mailbox, CLUSTER, ADDRESS, "b2")
    assert (planned.resume, planned.source, planned.stages) == (True, "b1", ("tail", "finish"))


@pytest.mark.parametrize(
    ("cluster", "values", "to", "error", "says"),
    [
        (
            ClusterSection(role="frontend", backends=["b1=10.0.0.3", "b2=10.0.0.4"]),
            {},
            "b2",
            MoveRefused,
            "doveadm_password_file is not set",
        ),
        (ClusterSection(), {}, "b2", MoveRefused, "this site has no backends"),
        (CLUSTER, {}, "b9", UnknownBackend, "'b9' is not one of"),
        (CLUSTER, {"backend": "gone"}, "b2", MoveRefused, "home 'gone' is not one of"),
        (
            CLUSTER,
            {"backend": "b2", "moving_from": "gone"},
            "b2",
            MoveRefused,
            "moving from 'gone', which is no longer",
        ),
    ],
)
def test_refusals_name_what_is_wrong(
    mailbox: Any,
    cluster: ClusterSection,
    values: dict[str, str],
    to: str,
    error: type[Exception],
    says: str,
) -> None:
    """No doveadm password, no backends, an unknown target, a home or a source that is not
    listed: each refused with its own error, naming the cause."""
    _set(mailbox, **values)
    with pytest.raises(error, match=says):
        plan_move(mailbox, cluster, ADDRESS, to)


def _refused_before_copying(mailbox: Any, planned: Any) -> MoveRefused:
    """Run the move; it must refuse before doveadm is called."""

    def no_doveadm(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("doveadm ran")

    settings = dataclasses.replace(SiteConfig(), cluster=CLUSTER)
    with pytest.raises(MoveRefused) as refused:
        move_mailbox(
            mailbox,
            settings,
            Actor("tester", 1_800_000_000),
            planned,
            runner=no_doveadm,  # type: ignore[arg-type]
            dovecot_conf=Path("/nonexistent/dovecot.conf"),
        )
    return refused.value


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_one_move_of_a_mailbox_at_a_time(mailbox: Any) -> None:
    """While another process moves the mailbox (it holds the store's advisory lock for it),
    a second move is refused before it copies anything; once that lock is gone it may run."""
    planned = plan_move(mailbox, CLUSTER, ADDRESS, "b2")
    other = open_store(mailbox.url)
    try:
        with other.exclusive(f"mailbox-move:{ADDRESS}") as held:
            assert held
            with mailbox.exclusive(f"mailbox-move:{ADDRESS}") as second:
                assert not second
            refused = _refused_before_copying(mailbox, planned)
            assert "another 'mailbox move' of ann@example.test is running" in refused.message
        with mailbox.exclusive(f"mailbox-move:{ADDRESS}") as again:
            assert again
    finally:
        other.close()


def test_a_move_planned_before_another_one_finished_is_refused(mailbox: Any) -> None:
    """Planned from b1 to b2, but meanwhile another move took it to b2: this plan would copy
    b1's old mail over b2's, so it is refused before copying. A home changed in another way
    meanwhile (set on the row itself) is refused too, and says to run the command again."""
    planned = plan_move(mailbox, CLUSTER, ADDRESS, "b2")
    _set(mailbox, backend="b2")
    assert "already lives on b2" in _refused_before_copying(mailbox, planned).message
    _set(mailbox, backend="b1")
    refused = _refused_before_copying(mailbox, planned)
    assert "changed while this move waited" in refused.message
    assert refused.hint is not None and "mailbox move ann@example.test --to b2" in refused.hint
