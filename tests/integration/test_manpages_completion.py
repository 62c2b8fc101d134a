"""Man pages generated from the click definitions (linted by mandoc), and shell completion
of the names in the store.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import invoke, require_or_skip


def test_man_pages_cover_every_command_and_pass_mandoc_lint(tmp_path: Path) -> None:
    """One page per command; 'mandoc -Tlint -W warning' finds nothing; hidden spellings stay out."""
    mandoc = shutil.which("mandoc")
    if mandoc is None:
        require_or_skip("mandoc is not installed (scripts/install-test-deps.sh installs it)")
    done = subprocess.run(
        [sys.executable, "-m", "mailprov.cli.docs", "man", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        env={"SOURCE_DATE_EPOCH": "1796000000", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    pages = {p.name for p in tmp_path.glob("*.1")}
    top = invoke("--help").stdout
    for line in top.split("Commands:")[1].splitlines():
        if line.strip():
            assert f"mailprov-{line.split()[0]}.1" in pages
    assert {"mailprov.1", "mailprov-mailbox-add.1", "mailprov-serve.1"} <= pages
    lint = subprocess.run(
        [mandoc, "-Tlint", "-W", "warning", *sorted(str(p) for p in tmp_path.glob("*.1"))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.stdout + lint.stderr == ""
    add = (tmp_path / "mailprov-mailbox-add.1").read_text()
    assert "password\\-hash\\-stdin" in add
    assert "2026-11-" in add
    remove = (tmp_path / "mailprov-mailbox-remove.1").read_text()
    assert "from\\-aliases" in remove and "\\-\\-force" not in remove


def _complete(cwd: Path, *words: str) -> list[str]:
    """What bash's TAB gets from the installed 'mailprov' (click's bash_complete protocol)."""
    line = ["mailprov", *words]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPROV_")}
    env.update(
        {
            "_MAILPROV_COMPLETE": "bash_complete",
            "COMP_WORDS": " ".join(line),
            "COMP_CWORD": str(len(line) - 1),
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "mailprov"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return [item.split(",", 1)[1] for item in done.stdout.split()]


def test_completion_offers_names_from_the_store(run: Any) -> None:
    """TAB after 'mailbox show al' lists the mailboxes starting with 'al', and only them."""
    for address in ("alice@example.test", "albert@example.test", "bob@example.test"):
        run("mailbox", "add", address, "--generate")
    run("alias", "add", "all@example.test", "bob@example.test")
    store = ("--store", run.store_url)
    assert _complete(Path.cwd(), *store, "mailbox", "show", "al") == [
        "albert@example.test",
        "alice@example.test",
    ]
    assert _complete(Path.cwd(), *store, "alias", "remove", "a") == ["all@example.test"]


def test_completion_without_a_store_completes_nothing(tmp_path: Path) -> None:
    """No config and no store: completion prints nothing and no error."""
    assert _complete(tmp_path, "mailbox", "show", "a") == []


def test_completion_names_are_literal_prefixes(run: Any) -> None:
    """LIKE's wildcards typed by the user match only themselves; domains complete too."""
    from mailprov.services.completion import names
    from mailprov.store import open_store

    assert run("mailbox", "add", "axb@example.test", "--generate").exit_code == 0
    store = open_store(run.store_url)
    try:
        assert names(store, "mailbox", "ax") == ["axb@example.test"]
        assert names(store, "mailbox", "a_") == []
        assert names(store, "mailbox", "%") == []
        assert names(store, "domain", "EX") == ["example.test"]
    finally:
        store.close()
