"""The spam settings in the admin CLI: ``mailbox set`` and ``domain set`` with
--spam-threshold/--spam-to-junk (and 'default' to clear), --json, --dry-run, one audit record
per change, refusals with their exit status; ``mailbox show``/``domain show`` say where each
effective value comes from. Both store backends."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Cli

BOX = "alice@example.test"


@pytest.fixture(name="site")
def fixture_site(run: Cli) -> Cli:
    """The CLI on a fresh store with example.test and mailbox alice."""
    result = run("mailbox", "add", BOX, "--password-stdin", input="Tr0ub4dor-and-3\n")
    assert result.exit_code == 0, result.output
    return run


def _records(site: Cli, action: str) -> list[dict[str, Any]]:
    status, doc = site.json("audit", "list", "--action", action)
    assert status == 0, doc
    return list(doc["records"])


def _spam(site: Cli) -> dict[str, Any]:
    status, doc = site.json("mailbox", "show", BOX)
    assert status == 0, doc
    return dict(doc["mailbox"]["spam"])


def test_mailbox_set_stores_and_shows_its_own_values(site: Cli) -> None:
    """The values are the mailbox's own (one mailbox.set record); a re-run changes nothing;
    'default' and --spam-to-junk-default hand them back to the domain (here: the site)."""
    assert _spam(site)["threshold_from"] == "site"
    status, doc = site.json("mailbox", "set", BOX, "--spam-threshold", "4.5", "--no-spam-to-junk")
    assert (status, doc["changed"]) == (0, True), doc
    assert doc["changes"] == {
        "spam_threshold": {"before": None, "after": 4.5},
        "spam_to_junk": {"before": None, "after": False},
    }
    shown = _spam(site)
    assert (shown["threshold"], shown["to_junk"]) == (4.5, False)
    assert (shown["threshold_from"], shown["to_junk_from"]) == ("mailbox", "mailbox")
    records = _records(site, "mailbox.set")
    assert len(records) == 1
    again = site.json("mailbox", "set", BOX, "--spam-threshold", "4.50", "--no-spam-to-junk")
    assert (again[0], again[1]["changed"]) == (0, False)
    assert len(_records(site, "mailbox.set")) == 1
    status, doc = site.json(
        "mailbox", "set", BOX, "--spam-threshold", "default", "--spam-to-junk-default"
    )
    assert status == 0, doc
    assert doc["changes"]["spam_threshold"] == {"before": 4.5, "after": None}
    assert _spam(site)["threshold_from"] == "site"


def test_dry_run_and_human_output(site: Cli) -> None:
    """--dry-run reports without writing; without --json each change is a line."""
    status, doc = site.json("mailbox", "set", BOX, "--spam-threshold", "3", "--dry-run")
    assert (status, doc["changed"], doc["dry_run"]) == (0, True, True)
    assert _spam(site)["own"]["threshold"] is None
    assert _records(site, "mailbox.set") == []
    result = site("mailbox", "set", BOX, "--spam-threshold", "3")
    assert result.exit_code == 0, result.output
    assert "spam_threshold: default -> 3.0" in result.stdout
    shown = site("mailbox", "show", BOX)
    assert "spam threshold: 3 (mailbox)" in shown.stdout
    assert "spam to Junk: yes (site)" in shown.stdout


@pytest.mark.parametrize(
    ("args", "status", "code"),
    [
        (("--spam-threshold", "15"), 28, "invalid-value"),  # the reject score
        (("--spam-threshold", "0"), 28, "invalid-value"),
        (("--spam-threshold", "5.125"), 28, "invalid-value"),
        (("--spam-threshold", "lots"), 28, "invalid-value"),
        (("--spam-to-junk", "--spam-to-junk-default"), 2, "usage"),
    ],
)
def test_refused_values_change_nothing(
    site: Cli, args: tuple[str, ...], status: int, code: str
) -> None:
    """Bad values are refused with their code and exit status; nothing is written."""
    got, doc = site.json("mailbox", "set", BOX, *args)
    assert (got, doc["error"]["code"]) == (status, code), doc
    assert _spam(site)["own"] == {"threshold": None, "to_junk": None}


def test_domain_set_gives_its_mailboxes_a_default(site: Cli) -> None:
    """domain set stores the domain's default (one domain.set record); a mailbox without its
    own values takes it; a mailbox's own value still wins."""
    status, doc = site.json(
        "domain", "set", "example.test", "--spam-threshold", "8", "--no-spam-to-junk"
    )
    assert (status, doc["changed"], doc["domain"]["name"]) == (0, True, "example.test"), doc
    shown = _spam(site)
    assert (shown["threshold"], shown["to_junk"], shown["threshold_from"]) == (8.0, False, "domain")
    assert [r["target"] for r in _records(site, "domain.set")] == ["example.test"]
    status, domain = site.json("domain", "show", "example.test")
    assert domain["domain"]["spam"]["own"] == {"threshold": 8.0, "to_junk": False}
    assert domain["domain"]["spam"]["threshold_from"] == "domain"
    assert site.json("mailbox", "set", BOX, "--spam-threshold", "2")[0] == 0
    assert (_spam(site)["threshold"], _spam(site)["to_junk_from"]) == (2.0, "domain")
    dry = site.json("domain", "set", "example.test", "--spam-threshold", "default", "--dry-run")
    assert (dry[1]["changed"], dry[1]["changes"]["spam_threshold"]["after"]) == (True, None)
    assert len(_records(site, "domain.set")) == 1


def test_domain_set_of_an_unknown_domain(site: Cli) -> None:
    """A domain not served here is not-found (exit 3)."""
    status, doc = site.json("domain", "set", "ghost.test", "--spam-to-junk")
    assert (status, doc["error"]["code"]) == (3, "not-found")
