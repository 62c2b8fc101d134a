"""``mailprov apply`` and ``export`` on both store backends: plan, one transaction, no-op re-runs."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli


@functools.cache
def given_hash(password: str = "Wonder-Land-1865") -> str:  # noqa: S107  (a test password)
    """A real {SHA512-CRYPT} hash (made once: hashing takes 50 ms)."""
    from mailprov.rules.hashing import hash_password

    return hash_password(password, "SHA512-CRYPT")


def audit_length(cli: Cli) -> int:
    """How many records the audit log holds."""
    status, doc = cli.json("audit", "list", "--limit", "100000")
    assert 0 == status
    return len(doc["records"])


def mailboxes(cli: Cli) -> dict[str, Any]:
    """Mailboxes by address, as 'mailbox list --json' shows them."""
    status, doc = cli.json("mailbox", "list")
    assert 0 == status
    return {m["address"]: m for m in doc["mailboxes"]}


def aliases(cli: Cli) -> dict[str, list[str]]:
    """Aliases by address with their destinations."""
    status, doc = cli.json("alias", "list")
    assert 0 == status
    return {a["address"]: a["destinations"] for a in doc["aliases"]}


def site_state(hash_: str | None = None, **extra: str) -> str:
    """A state: example.test and example.org, alice (given hash), bob (generated), two aliases."""
    text = f"""version = 1

[domains."example.test"]
[domains."example.org"]

[mailboxes."alice@example.test"]
name = "Alice"
quota = "1G"
password_hash = "{hash_ or given_hash()}"

[mailboxes."bob@example.org"]
generate_password = true

[aliases."postmaster@example.test"]
destinations = ["alice@example.test"]

[aliases."@example.org"]
destinations = ["bob@example.org", "friend@remote.test"]
"""
    return text + "".join(extra.values())


@pytest.fixture(name="state_file")
def fixture_state_file(tmp_path: Path) -> Path:
    """The site_state() written to state.toml."""
    path = tmp_path / "state.toml"
    path.write_text(site_state())
    return path


class TestPlanAndApply:
    """apply --check, apply, and a second apply."""

    def test_check_shows_the_plan_and_changes_nothing(self, run: Cli, state_file: Path) -> None:
        """--check lists each object with its attributes, masks secrets, writes nothing."""
        before = audit_length(run)
        status, doc = run.json("apply", str(state_file), "--check", "--detailed-exitcode")
        assert (2, True, True) == (status, doc["changed"], doc["check"])
        planned = {(c["kind"], c["key"], c["action"]) for c in doc["plan"]["changes"]}
        assert {
            ("domain", "example.org", "create"),
            ("mailbox", "alice@example.test", "create"),
            ("mailbox", "bob@example.org", "create"),
            ("alias", "postmaster@example.test", "create"),
            ("alias", "@example.org", "create"),
        } == planned
        alice = next(c for c in doc["plan"]["changes"] if c["key"] == "alice@example.test")
        assert {"before": None, "after": "1G"} == alice["attributes"]["quota"]
        assert {"before": None, "after": "***"} == alice["attributes"]["password"]
        assert given_hash() not in json.dumps(doc)
        assert {"create": 5, "update": 0, "delete": 0} == doc["plan"]["summary"]
        assert before == audit_length(run)
        assert {} == mailboxes(run)

    def test_apply_then_again_is_a_no_op(self, run: Cli, state_file: Path) -> None:
        """The first apply changes (exit 2 with --detailed-exitcode); the second changes nothing."""
        status, doc = run.json("apply", str(state_file), "--detailed-exitcode")
        assert (2, True) == (status, doc["changed"])
        assert ["bob@example.org"] == list(doc["passwords"])
        assert 16 == len(doc["passwords"]["bob@example.org"])
        boxes = mailboxes(run)
        assert ("Alice", 1024**3, True) == (
            boxes["alice@example.test"]["name"],
            boxes["alice@example.test"]["quota_bytes"],
            boxes["alice@example.test"]["active"],
        )
        assert {
            "postmaster@example.test": ["alice@example.test"],
            "@example.org": ["bob@example.org", "friend@remote.test"],
        } == aliases(run)
        records = audit_length(run)
        status, doc = run.json("apply", str(state_file), "--detailed-exitcode")
        assert (0, False, []) == (status, doc["changed"], doc["plan"]["changes"])
        assert "passwords" not in doc
        assert records == audit_length(run)

    def test_one_audit_record_per_change_and_one_for_the_apply(
        self, run: Cli, state_file: Path
    ) -> None:
        """Each object's change is audited as its own command would be, plus state.apply."""
        before = audit_length(run)
        assert 0 == run("apply", str(state_file)).exit_code
        status, doc = run.json("audit", "list", "--limit", "100")
        actions = [r["action"] for r in doc["records"]][before:]
        assert ["domain.add", "mailbox.add", "mailbox.add", "alias.add", "alias.add"] == actions[:5]
        assert "state.apply" == actions[-1]
        assert {"prune": False, "create": 5, "update": 0, "delete": 0} == doc["records"][-1][
            "details"
        ]
        status, verified = run.json("audit", "verify")
        assert 0 == status, verified

    def test_human_plan(self, run: Cli, state_file: Path) -> None:
        """Without --json: one line per object, '+ kind key', and a summary line."""
        result = run("apply", str(state_file), "--check")
        assert 0 == result.exit_code, result.output
        assert "+ mailbox alice@example.test" in result.stdout
        assert "+ alias @example.org" in result.stdout
        assert "5 to create, 0 to update, 0 to delete (--check: nothing was changed)" in (
            result.stdout
        )
        diffed = run("apply", str(state_file), "--check", "--diff").stdout
        assert "    quota: '1G'" in diffed
        assert "    password: '***'" in diffed


