"""The CLI contract: JSON documents, exit statuses, one-line errors, and no change on failure."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

from mailprov.store import sqlite_path
from tests.conftest import invoke

PASSWORD = "Wonder-Land-1865\n"


def snapshot(url: str) -> str:
    """A fingerprint of the whole store: the SQLite file's bytes, or every PostgreSQL row."""
    path = sqlite_path(url)
    if path is not None:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    engine = create_engine(url)
    digest = hashlib.sha256()
    with engine.connect() as conn:
        for table in sorted(inspect(conn).get_table_names()):
            for row in conn.execute(text(f'SELECT * FROM "{table}" ORDER BY 1')):
                digest.update(repr(tuple(row)).encode())
    engine.dispose()
    return digest.hexdigest()


@pytest.fixture(name="site")
def fixture_site(run: Any) -> Any:
    """example.test with alice (mailbox) and postmaster@ (alias)."""
    assert (
        0
        == run("mailbox", "add", "alice@example.test", "--password-stdin", input=PASSWORD).exit_code
    )
    assert 0 == run("alias", "add", "postmaster@example.test", "alice@example.test").exit_code
    return run


class TestJson:
    """With --json, stdout is exactly one JSON document, for results and errors alike."""

    def test_mailbox_add_generate(self, run: Any) -> None:
        """--generate returns the password once, in the JSON result."""
        status, doc = run.json("mailbox", "add", "bob@example.test", "--generate", "--quota", "2G")
        assert 0 == status
        assert doc["changed"] is True
        assert "bob@example.test" == doc["mailbox"]["address"]
        assert 2 * 1024**3 == doc["mailbox"]["quota_bytes"]
        assert 16 == len(doc["password"])
        status, shown = run.json("mailbox", "show", "bob@example.test")
        assert "password" not in shown["mailbox"] and "password_hash" not in json.dumps(shown)

    def test_taken_address_has_suggestions(self, site: Any) -> None:
        """A taken address exits 14 with code address-taken and at least 3 free suggestions."""
        status, doc = site.json("mailbox", "add", "alice@example.test", "--generate")
        assert 14 == status
        assert "address-taken" == doc["error"]["code"]
        assert len(doc["error"]["suggestions"]) >= 3

    def test_lists(self, site: Any) -> None:
        """domain/mailbox/alias/audit lists are JSON arrays under a named key."""
        assert ["example.test"] == [d["name"] for d in site.json("domain", "list")[1]["domains"]]
        assert ["alice@example.test"] == [
            m["address"] for m in site.json("mailbox", "list")[1]["mailboxes"]
        ]
        assert [["alice@example.test"]] == [
            a["destinations"] for a in site.json("alias", "list")[1]["aliases"]
        ]
        actions = [r["action"] for r in site.json("audit", "list")[1]["records"]]
        assert ["domain.add", "mailbox.add", "alias.add"] == actions

    def test_json_flag_anywhere(self, site: Any) -> None:
        """--json works before the sub-command too."""
        result = site("--json", "domain", "show", "example.test")
        assert 1 == json.loads(result.stdout)["domain"]["mailboxes"]

    def test_repeated_adds_report_no_change(self, site: Any) -> None:
        """Scripts can re-run: alias add and domain add --exist-ok say changed: false."""
        status, doc = site.json("alias", "add", "postmaster@example.test", "alice@example.test")
        assert (0, False) == (status, doc["changed"])
        status, doc = site.json("domain", "add", "example.test", "--exist-ok")
        assert (0, False) == (status, doc["changed"])

    def test_usage_error_in_json(self, run: Any) -> None:
        """A usage error is a JSON error with exit status 2."""
        result = run("mailbox", "add", json=True)
        assert 2 == result.exit_code
        assert "usage" == json.loads(result.stdout)["error"]["code"]


class TestHumanErrors:
    """Without --json: one line on stderr, no traceback, a distinct exit status."""

    @pytest.mark.parametrize(
        ("args", "status", "fragment"),
        [
            (("mailbox", "add", "a..b@example.test", "--generate"), 20, "two dots"),
            (("mailbox", "add", "x@nowhere.test", "--generate"), 20, "not a domain served here"),
            (("mailbox", "show", "ghost@example.test"), 3, "does not exist"),
            (("domain", "add", "example.test"), 21, "already exists"),
            (("domain", "remove", "example.test"), 22, "still has"),
            (("mailbox", "remove", "alice@example.test"), 22, "destination of 1 alias"),
            (
                ("mailbox", "add", "bob@example.test", "--quota", "lots", "--generate"),
                28,
                "not a size",
            ),
        ],
    )
    def test_one_line(self, site: Any, args: tuple[str, ...], status: int, fragment: str) -> None:
        """Each error is one stderr line naming the problem, and the store is unchanged."""
        before = snapshot(site.store_url)
        result = site(*args)
        assert status == result.exit_code
        assert fragment in result.stderr
        assert 1 == len(result.stderr.strip().splitlines())
        assert "Traceback" not in result.stderr + result.stdout
        assert before == snapshot(site.store_url)


