"""Fixtures for the rendered-stack tests: one running Postfix + Dovecot per store backend."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import pg_base_url, require_or_skip
from tests.integration.stack import (
    MailStack,
    create_pg_database,
    drop_pg_database,
    start_stack,
)


def _require_servers() -> None:
    for tool in ("postfix", "postconf", "dovecot", "doveconf", "doveadm"):
        if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
            require_or_skip(f"'{tool}' is not installed (make test-deps installs it)")


@pytest.fixture(
    scope="session",
    name="mailstack",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.requires_postgres)],
)
def fixture_mailstack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MailStack]:
    """Real Postfix and Dovecot, rendered by 'deploy apply', on a SQLite or PostgreSQL store."""
    _require_servers()
    pg_url = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('store')}/mailprov.sqlite"
    else:
        request.getfixturevalue("pg")  # skips (or fails under CI) when PostgreSQL is down
        pg_url = create_pg_database(pg_base_url())
        url = pg_url
    stack = start_stack(url, name=request.param[:2])
    try:
        yield stack
    finally:
        stack.stop()
        if pg_url:
            drop_pg_database(pg_base_url(), pg_url)
        shutil.rmtree(stack.root, ignore_errors=True)