class TestUpdates:
    """Declared attributes that differ become updates, shown before -> after."""

    def test_attributes_change(self, run: Cli, state_file: Path, tmp_path: Path) -> None:
        """Quota, name, active and the hash change; the hash is masked; destinations are exact."""
        assert 0 == run("apply", str(state_file)).exit_code
        changed = tmp_path / "changed.toml"
        text = site_state(given_hash("Other-Pass-2026"))
        text = text.replace('quota = "1G"', 'quota = "2G"\nactive = false')
        text = text.replace('name = "Alice"', 'name = "Alice Liddell"')
        text = text.replace('"bob@example.org", "friend@remote.test"', '"bob@example.org"')
        changed.write_text(text)
        status, doc = run.json("apply", str(changed), "--check")
        assert 0 == status
        by_key = {c["key"]: c for c in doc["plan"]["changes"]}
        assert {"mailbox": "update"} == {by_key["alice@example.test"]["kind"]: "update"}
        assert {
            "name": {"before": "Alice", "after": "Alice Liddell"},
            "quota": {"before": "1G", "after": "2G"},
            "active": {"before": True, "after": False},
            "password": {"before": "***", "after": "*** (changed)"},
        } == by_key["alice@example.test"]["attributes"]
        assert {
            "before": ["bob@example.org", "friend@remote.test"],
            "after": ["bob@example.org"],
        } == by_key["@example.org"]["attributes"]["destinations"]
        assert 0 == run("apply", str(changed)).exit_code
        alice = mailboxes(run)["alice@example.test"]
        assert ("Alice Liddell", 2 * 1024**3, False) == (
            alice["name"],
            alice["quota_bytes"],
            alice["active"],
        )
        assert {"@example.org": ["bob@example.org"]}.items() <= aliases(run).items()
        from mailprov.rules.hashing import verify_password
        from mailprov.services.accounts import current_hash
        from mailprov.store import open_store

        store = open_store(run.store_url or "")
        try:
            assert verify_password("Other-Pass-2026", current_hash(store, "alice@example.test"))
        finally:
            store.close()
        assert False is run.json("apply", str(changed))[1]["changed"]

    def test_omitted_attributes_are_left_alone(
        self, run: Cli, state_file: Path, tmp_path: Path
    ) -> None:
        """A mailbox declared with no attributes keeps the ones it has (merge, not reset)."""
        assert 0 == run("apply", str(state_file)).exit_code
        bare = tmp_path / "bare.toml"
        bare.write_text('version = 1\n[mailboxes."alice@example.test"]\n')
        status, doc = run.json("apply", str(bare))
        assert (0, False) == (status, doc["changed"])
        assert "Alice" == mailboxes(run)["alice@example.test"]["name"]


