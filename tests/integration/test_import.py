"""Bulk import: all or nothing, every problem with its line number, passwords only to a 0600 file."""

from __future__ import annotations

import csv
import stat
from pathlib import Path
from typing import Any

import pytest

from mailprov.rules.hashing import hash_password, verify_password
from tests.integration.test_cli import snapshot

HASH = hash_password("Wonder-Land-1865", "SHA512-CRYPT")


def write_csv(path: Path, rows: list[list[str]], header: list[str] | None = None) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header or ["address", "name", "quota", "password-hash"])
        writer.writerows(rows)
    return path


class TestImport:
    """mailbox import."""

    def test_imports_with_given_and_generated_passwords(self, run: Any, tmp_path: Path) -> None:
        """Rows with a hash keep it; rows without get a generated password written 0600."""
        rows = [["ann@example.test", "Ann", "1G", HASH]] + [
            [f"user{i}@example.test", f"User {i}", "", ""] for i in range(40)
        ]
        src = write_csv(tmp_path / "in.csv", rows)
        out = tmp_path / "passwords.csv"
        status, doc = run.json(
            "mailbox", "import", str(src), "--passwords-out", str(out), "--workers", "2"
        )
        assert (0, 41, 40) == (status, doc.get("count"), doc.get("generated")), doc
        assert 0o600 == stat.S_IMODE(out.stat().st_mode)
        with out.open() as handle:
            generated = dict(list(csv.reader(handle))[1:])
        assert 40 == len(generated)
        assert "password" not in doc and not any(p in str(doc) for p in generated.values())
        from mailprov.services.accounts import current_hash
        from mailprov.store import open_store

        store = open_store(run.store_url)
        try:
            assert verify_password(
                generated["user7@example.test"], current_hash(store, "user7@example.test")
            )
            assert HASH == current_hash(store, "ann@example.test")
        finally:
            store.close()
        shown = run.json("mailbox", "show", "ann@example.test")[1]["mailbox"]
        assert ("Ann", 1024**3) == (shown["name"], shown["quota_bytes"])
        assert 42 == len(run.json("audit", "list")[1]["records"])

    def test_bad_rows_import_nothing(self, run: Any, tmp_path: Path) -> None:
        """A file with bad rows imports nothing and names every bad line."""
        run("mailbox", "add", "taken@example.test", "--generate")
        rows = [
            ["good@example.test", "", "", HASH],
            ["bad..dots@example.test", "", "", HASH],
            ["taken@example.test", "", "", HASH],
            ["x@unknown.test", "", "", HASH],
            ["good@example.test", "", "", HASH],
            ["q@example.test", "", "huge", HASH],
            ["h@example.test", "", "", "{MD5}abc"],
            ["postmaster@example.test", "", "", HASH],
        ]
        src = write_csv(tmp_path / "in.csv", rows)
        before = snapshot(run.store_url)
        status, doc = run.json("mailbox", "import", str(src))
        assert 25 == status
        problems = doc["error"]["problems"]
        assert [3, 4, 5, 6, 7, 8, 9] == [int(p.split(":")[0].split()[1]) for p in problems]
        assert "already on line 2" in problems[3]
        assert before == snapshot(run.store_url)

    @pytest.mark.parametrize(
        ("content", "fragment"),
        [
            ("", "is empty"),
            ("email,name\nx@example.test,X\n", "header must name"),
            ('address,name\n"unterminated,x\n', "line 2: malformed CSV"),
            ("address,name\na@example.test\n", "has 1 fields, expected 2"),
        ],
    )
    def test_malformed_csv(self, run: Any, tmp_path: Path, content: str, fragment: str) -> None:
        """Malformed CSV is refused with a clear message; nothing is imported."""
        src = tmp_path / "in.csv"
        src.write_text(content)
        before = snapshot(run.store_url)
        result = run("mailbox", "import", str(src))
        assert 25 == result.exit_code
        assert fragment in result.stderr
        assert before == snapshot(run.store_url)

    def test_dry_run_changes_nothing(self, run: Any, tmp_path: Path) -> None:
        """--dry-run reports the count and writes neither the store nor a password file."""
        src = write_csv(
            tmp_path / "in.csv", [["a@example.test", "", "", ""], ["b@example.test", "", "", ""]]
        )
        out = tmp_path / "pw.csv"
        before = snapshot(run.store_url)
        status, doc = run.json(
            "mailbox", "import", str(src), "--dry-run", "--passwords-out", str(out)
        )
        assert (0, 2, True, True) == (status, doc["count"], doc["changed"], doc["dry_run"])
        assert not out.exists()
        assert before == snapshot(run.store_url)

    def test_dry_run_needs_no_passwords_file(self, run: Any, tmp_path: Path) -> None:
        """A dry run generates nothing, so it does not ask for --passwords-out."""
        src = write_csv(tmp_path / "in.csv", [["a@example.test", "", "", ""]])
        before = snapshot(run.store_url)
        status, doc = run.json("mailbox", "import", str(src), "--dry-run")
        assert (0, 1, 1) == (status, doc["count"], doc["generated"])
        assert before == snapshot(run.store_url)

    def test_generated_needs_a_file(self, run: Any, tmp_path: Path) -> None:
        """Rows to generate without --passwords-out is an error before anything happens."""
        src = write_csv(tmp_path / "in.csv", [["a@example.test", "", "", ""]])
        result = run("mailbox", "import", str(src))
        assert 26 == result.exit_code and "--passwords-out" in result.stderr

    def test_existing_passwords_file_is_not_overwritten(self, run: Any, tmp_path: Path) -> None:
        """An existing --passwords-out file is refused and nothing is imported."""
        src = write_csv(tmp_path / "in.csv", [["a@example.test", "", "", ""]])
        out = tmp_path / "pw.csv"
        out.write_text("keep me")
        before = snapshot(run.store_url)
        result = run("mailbox", "import", str(src), "--passwords-out", str(out))
        assert 29 == result.exit_code
        assert "keep me" == out.read_text()
        assert before == snapshot(run.store_url)


def test_help_does_not_load_the_store() -> None:
    """'mailprov --help' imports every command module but neither SQLAlchemy nor the import service."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from mailprov.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m in ('sqlalchemy', 'mailprov.services.bulk',"
        " 'mailprov.services.provisioning', 'mailprov.cli.mailbox', 'mailprov.cli.request')),"
        " file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert "['mailprov.cli.mailbox', 'mailprov.cli.request']" == done.stderr.strip()
