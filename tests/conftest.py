"""Shared fixtures: stores on SQLite and PostgreSQL, and the CLI runner.

PostgreSQL: tests use ``MAILPROV_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); each test session works
in its own schema, dropped at the end. When the server cannot be reached the
PostgreSQL tests fail under CI (``CI=true``) and skip elsewhere, saying how to
enable them.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pg_base_url() -> str:
    """The PostgreSQL server the tests use."""
    return os.environ.get("MAILPROV_TEST_PG_URL", PG_DEFAULT)


def require_or_skip(reason: str) -> None:
    """Fail under CI, skip on a laptop: a missing real server never passes silently in CI."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (CI=true: this must run)")
    pytest.skip(reason)


@dataclass
class PgSchema:
    """A private schema on the test PostgreSQL server."""

    base: str
    schema: str

    def url(self, schema: str | None = None) -> str:
        """A store URL whose search_path is the schema."""
        sep = "&" if "?" in self.base else "?"
        return f"{self.base}{sep}options=-csearch_path%3D{schema or self.schema}"

    def fresh(self) -> str:
        """A URL for a new, empty schema (dropped at the end of the session)."""
        name = f"{self.schema}_{secrets.token_hex(3)}"
        _pg_exec(self.base, f'CREATE SCHEMA "{name}"')
        _PG_SCHEMAS.append(name)
        return self.url(name)


_PG_SCHEMAS: list[str] = []


def _pg_exec(base: str, sql: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(base, connect_args={"connect_timeout": 5})
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


@pytest.fixture(scope="session", name="pg")
def fixture_pg() -> Iterator[PgSchema]:
    """A PostgreSQL server reachable for this session, with a private schema root."""
    from sqlalchemy.exc import OperationalError

    base = pg_base_url()
    schema = f"mailprov_t{os.getpid()}_{secrets.token_hex(2)}"
    try:
        _pg_exec(base, "SELECT 1")
    except OperationalError as exc:
        require_or_skip(
            f"PostgreSQL not reachable at {base} ({str(exc.orig).strip()[:80]}); "
            "set MAILPROV_TEST_PG_URL to a server where you may create schemas"
        )
    yield PgSchema(base, schema)
    for name in _PG_SCHEMAS:
        _pg_exec(base, f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.requires_postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store URL on each backend (schema not yet created)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mailprov.sqlite'}"
    pg: PgSchema = request.getfixturevalue("pg")
    return pg.fresh()


@pytest.fixture(scope="session", name="sqlite_template")
def fixture_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An upgraded, empty SQLite store made once per session and copied for each test."""
    from mailprov.store.migrate import upgrade

    path = tmp_path_factory.mktemp("template") / "mailprov.sqlite"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def store(store_url: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """An upgraded, opened store on each backend."""
    import shutil

    from mailprov.store import open_store, sqlite_path
    from mailprov.store.migrate import upgrade

    path = sqlite_path(store_url)
    if path is not None:
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    else:
        upgrade(store_url)
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def actor() -> Any:
    """The acting user and a fixed 'now' for service calls."""
    from mailprov.services.accounts import Actor

    return Actor(name="tester", now=int(time.time()))


@dataclass
class Cli:
    """Runs ``mailprov`` in-process against one site."""

    store_url: str
    env: dict[str, str]

    def __call__(self, *args: str, input: str | None = None, json_out: bool = False) -> Result:
        from mailprov.cli.app import cli

        argv = ["--store", self.store_url, *args]
        if json_out:
            argv.append("--json")
        return CliRunner().invoke(cli, argv, input=input, env=self.env, catch_exceptions=False)

    def json(self, *args: str, input: str | None = None) -> tuple[int, Any]:
        """Exit status and the parsed JSON document."""
        result = self(*args, input=input, json_out=True)
        return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def run(store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The CLI on an upgraded store with domain example.test, from an empty folder."""
    monkeypatch.chdir(tmp_path)
    # SHA512-CRYPT keeps CLI tests quick; every scheme is tested in tests/unit/test_passwords.py.
    env = {
        "MAILPROV_CONFIG": "",
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "MAILPROV_PASSWORDS_SCHEME": "SHA512-CRYPT",
    }
    cli = Cli(store.url, env)
    assert cli("domain", "add", "example.test").exit_code == 0
    return cli