class TestPrune:
    """Deletions happen only with --prune, each listed."""

    def test_merge_keeps_and_prune_deletes(
        self, run: Cli, state_file: Path, tmp_path: Path
    ) -> None:
        """Undeclared objects stay without --prune; with it they are listed and removed."""
        assert 0 == run("apply", str(state_file)).exit_code
        assert (
            0
            == run(
                "mailbox",
                "add",
                "carol@example.test",
                "--password-stdin",
                input="Wonder-Land-1865\n",
            ).exit_code
        )
        small = tmp_path / "small.toml"
        small.write_text(
            'version = 1\n[domains."example.test"]\n'
            f'[mailboxes."alice@example.test"]\npassword_hash = "{given_hash()}"\n'
        )
        status, doc = run.json("apply", str(small))
        assert (0, False) == (status, doc["changed"])
        status, doc = run.json("apply", str(small), "--prune", "--check")
        assert 0 == status
        deletes = {(c["kind"], c["key"]) for c in doc["plan"]["changes"]}
        assert {
            ("alias", "postmaster@example.test"),
            ("alias", "@example.org"),
            ("mailbox", "bob@example.org"),
            ("mailbox", "carol@example.test"),
            ("domain", "example.org"),
        } == deletes
        assert {"delete"} == {c["action"] for c in doc["plan"]["changes"]}
        assert 3 == len(mailboxes(run))
        status, doc = run.json("apply", str(small), "--prune")
        assert (0, True) == (status, doc["changed"])
        assert ["alice@example.test"] == list(mailboxes(run))
        assert {} == aliases(run)
        status, domains = run.json("domain", "list")
        assert ["example.test"] == [d["name"] for d in domains["domains"]]
        assert False is run.json("apply", str(small), "--prune")[1]["changed"]


