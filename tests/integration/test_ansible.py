"""The Ansible collection in configs/ansible, run by the real ``ansible-playbook`` on localhost.

One module-scoped run set (ansible-playbook takes seconds to start): apply a state
(changed), apply it again (ok), ``--check --diff`` with a changed state (the plan shown,
nothing changed), and a state with errors (the task fails with mailprov's error).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import invoke

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / "configs" / "ansible"
PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: site
      mailprov.site.mailprov_site:
        config: "{config}"
        {given}
        executable: {executable}
"""
STATE = """\
version = 1
[domains."example.test"]
[mailboxes."alice@example.test"]
name = "Alice"
quota = "1G"
generate_password = true
[aliases."postmaster@example.test"]
destinations = ["alice@example.test"]
"""


@dataclass(frozen=True)
class Run:
    """One ansible-playbook run: exit status, output, the PLAY RECAP counts, the task result."""

    returncode: int
    output: str
    recap: dict[str, int]
    result: dict[str, Any]


def _playbook(site: Path, name: str, state: str | dict[str, Any], *args: str) -> Run:
    """Run a one-task playbook with the state as a file (TOML text) or inline (a mapping)."""
    tree = site / f"tree-{name}"
    if isinstance(state, str):
        (site / f"{name}.toml").write_text(state)
        given = f'src: "{site / f"{name}.toml"}"'
    else:
        given = f"state: {json.dumps(state)}"  # JSON is YAML's flow style
    book = site / f"{name}.yml"
    book.write_text(
        PLAYBOOK.format(
            config=site / "mailprov.toml",
            given=given,
            executable=json.dumps([sys.executable, "-m", "mailprov"]),
        )
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MAILPROV_", "ANSIBLE_"))},
        "PYTHONPATH": str(REPO),
        "LC_ALL": "C.UTF-8",
        "HOME": str(site),
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "ANSIBLE_LOCAL_TEMP": str(site / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.tree",
        "ANSIBLE_CALLBACK_TREE_DIR": str(tree),
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    }
    inventory = f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    (site / "inventory").write_text(inventory)
    ansible = Path(sys.executable).parent / "ansible-playbook"
    done = subprocess.run(
        [str(ansible), "-i", str(site / "inventory"), str(book), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=site,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    match = re.search(r"localhost\s+:\s+(.*)", output)
    recap = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))} if match else {}
    result_file = tree / "localhost"
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    return Run(done.returncode, output, recap, result)


@pytest.fixture(scope="module", name="site")
def fixture_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site folder: mailprov.toml and an empty SQLite store."""
    if not (Path(sys.executable).parent / "ansible-playbook").exists():
        pytest.fail("ansible-playbook is not installed (the tests group has ansible-core)")
    site = tmp_path_factory.mktemp("ansible")
    url = f"sqlite:///{site / 'mailprov.sqlite'}"
    (site / "mailprov.toml").write_text(
        f'[store]\nurl = "{url}"\n[passwords]\nscheme = "SHA512-CRYPT"\n'
    )
    assert 0 == invoke("--config", str(site / "mailprov.toml"), "db", "upgrade").exit_code
    return site


@pytest.fixture(scope="module", name="runs")
def fixture_runs(site: Path) -> dict[str, Run]:
    """The four playbook runs, in order, on the site."""
    changed_state = STATE.replace('quota = "1G"', 'quota = "2G"') + (
        '[aliases."info@example.test"]\ndestinations = ["alice@example.test"]\n'
    )
    bad_state = {
        "version": 1,
        "domains": {"example.test": {}},
        "mailboxes": {"bob@nowhere.test": {"generate_password": True}},
    }
    return {
        "first": _playbook(site, "first", STATE),
        "second": _playbook(site, "second", STATE),
        "check": _playbook(site, "check", changed_state, "--check", "--diff"),
        "failing": _playbook(site, "failing", bad_state),
    }


pytestmark = pytest.mark.slow


def test_first_run_changes(runs: dict[str, Run]) -> None:
    """The first run creates the site: changed=1, the generated password returned once."""
    run = runs["first"]
    assert 0 == run.returncode, run.output
    assert (1, 0) == (run.recap["changed"], run.recap["failed"])
    assert {"create": 3, "update": 0, "delete": 0} == run.result["plan"]["summary"]
    assert ["alice@example.test"] == list(run.result["passwords"])


def test_second_run_is_ok(runs: dict[str, Run]) -> None:
    """The same state again: ok, changed=0, nothing planned."""
    run = runs["second"]
    assert 0 == run.returncode, run.output
    assert (1, 0) == (run.recap["ok"], run.recap["changed"])
    assert [] == run.result["plan"]["changes"]
    assert "passwords" not in run.result


def test_check_diff_shows_the_plan(runs: dict[str, Run], site: Path) -> None:
    """--check --diff: the plan is shown (quota before -> after, the new alias), nothing done."""
    run = runs["check"]
    assert 0 == run.returncode, run.output
    assert 1 == run.recap["changed"]
    assert '~ mailbox alice@example.test\n    quota: "1G" -> "2G"' in run.output
    assert "+ alias info@example.test" in run.output
    listed = invoke("--config", str(site / "mailprov.toml"), "--json", "alias", "list")
    assert ["postmaster@example.test"] == [a["address"] for a in listed.data["aliases"]]


def test_failing_state_reports_the_error(runs: dict[str, Run]) -> None:
    """An inline state that breaks a rule fails the task with mailprov's message, code and line."""
    run = runs["failing"]
    assert 2 == run.returncode, run.output
    assert 1 == run.recap["failed"]
    assert "state-invalid" == run.result["error"]["code"]
    assert 92 == run.result["rc"]
    assert run.result["error"]["problems"][0].startswith('line 1: mailboxes."bob@nowhere.test"')
    assert "nowhere.test is not a domain served here" in run.result["msg"]