class TestNothingChangedOnFailure:
    """After each failing command the store is unchanged (byte for byte on SQLite)."""

    @pytest.mark.parametrize(
        "args",
        [
            ("mailbox", "add", "a b@example.test", "--generate"),
            ("mailbox", "add", "-a@example.test", "--generate"),
            ("mailbox", "add", "a-@example.test", "--generate"),
            ("mailbox", "add", '"q"@example.test', "--generate"),
            ("mailbox", "add", "a\r\nb@example.test", "--generate"),
            ("mailbox", "add", "a\x00b@example.test", "--generate"),
            ("mailbox", "add", "пётр@example.test", "--generate"),
            ("mailbox", "add", "x" * 65 + "@example.test", "--generate"),
            ("mailbox", "add", "alice@example.test", "--generate"),
            ("mailbox", "add", "postmaster@example.test", "--generate"),
            ("mailbox", "add", "root@example.test", "--generate"),
            ("alias", "add", "alice@example.test", "postmaster@example.test"),
            ("alias", "add", "team@example.test", "nobody@example.test"),
            ("mailbox", "passwd", "ghost@example.test", "--generate"),
            ("mailbox", "disable", "ghost@example.test"),
            ("domain", "add", "EXAMPLE.TEST"),
            ("domain", "add", "bad domain"),
            ("domain", "remove", "example.test"),
            ("domain", "remove", "other.test"),
            ("alias", "remove", "nothing@example.test"),
        ],
    )
    def test_store_unchanged(self, site: Any, args: tuple[str, ...]) -> None:
        """The command fails with a documented status and the store fingerprint stays the same."""
        before = snapshot(site.store_url)
        result = site(*args)
        assert result.exit_code not in (0, 1)
        assert before == snapshot(site.store_url)

    @pytest.mark.parametrize(
        ("password", "rule"),
        [
            ("short1!A", None),
            ("abc\n", "at least 8 characters"),
            ("alllowercase1!\n", "an upper-case letter"),
            ("NoDigitsHere!\n", "a digit"),
            ("NoSpecials123\n", "a special character"),
            ("Password1!\n", "commonly used"),
            ("Alice-Wonder-1!\n", "mailbox name"),
        ],
    )
    def test_password_policy(self, site: Any, password: str, rule: str | None) -> None:
        """Each password rule broken is named; nothing is created."""
        before = snapshot(site.store_url)
        result = site("mailbox", "add", "alice2@example.test", "--password-stdin", input=password)
        if rule is None:  # a valid 8-character password: accepted
            assert 0 == result.exit_code
            return
        assert 13 == result.exit_code
        assert rule in result.stderr
        assert password.strip() not in result.stderr
        assert before == snapshot(site.store_url)


class TestPasswords:
    """Passwords never travel on argv and are shown only when generated."""

    def test_no_tty_no_flag_is_missing_option(self, run: Any) -> None:
        """Without a terminal and without a password flag, the error names the flags."""
        result = run("mailbox", "add", "bob@example.test")
        assert 26 == result.exit_code
        assert "--password-stdin" in result.stderr

    def test_passwd_with_the_same_password_changes_nothing(self, site: Any) -> None:
        """Setting the current password again is a no-op a script may repeat (changed: false)."""
        status, data = site.json(
            "mailbox", "passwd", "alice@example.test", "--password-stdin", input=PASSWORD
        )
        assert (status, data["changed"]) == (0, False)

    def test_password_hash_on_stdin(self, run: Any) -> None:
        """A ready {SCHEME}hash is stored as given and works; the same hash again changes
        nothing; a malformed one is refused without echoing it and nothing is created.
        """
        from mailprov.rules.hashing import hash_password

        ready = hash_password("Hashed-Ahead-2026!", "SHA512-CRYPT")
        status, data = run.json(
            "mailbox", "add", "pre@example.test", "--password-hash-stdin", input=ready + "\n"
        )
        assert (status, data["changed"]) == (0, True)
        assert "password" not in data
        again = run.json(
            "mailbox", "passwd", "pre@example.test", "--password-hash-stdin", input=ready + "\n"
        )
        assert (again[0], again[1]["changed"]) == (0, False)
        bad = run("mailbox", "add", "bad@example.test", "--password-hash-stdin", input="{MD5}abc\n")
        assert bad.exit_code == 28
        assert "abc" not in bad.stderr
        assert run("mailbox", "show", "bad@example.test").exit_code == 3
        both = run(
            "mailbox", "add", "x@example.test", "--password-hash-stdin", "--generate", input="\n"
        )
        assert both.exit_code == 2

    def test_passwd_clears_must_change(self, run: Any) -> None:
        """A temporary password is replaced and must_change cleared."""
        run("mailbox", "add", "tmp@example.test", "--generate", "--temporary")
        assert run.json("mailbox", "show", "tmp@example.test")[1]["mailbox"]["must_change"]
        result = run(
            "mailbox", "passwd", "tmp@example.test", "--password-stdin", input="New-Secret-2026\n"
        )
        assert 0 == result.exit_code
        assert not run.json("mailbox", "show", "tmp@example.test")[1]["mailbox"]["must_change"]


