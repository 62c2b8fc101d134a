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


class TestSet:
    """mailbox set."""

    def test_changes_only_what_differs(self, site: Any) -> None:
        """Differing attributes are written, reported before -> after, in one audit record."""
        before = audit_length(site)
        status, doc = site.json(
            "mailbox",
            "set",
            "alice@example.test",
            "--name",
            "Alice L.",
            "--quota",
            "1G",
            "--inactive",
        )
        assert (0, True, False) == (status, doc["changed"], doc["dry_run"])
        assert {
            "name": {"before": "Alice", "after": "Alice L."},
            "active": {"before": True, "after": False},
        } == doc["changes"]
        shown = site.json("mailbox", "show", "alice@example.test")[1]["mailbox"]
        assert ("Alice L.", False, 1024**3) == (
            shown["name"],
            shown["active"],
            shown["quota_bytes"],
        )
        assert before + 1 == audit_length(site)
        record = site.json("audit", "list", "--action", "mailbox.set")[1]["records"][-1]
        assert {"name", "active"} == set(record["details"])

    def test_same_values_are_no_change(self, site: Any) -> None:
        """Values equal to the stored ones: changed false and no audit record."""
        before = audit_length(site)
        status, doc = site.json(
            "mailbox", "set", "alice@example.test", "--name", "Alice", "--quota", "1G", "--active"
        )
        assert (0, False, {}) == (status, doc["changed"], doc["changes"])
        assert before == audit_length(site)

    def test_dry_run_writes_nothing(self, site: Any) -> None:
        """--dry-run reports the change but leaves the mailbox and the audit log alone."""
        before = audit_length(site)
        status, doc = site.json(
            "mailbox", "set", "alice@example.test", "--quota", "2G", "--dry-run"
        )
        assert (0, True, True) == (status, doc["changed"], doc["dry_run"])
        assert {"before": 1024**3, "after": 2 * 1024**3} == doc["changes"]["quota_bytes"]
        shown = site.json("mailbox", "show", "alice@example.test")[1]["mailbox"]
        assert 1024**3 == shown["quota_bytes"]
        assert before == audit_length(site)

    def test_human_output(self, site: Any) -> None:
        """Without --json each changed attribute is one 'before -> after' line."""
        result = site("mailbox", "set", "alice@example.test", "--quota", "2G")
        assert 0 == result.exit_code, result.output
        assert "quota_bytes: 1G -> 2G" in result.stdout

    def test_unknown_mailbox(self, site: Any) -> None:
        """Setting an absent mailbox is not-found (exit 3)."""
        status, doc = site.json("mailbox", "set", "ghost@example.test", "--name", "Ghost")
        assert (3, "not-found") == (status, doc["error"]["code"])


class TestMissingOk:
    """--missing-ok on mailbox, alias and domain remove."""

    @pytest.mark.parametrize(
        "args",
        [
            ("mailbox", "remove", "ghost@example.test"),
            ("alias", "remove", "ghost@example.test"),
            ("alias", "remove", "postmaster@example.test", "--destination", "ghost@example.test"),
            ("domain", "remove", "nowhere.test"),
        ],
    )
    def test_absent_is_no_change(self, site: Any, args: tuple[str, ...]) -> None:
        """Absent: exit 3 without the flag; exit 0, changed false and no audit record with it."""
        before = audit_length(site)
        status, doc = site.json(*args)
        assert (3, "not-found") == (status, doc["error"]["code"])
        status, doc = site.json(*args, "--missing-ok")
        assert (0, False) == (status, doc["changed"])
        assert before == audit_length(site)

    def test_present_is_removed(self, site: Any) -> None:
        """With --missing-ok a present object is still removed (changed true), and then absent."""
        for args in (
            ("alias", "remove", "postmaster@example.test"),
            ("mailbox", "remove", "alice@example.test"),
            ("domain", "remove", "example.test"),
        ):
            status, doc = site.json(*args, "--missing-ok")
            assert (0, True) == (status, doc["changed"]), args
            status, doc = site.json(*args, "--missing-ok")
            assert (0, False) == (status, doc["changed"]), args

    def test_alias_destination_mix(self, site: Any) -> None:
        """Present destinations are removed even when others named are already absent."""
        assert 0 == site("mailbox", "add", "bob@example.test", "--generate").exit_code
        assert 0 == site("alias", "add", "postmaster@example.test", "bob@example.test").exit_code
        status, doc = site.json(
            "alias",
            "remove",
            "postmaster@example.test",
            "--destination",
            "bob@example.test",
            "--destination",
            "ghost@example.test",
            "--missing-ok",
        )
        assert (0, True) == (status, doc["changed"])
        assert ["alice@example.test"] == doc["remaining"]["destinations"]

    def test_still_refused_in_use(self, site: Any) -> None:
        """--missing-ok does not hide other errors: a domain in use is still refused (exit 22)."""
        status, doc = site.json("domain", "remove", "example.test", "--missing-ok")
        assert (22, "in-use") == (status, doc["error"]["code"])