class TestBadInput:
    """Schema errors and broken rules: every problem with its line, nothing applied."""

    def test_schema_errors_have_line_numbers(self, run: Cli, tmp_path: Path) -> None:
        """Unknown keys, a clear password, wrong types: exit 92, each problem on its line."""
        bad = tmp_path / "bad.toml"
        bad.write_text(
            "version = 1\n"  # 1
            "\n"  # 2
            '[mailboxes."carol@example.test"]\n'  # 3
            'name = "Carol"\n'  # 4
            'quota = "lots"\n'  # 5
            'password = "Clear-Text-99!"\n'  # 6
            "\n"  # 7
            '[aliases."info@example.test"]\n'  # 8
            "destinations = []\n"  # 9
            "colour = 'blue'\n"  # 10
        )
        before = audit_length(run)
        status, doc = run.json("apply", str(bad))
        assert 92 == status
        error = doc["error"]
        assert "state-invalid" == error["code"]
        problems = error["problems"]
        assert problems[0].startswith('line 3: mailboxes."carol@example.test": ')
        assert "never holds a clear password" in problems[0]
        assert problems[1].startswith('line 5: mailboxes."carol@example.test".quota: ')
        assert problems[2].startswith('line 8: aliases."info@example.test": ')
        assert "'colour'" in problems[2]
        assert problems[3].startswith('line 9: aliases."info@example.test".destinations: ')
        assert "Clear-Text-99!" not in json.dumps(doc)
        assert before == audit_length(run)

    def test_json_state_problems_have_lines_too(self, run: Cli) -> None:
        """A JSON state on stdin: its problems name their lines as well."""
        text = (
            "{\n"  # 1
            '  "version": 1,\n'  # 2
            '  "mailboxes": {\n'  # 3
            '    "carol@example.test": {\n'  # 4
            '      "quota": -5,\n'  # 5
            '      "generate_password": true\n'  # 6
            "    }\n  }\n}\n"
        )
        status, doc = run.json("apply", "-", input=text)
        assert 92 == status
        assert ['line 5: mailboxes."carol@example.test".quota: cannot be negative'] == doc["error"][
            "problems"
        ]

    def test_syntax_error_names_the_line(self, run: Cli, tmp_path: Path) -> None:
        """A TOML syntax error is state-invalid with tomllib's line and column."""
        bad = tmp_path / "bad.toml"
        bad.write_text('version = 1\n[mailboxes."a@example.test"\n')
        status, doc = run.json("apply", str(bad))
        assert 92 == status
        assert "line 2" in doc["error"]["message"]

    def test_rule_violations(self, run: Cli, tmp_path: Path) -> None:
        """A taken address, a bad hash scheme, an unknown domain and a missing local destination."""
        assert 0 == run("alias", "add", "sales@example.test", "friend@remote.test").exit_code
        before = audit_length(run)
        bad = tmp_path / "rules.toml"
        bad.write_text(
            "version = 1\n"  # 1
            '[mailboxes."sales@example.test"]\n'  # 2
            f'password_hash = "{given_hash()}"\n'  # 3
            '[mailboxes."dave@nowhere.test"]\n'  # 4
            f'password_hash = "{given_hash()}"\n'  # 5
            '[mailboxes."erin@example.test"]\n'  # 6
            "name = 'Erin'\n"  # 7
            '[aliases."info@example.test"]\n'  # 8
            'destinations = ["ghost@example.test"]\n'  # 9
        )
        status, doc = run.json("apply", str(bad), "--check")
        assert 92 == status
        problems = doc["error"]["problems"]
        assert 4 == len(problems), problems
        assert problems[0].startswith("line 2: ") and "is an alias" in problems[0]
        assert problems[1].startswith("line 4: ") and "nowhere.test is not a domain" in problems[1]
        assert problems[2].startswith("line 6: ") and "needs password_hash" in problems[2]
        assert problems[3].startswith("line 9: ") and "ghost@example.test" in problems[3]
        assert before == audit_length(run)
        scheme = tmp_path / "scheme.toml"
        scheme.write_text(
            'version = 1\n[mailboxes."erin@example.test"]\npassword_hash = "{MD5}$1$abc$def"\n'
        )
        status, doc = run.json("apply", str(scheme))
        assert 92 == status
        assert doc["error"]["problems"][0].startswith(
            'line 3: mailboxes."erin@example.test".password_hash: is not a hash mailprov accepts'
        )
        assert "$1$abc$def" not in json.dumps(doc)

    def test_failure_half_way_rolls_everything_back(
        self, run: Cli, state_file: Path, store: Any
    ) -> None:
        """A database refusal at the last alias leaves no domain, mailbox or audit record."""
        from sqlalchemy import text

        with store.begin() as conn:
            if store.dialect == "sqlite":
                conn.execute(
                    text(
                        "CREATE TRIGGER refuse BEFORE INSERT ON aliases "
                        "WHEN NEW.address = 'postmaster@example.test' "
                        "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"
                    )
                )
            else:
                conn.execute(
                    text(
                        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                        "IF NEW.address = 'postmaster@example.test' THEN RAISE EXCEPTION "
                        "'refused by a test trigger' USING ERRCODE = 'unique_violation'; END IF; "
                        "RETURN NEW; END $$"
                    )
                )
                conn.execute(
                    text(
                        "CREATE TRIGGER refuse BEFORE INSERT ON aliases "
                        "FOR EACH ROW EXECUTE FUNCTION refuse()"
                    )
                )
        before = audit_length(run)
        status, doc = run.json("apply", str(state_file))
        assert 75 == status, doc
        assert "nothing was changed" in doc["error"]["message"]
        assert {} == mailboxes(run)
        assert {} == aliases(run)
        status, domains = run.json("domain", "list")
        assert ["example.test"] == [d["name"] for d in domains["domains"]]
        assert before == audit_length(run)


