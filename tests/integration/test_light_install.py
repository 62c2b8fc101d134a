"""The light install for test rigs: the mailprov-relay wheel alone in a fresh venv runs the fixture.

``packaging/relay`` builds a second distribution from this repository's files. The
venv gets that wheel and pytest (pip resolves their dependencies from the index or
its cache) and nothing of the provisioning toolkit; the README's rig example then
runs there, from a folder outside the source tree, with no PYTHONPATH.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.integration.relay.test_relay_plugin import readme_rig_example

REPO = Path(__file__).resolve().parents[2]
#: The toolkit's own dependencies: none of them may come with mailprov-relay.
TOOLKIT = {
    "sqlalchemy",
    "alembic",
    "psycopg",
    "libpass",
    "argon2-cffi",
    "bcrypt",
    "joserfc",
    "dnspython",
    "aioimaplib",
    "click",
    "jinja2",
    "rich",
    "mailprov",
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session", name="light_venv")
def fixture_light_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One venv for the session with only the mailprov-relay wheel and pytest installed."""
    base = tmp_path_factory.mktemp("light")
    wheels = base / "wheels"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"),
            *("-w", str(wheels), str(REPO / "packaging" / "relay")),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("mailprov_relay-*.whl")
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel), "pytest"],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return env_dir


def test_light_venv_holds_none_of_the_toolkit(light_venv: Path) -> None:
    """pip list in the light venv shows mailprov-relay and no toolkit dependency."""
    listed = subprocess.run(
        [str(light_venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    names = {line.split("==")[0].lower() for line in listed.split()}
    assert {"mailprov-relay", "aiosmtpd", "aiohttp", "pytest"} <= names
    assert set() == names & TOOLKIT


def test_rig_example_passes_in_the_light_venv(light_venv: Path, tmp_path: Path) -> None:
    """The README's rig example (fixture options, Mailpit API included) passes with only the light install."""
    (tmp_path / "test_rig.py").write_text(readme_rig_example())
    result = subprocess.run(
        [str(light_venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env={"PATH": f"{light_venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert 0 == result.returncode, result.stdout[-3000:] + result.stderr[-2000:]
    assert "5 passed" in result.stdout
    probe = subprocess.run(
        [str(light_venv / "bin" / "python"), "-c", "import mailprov.testing, sqlalchemy"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "No module named 'sqlalchemy'" in probe.stderr


@pytest.mark.parametrize("ci", ["", "true"])
def test_mail_stack_is_skipped_in_the_light_venv(light_venv: Path, tmp_path: Path, ci: str) -> None:
    """mail_stack in the light install says it needs the full package: a skip, or under
    CI=true a failure."""
    (tmp_path / "test_stack.py").write_text("def test_it(mail_stack):\n    pass\n")
    result = subprocess.run(
        [str(light_venv / "bin" / "python"), "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env={"PATH": f"{light_venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "CI": ci},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "mail_stack needs the full mailprov package" in result.stdout, result.stdout[-3000:]
    if ci:
        assert 0 != result.returncode and "CI=true: this must run" in result.stdout
    else:
        assert 0 == result.returncode and "1 skipped" in result.stdout
