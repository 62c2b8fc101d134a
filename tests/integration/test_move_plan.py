"""``mailbox move``'s plan: the refusals and the resumed move, on each store (no servers)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from mailprov.errors import MoveRefused, UnknownBackend
from mailprov.services.move import plan_move
from mailprov.settings.sections import ClusterSection
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
