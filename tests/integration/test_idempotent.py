"""Idempotent verbs for configuration-management scripts: re-runs report "changed": false."""

from __future__ import annotations

from typing import Any

import pytest

PASSWORD = "Wonder-Land-1865\n"


def audit_length(cli: Any) -> int:
    """How many records the audit log holds."""
    status, doc = cli.json("audit", "list", "--limit", "100000")
    assert 0 == status
    return len(doc["records"])


@pytest.fixture(name="site")
def fixture_site(run: Any) -> Any:
    """example.test with alice (mailbox: name Alice, quota 1G) and postmaster@ (alias)."""
    result = run(
        "mailbox",
        "add",
        "alice@example.test",
        "--name",
        "Alice",
        "--quota",
        "1G",
        "--password-stdin",
        input=PASSWORD,
    )
    assert 0 == result.exit_code, result.output
    assert 0 == run("alias", "add", "postmaster@example.test", "alice@example.test").exit_code
    return run


class TestAddExistOk:
    """mailbox add --exist-ok."""

    def test_same_attributes_is_no_change(self, site: Any) -> None:
        """An existing mailbox with the given name and quota: exit 0, changed false, no audit."""
        before = audit_length(site)
        status, doc = site.json(
            "mailbox", "add", "alice@example.test", "--exist-ok", "--name", "Alice", "--quota", "1G"
        )
        assert (0, False) == (status, doc["changed"])
        assert "alice@example.test" == doc["mailbox"]["address"]
        assert "password" not in doc
        assert before == audit_length(site)

    def test_no_password_is_read(self, site: Any) -> None:
        """With --exist-ok and an existing mailbox, no password is asked for (none on stdin)."""
        result = site("--non-interactive", "mailbox", "add", "alice@example.test", "--exist-ok")
        assert 0 == result.exit_code, result.output
        assert "exists" in result.stdout

    def test_other_attributes_conflict(self, site: Any) -> None:
        """Differing attributes: exit 91, code conflict, naming them and suggesting mailbox set."""
        before = audit_length(site)
        status, doc = site.json(
            "mailbox",
            "add",
            "alice@example.test",
            "--exist-ok",
            "--name",
            "Al",
            "--quota",
            "2G",
            "--generate",
        )
        assert 91 == status
        error = doc["error"]
        assert "conflict" == error["code"]
        assert {"name", "quota_bytes"} == set(error["differing"])
        assert {"before": "Alice", "after": "Al"} == error["differing"]["name"]
        assert "name 'Alice'" in error["message"] and "quota_bytes 1G" in error["message"]
        assert "mailbox set" in error["hint"]
        assert before == audit_length(site)

    def test_conflict_human(self, site: Any) -> None:
        """Without --json the conflict is one stderr line naming the attribute."""
        result = site("mailbox", "add", "alice@example.test", "--exist-ok", "--quota", "5G")
        assert 91 == result.exit_code
        assert "quota_bytes 1G (given: 5G)" in result.stderr

    def test_alias_is_address_taken(self, site: Any) -> None:
        """--exist-ok on an alias's address is still address-taken (exit 14)."""
        status, doc = site.json(
            "mailbox", "add", "postmaster@example.test", "--exist-ok", "--generate"
        )
        assert (14, "address-taken") == (status, doc["error"]["code"])

    def test_absent_is_created(self, site: Any) -> None:
        """--exist-ok on a free address creates the mailbox (changed true)."""
        status, doc = site.json("mailbox", "add", "bob@example.test", "--exist-ok", "--generate")
        assert (0, True) == (status, doc["changed"])
        assert 16 == len(doc["password"])

    def test_without_flag_still_fails(self, site: Any) -> None:
        """Without --exist-ok a second add is still address-taken."""
        status, _ = site.json("mailbox", "add", "alice@example.test", "--generate")
        assert 14 == status
