"""The built wheel works on its own: installed in a fresh venv, run outside the source tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", name="wheel")
def fixture_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project built as a wheel by the real build backend."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("mailprov-*.whl")
    return wheel


def test_wheel_ships_exactly_the_tracked_templates(wheel: Path) -> None:
    """Every tracked file under templates/ is in the wheel under mailprov/templates, and nothing else."""
    tracked = subprocess.run(
        ["git", "ls-files", "templates"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.split()
    if not tracked:  # not a git checkout (e.g. an sdist): compare with the folder
        tracked = [str(p.relative_to(REPO)) for p in (REPO / "templates").rglob("*") if p.is_file()]
    with zipfile.ZipFile(wheel) as zf:
        shipped = sorted(
            n.removeprefix("mailprov/")
            for n in zf.namelist()
            if n.startswith("mailprov/templates/")
        )
        for name in tracked:
            assert (REPO / name).read_bytes() == zf.read(f"mailprov/{name}")
        assert any(n == "mailprov/data/common-passwords.txt" for n in zf.namelist())
        # The portal's Russian catalogue, compiled, and its style sheet and script.
        names = set(zf.namelist())
        assert "mailprov/web/portal/locale/ru/LC_MESSAGES/messages.mo" in names
        assert {
            "mailprov/templates/portal/static/portal.css",
            "mailprov/templates/portal/static/portal.js",
        } <= names
        schema = zf.read("mailprov/data/state.schema.json")
        assert (REPO / "mailprov/data/state.schema.json").read_bytes() == schema
    assert sorted(tracked) == shipped


@pytest.fixture(scope="module", name="wheel_venv")
def fixture_wheel_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel (its dependencies from the index) and pytest."""
    env_dir = tmp_path_factory.mktemp("wheelvenv") / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel), "pytest"],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return env_dir


@pytest.mark.slow
def test_installed_wheel_runs_outside_the_source_tree(wheel_venv: Path, tmp_path: Path) -> None:
    """A fresh venv with only the wheel runs --version, init, and a mailbox add from another folder."""
    env_dir = wheel_venv
    py = env_dir / "bin" / "python"
    exe = env_dir / "bin" / "mailprov"
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "MAILPROV_CONFIG": ""}

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(exe), *args],
            cwd=work,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )

    version = run("--version")
    assert 0 == version.returncode and version.stdout.startswith("mailprov ")
    assert 0 == run("init", "--dir", "site", "--domain", "example.test").returncode
    os.chdir(work / "site")
    added = subprocess.run(
        [str(exe), "--json", "mailbox", "add", "a@example.test", "--generate"],
        cwd=work / "site",
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert 0 == added.returncode, added.stderr
    assert "a@example.test" == json.loads(added.stdout)["mailbox"]["address"]
    where = subprocess.run(
        [str(py), "-c", "import mailprov, pathlib; print(pathlib.Path(mailprov.__file__).parent)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert str(env_dir) in where
    assert (Path(where) / "templates" / "README.md").is_file()
    portal = subprocess.run(
        [
            str(py),
            "-c",
            "from mailprov.web.portal import i18n, core; "
            "print(i18n.translations('ru').gettext('Apply')); "
            "print(core.environment('ru').get_template('apply.html').filename)",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert "Подать заявку" == portal[0]  # the compiled catalogue ships in the wheel
    assert portal[1].startswith(str(env_dir))


@pytest.mark.slow
@pytest.mark.requires_postfix
@pytest.mark.requires_dovecot
def test_mail_stack_fixture_runs_from_the_installed_wheel(wheel_venv: Path, tmp_path: Path) -> None:
    """The README's mail_stack example passes in the wheel's venv, outside the source tree:
    the plugin, the harness and the templates all come from the installed wheel."""
    text = (REPO / "README.md").read_text("utf-8")
    block = text.split("<!-- stack-example -->", 1)[1].split("```python\n", 1)[1]
    (tmp_path / "test_rig_stack.py").write_text(block.split("\n```", 1)[0] + "\n")
    result = subprocess.run(
        [str(wheel_venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        # /usr/sbin: Postfix and Dovecot; no PYTHONPATH: mailprov comes from the venv only.
        env={"PATH": f"{wheel_venv / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert 0 == result.returncode, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