class TestVerifyStart:
    """domain verify-start keeps a valid token unless --renew."""

    def test_rerun_keeps_token(self, run: Any) -> None:
        """A second verify-start prints the same record, changed false, no audit record."""
        status, first = run.json("domain", "verify-start", "acme.test")
        assert (0, True, True) == (status, first["changed"], first["domain_added"])
        before = audit_length(run)
        status, again = run.json("domain", "verify-start", "acme.test")
        assert (0, False, False) == (status, again["changed"], again["domain_added"])
        assert first["record"] == again["record"]
        assert before == audit_length(run)

    def test_renew_replaces_token(self, run: Any) -> None:
        """--renew makes a new token (changed true, one audit record)."""
        _, first = run.json("domain", "verify-start", "acme.test")
        before = audit_length(run)
        status, renewed = run.json("domain", "verify-start", "acme.test", "--renew")
        assert (0, True) == (status, renewed["changed"])
        assert first["record"]["name"] == renewed["record"]["name"]
        assert first["record"]["value"] != renewed["record"]["value"]
        assert before + 1 == audit_length(run)

    def test_old_token_is_replaced(self, store: Any, actor: Any) -> None:
        """A token older than TOKEN_KEEP_SECONDS is replaced by verify-start."""
        from mailprov.services.accounts import Actor
        from mailprov.services.ownership import TOKEN_KEEP_SECONDS, start

        first = start(store, "acme.test", actor=actor)
        kept = start(store, "acme.test", actor=Actor(actor.name, actor.now + 60))
        assert (False, first.value) == (kept.changed, kept.value)
        later = Actor(actor.name, actor.now + TOKEN_KEEP_SECONDS)
        renewed = start(store, "acme.test", actor=later)
        assert renewed.changed and renewed.value != first.value


REHEARSED = [
    ("domain", "add", "new.example.test"),
    ("domain", "remove", "empty.example.test"),
    ("domain", "verify-start", "example.test"),
    ("mailbox", "add", "fresh@example.test", "--generate"),
    ("mailbox", "passwd", "kept@example.test", "--generate"),
    ("mailbox", "disable", "kept@example.test"),
    ("mailbox", "remove", "kept@example.test", "--from-aliases"),
    ("alias", "add", "team@example.test", "kept@example.test", "x@example.org"),
    ("alias", "remove", "old@example.test"),
]


@pytest.mark.parametrize("argv", REHEARSED, ids=lambda a: " ".join(a[:2]))
def test_dry_run_runs_every_check_and_keeps_nothing(run: Any, argv: tuple[str, ...]) -> None:
    """--dry-run reports the change a real run makes ("changed": true, "dry_run": true, no
    made-up password) and the store, audit log included, is exactly as it was; a refused
    change is refused in the dry run too.
    """
    from tests.integration.test_cli import snapshot

    run("domain", "add", "empty.example.test")
    run("mailbox", "add", "kept@example.test", "--generate")
    run("alias", "add", "old@example.test", "kept@example.test")
    before = snapshot(run.store_url)
    status, data = run.json(*argv, "--dry-run")
    assert (status, data["changed"], data["dry_run"]) == (0, True, True), data
    assert "password" not in data
    assert snapshot(run.store_url) == before
    refused = run.json("mailbox", "add", "kept@example.test", "--generate", "--dry-run")
    assert (refused[0], refused[1]["error"]["code"]) == (14, "address-taken")
