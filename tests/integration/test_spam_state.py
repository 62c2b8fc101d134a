"""The spam settings in the declared state (``apply`` and ``export``): a domain's defaults
and a mailbox's own values are planned, applied with their audit records, exported, and
cleared with "default"; an omitted one is left alone; bad values are refused with their
line. Both store backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import Cli
from tests.integration.test_apply import given_hash

STATE = f"""version = 1

[domains."example.test"]
spam_threshold = 8
spam_to_junk = false

[mailboxes."alice@example.test"]
password_hash = "{given_hash()}"
spam_threshold = 4.5
spam_to_junk = true

[mailboxes."bob@example.test"]
password_hash = "{given_hash()}"
"""


def _spam(run: Cli, address: str) -> dict[str, Any]:
    status, doc = run.json("mailbox", "show", address)
    assert status == 0, doc
    return dict(doc["mailbox"]["spam"])


def test_apply_plans_sets_and_exports_the_spam_settings(run: Cli, tmp_path: Path) -> None:
    """The plan shows each value ('default' where none is set); apply stores them (the
    domain's default reaches bob); a second apply and an export-then-apply change nothing."""
    state = tmp_path / "state.toml"
    state.write_text(STATE)
    status, doc = run.json("apply", str(state), "--check")
    assert status == 0, doc
    changes = {(c["kind"], c["key"]): c for c in doc["plan"]["changes"]}
    domain = changes[("domain", "example.test")]
    assert domain["action"] == "update"
    assert domain["attributes"] == {
        "spam_threshold": {"before": "default", "after": 8},
        "spam_to_junk": {"before": "default", "after": False},
    }
    alice = changes[("mailbox", "alice@example.test")]["attributes"]
    assert alice["spam_threshold"] == {"before": None, "after": 4.5}
    assert "spam_threshold" not in changes[("mailbox", "bob@example.test")]["attributes"]

    status, doc = run.json("apply", str(state))
    assert (status, doc["changed"]) == (0, True), doc
    got = _spam(run, "alice@example.test")
    assert (got["threshold"], got["to_junk"], got["to_junk_from"]) == (4.5, True, "mailbox")
    bob = _spam(run, "bob@example.test")
    assert (bob["threshold"], bob["to_junk"], bob["threshold_from"]) == (8.0, False, "domain")
    status, records = run.json("audit", "list", "--action", "domain.set")
    assert [r["target"] for r in records["records"]] == ["example.test"]

    assert run.json("apply", str(state), "--check")[1]["changed"] is False
    exported = run("export")
    assert exported.exit_code == 0, exported.output
    assert "spam_threshold = 4.5" in exported.stdout
    status, again = run.json("apply", "-", "--check", "--prune", input=exported.stdout)
    assert (status, again["changed"]) == (0, False), again


def test_default_clears_and_omitted_is_left_alone(run: Cli, tmp_path: Path) -> None:
    """'default' hands a value back to the level above; leaving it out keeps it."""
    state = tmp_path / "state.toml"
    state.write_text(STATE)
    assert run("apply", str(state)).exit_code == 0
    state.write_text(
        STATE.replace("spam_threshold = 4.5", 'spam_threshold = "default"').replace(
            "spam_to_junk = true\n", ""
        )
    )
    status, doc = run.json("apply", str(state))
    assert status == 0, doc
    got = _spam(run, "alice@example.test")
    assert (got["threshold"], got["threshold_from"]) == (8.0, "domain")
    assert (got["to_junk"], got["to_junk_from"]) == (True, "mailbox")


def test_bad_thresholds_are_refused_with_their_line(run: Cli, tmp_path: Path) -> None:
    """At or above the reject score, three decimals, or a word: refused, nothing written."""
    state = tmp_path / "bad.toml"
    state.write_text(
        "version = 1\n"  # 1
        '[domains."example.test"]\n'  # 2
        "spam_threshold = 15\n"  # 3
        '[mailboxes."alice@example.test"]\n'  # 4
        f'password_hash = "{given_hash()}"\n'  # 5
    )
    status, doc = run.json("apply", str(state))
    assert (status, doc["error"]["code"]) == (92, "state-invalid"), doc
    assert doc["error"]["problems"][0].startswith("line 3: "), doc
    assert "reject score" in doc["error"]["problems"][0]
    state.write_text(state.read_text() + "spam_threshold = 4.125\n")  # line 6
    status, doc = run.json("apply", str(state))
    assert (status, doc["error"]["code"]) == (92, "state-invalid"), doc
    problems = doc["error"]["problems"]
    assert any(p.startswith("line 6: ") and "two decimals" in p for p in problems), problems
    assert run.json("mailbox", "list")[1]["mailboxes"] == []
    state.write_text('version = 1\n[domains."example.test"]\nspam_to_junk = "sometimes"\n')
    status, doc = run.json("apply", str(state))
    assert (status, doc["error"]["code"]) == (92, "state-invalid"), doc