class TestSite:
    """init, config show and db upgrade."""

    def test_init_is_idempotent(self, tmp_path: Path, run: Any) -> None:
        """A second init changes nothing and says so."""
        first = run.json("init", "--dir", str(tmp_path / "s"), "--domain", "example.org")[1]
        again = run.json("init", "--dir", str(tmp_path / "s"), "--domain", "example.org")[1]
        assert first["changed"] and first["domain_added"]
        assert not again["changed"]
        assert (tmp_path / "s" / "mailprov.sqlite").exists()

    def test_config_show_origin(self, tmp_path: Path, run: Any) -> None:
        """config show --origin tells where each value came from (here: the --store flag)."""
        doc = run.json("config", "show", "--origin")[1]
        assert "flag" == doc["origins"]["store.url"]
        assert "env MAILPROV_PASSWORDS_SCHEME" == doc["origins"]["passwords.scheme"]
        assert "default" == doc["origins"]["passwords.policy"]

    def test_db_upgrade_is_idempotent(self, run: Any) -> None:
        """Upgrading a current store changes nothing."""
        assert {"changed": False} == {"changed": run.json("db", "upgrade")[1]["changed"]}

    def test_unopenable_store(self, tmp_path: Path) -> None:
        """A store that cannot be opened gives store-unavailable, naming it."""
        for url in (
            f"sqlite:///{tmp_path}/missing.sqlite",
            "postgresql+psycopg://nobody@127.0.0.1:1/x",
        ):
            result = invoke("--store", url, "domain", "list", state_dir=tmp_path / "state")
            assert 24 == result.exit_code, result.output
            assert "store" in result.stderr
        # A backend mailprov cannot use at all is a bad setting, refused when settings load.
        result = invoke("--store", "mysql://x", "domain", "list", state_dir=tmp_path / "state")
        assert 23 == result.exit_code, result.output
        assert "store.url (flag --store)" in result.stderr

    def test_bad_config_names_file_and_line(self, tmp_path: Path) -> None:
        """An invalid config file is reported with its path and line, exit 23."""
        cfg = tmp_path / "m.toml"
        cfg.write_text("[store]\nurl = \n")
        result = invoke("--config", str(cfg), "domain", "list", state_dir=tmp_path / "state")
        assert 23 == result.exit_code
        assert str(cfg) in result.stderr and "line 2" in result.stderr


def test_version_as_json_for_scripts() -> None:
    """'--json --version' (either order) prints a JSON document; plain --version one line."""
    from mailprov import __version__

    for argv in (("--json", "--version"), ("--version", "--json")):
        result = invoke(*argv)
        assert result.exit_code == 0
        assert json.loads(result.stdout)["version"] == __version__
    assert invoke("--version").stdout.strip() == f"mailprov {__version__}"


RENAMED = [
    (("mailbox", "remove"), "--from-aliases", "--force"),
    (("deploy", "apply"), "--overwrite-edits", "--force"),
    (("dkim", "activate"), "--skip-dns-check", "--force"),
    (("dkim", "retire"), "--skip-checks", "--force"),
    (("dkim", "render"), "--out", "--dir"),
    (("client-config",), "--out", "--output"),
]


@pytest.mark.parametrize(("command", "new", "old"), RENAMED, ids=str)
def test_renamed_options_show_the_new_spelling_only(
    command: tuple[str, ...], new: str, old: str
) -> None:
    """--help shows the one spelling of CONTRIBUTING's table; the old one is hidden."""
    shown = invoke(*command, "--help").stdout
    assert new in shown
    assert f"{old} " not in shown and f"{old}," not in shown


def test_old_spelling_still_works_for_one_release(run: Any) -> None:
    """'mailbox remove --force' still does what '--from-aliases' does."""
    run("mailbox", "add", "gone@example.test", "--generate")
    run("alias", "add", "team@example.test", "gone@example.test", "other@example.org")
    status, data = run.json("mailbox", "remove", "gone@example.test", "--force")
    assert (status, data["changed"]) == (0, True), data


def test_mailbox_list_pages_by_address(run: Any) -> None:
    """--limit/--after walk the list in pages; next_after is null on the last page."""
    for name in ("a", "b", "c", "d", "e"):
        run("mailbox", "add", f"{name}{name}{name}@example.test", "--generate")
    seen, after = [], None
    while True:
        extra = ("--after", after) if after else ()
        status, page = run.json("mailbox", "list", "--limit", "2", *extra)
        assert status == 0
        seen += [m["address"] for m in page["mailboxes"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == [f"{n * 3}@example.test" for n in "abcde"]