class TestExport:
    """export writes the state apply reads: export | apply --check shows no change."""

    @pytest.mark.parametrize("fmt", ["toml", "json"])
    def test_round_trip(self, run: Cli, state_file: Path, tmp_path: Path, fmt: str) -> None:
        """An exported site applied to itself is no change, in TOML and in JSON."""
        assert 0 == run("apply", str(state_file)).exit_code
        exported = run("export", "--format", fmt)
        assert 0 == exported.exit_code, exported.output
        status, doc = run.json("apply", "-", "--check", "--prune", input=exported.stdout)
        assert (0, False) == (status, doc["changed"]), doc

    def test_hashes_only_when_asked(self, run: Cli, state_file: Path, tmp_path: Path) -> None:
        """Without --with-hashes no hash is printed; with it, a new site gets the same hashes."""
        assert 0 == run("apply", str(state_file)).exit_code
        assert given_hash() not in run("export").stdout
        out = tmp_path / "site.toml"
        result = run("export", "--with-hashes", "--out", str(out))
        assert 0 == result.exit_code, result.output
        assert 0o600 == out.stat().st_mode & 0o777
        assert given_hash() in out.read_text()
        assert 29 == run("export", "--with-hashes", "--out", str(out)).exit_code
        exported = json.loads(run("export", "--json").stdout)
        assert {"version", "domains", "mailboxes", "aliases"} == set(exported)
        assert {"name": "Alice", "quota": "1G", "active": True} == exported["mailboxes"][
            "alice@example.test"
        ]

    def test_export_applies_to_an_empty_store(
        self, run: Cli, state_file: Path, tmp_path: Path, sqlite_template: Path
    ) -> None:
        """The export with hashes recreates the site in another (empty) store."""
        import shutil

        assert 0 == run("apply", str(state_file)).exit_code
        exported = run("export", "--with-hashes").stdout
        other = tmp_path / "other.sqlite"
        shutil.copyfile(sqlite_template, other)
        copy = Cli(tmp_path / "state2", store_url=f"sqlite:///{other}")
        status, doc = copy.json("apply", "-", input=exported)
        assert (0, True) == (status, doc["changed"]), doc
        assert mailboxes(run).keys() == mailboxes(copy).keys()
        assert aliases(run) == aliases(copy)
        status, doc = copy.json(
            "apply", "-", "--check", input=run("export", "--with-hashes").stdout
        )
        assert (0, False) == (status, doc["changed"])


class TestDkim:
    """Declared DKIM selectors are made when missing and never retired by apply."""

    def test_selector_is_made_once(self, run: Cli, tmp_path: Path) -> None:
        """A missing selector becomes a 'next' key; the second apply and export see it."""
        env = {"MAILPROV_DKIM_KEY_DIR": str(tmp_path / "dkim"), "MAILPROV_DKIM_SIGNER_USER": "root"}
        state = tmp_path / "dkim.toml"
        state.write_text(
            'version = 1\n[domains."example.test"]\n'
            'dkim = [{ selector = "s2026", algorithm = "ed25519" }]\n'
        )
        status, doc = run.json("apply", str(state), env=env)
        assert (0, True) == (status, doc["changed"]), doc
        assert [("s2026", "ed25519", "next")] == [
            (k["selector"], k["algorithm"], k["status"]) for k in doc["dkim"]
        ]
        assert (tmp_path / "dkim" / "example.test" / "s2026.private").exists()
        status, doc = run.json("apply", str(state), env=env)
        assert (0, False) == (status, doc["changed"])
        exported = run("export", env=env).stdout
        assert 'dkim = [{ selector = "s2026", algorithm = "ed25519" }]' in exported


class TestExportProperty:
    """Random sites on a real store: apply, export, and apply --check of the export."""

    def test_export_then_check_is_no_change(self, run: Cli) -> None:
        """For random sites (IDN domains, catch-alls, forwards, odd names), on both backends."""
        from dataclasses import replace

        from hypothesis import HealthCheck, given, settings

        from mailprov.rules import statefile
        from mailprov.rules.state import to_document
        from tests.unit.test_state import sites

        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(sites())
        def check(current: Any) -> None:
            doc = to_document(replace(current, dkim={}), with_hashes=True)
            text = "".join(statefile.to_toml_lines(doc))
            status, applied = run.json("apply", "-", "--prune", input=text)
            assert 0 == status, applied
            for fmt in ("toml", "json"):
                exported = run("export", "--with-hashes", "--format", fmt)
                assert 0 == exported.exit_code, exported.output
                status, doc_ = run.json("apply", "-", "--check", "--prune", input=exported.stdout)
                assert (0, False) == (status, doc_["changed"]), doc_

        check()
