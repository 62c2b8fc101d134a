"""Shared fixtures and helpers: stores on SQLite and PostgreSQL, the CLI harness, free ports
and the test CA.

The CLI harness: :func:`invoke` runs ``mailprov`` in-process with every
``MAILPROV_*`` variable cleared; :class:`Cli` binds it to one site (config file,
store, state folder, cwd); the ``run`` fixture is a :class:`Cli` on a fresh store.

Ports: :func:`free_port` and :func:`free_ports` ask the OS (port 0) on 127.0.0.1.

TLS: the ``test_ca`` session fixture (:func:`session_ca` outside fixtures) is the
one CA (trustme) behind every server certificate a test needs.

PostgreSQL: tests use ``MAILPROV_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); each test session works
in its own schema, dropped at the end. When the server cannot be reached the
PostgreSQL tests fail under CI (``CI=true``) and skip elsewhere, saying how to
enable them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import datetime as dt

    import trustme

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


# -- the CLI harness --------------------------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    """What one in-process ``mailprov`` run gave back."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    #: stdout and stderr interleaved, as a terminal would show them (for assertion messages).
    output: str

    @functools.cached_property
    def data(self) -> Any:
        """The JSON document on stdout (fails the test, showing the output, if there is none)."""
        try:
            return json.loads(self.stdout)
        except ValueError:
            pytest.fail(
                f"mailprov {' '.join(self.argv)} printed no JSON document "
                f"(exit {self.exit_code}):\n{self.output}"
            )


def invoke(
    *args: str,
    input: str | None = None,
    env: dict[str, str] | None = None,
    config: Path | None = None,
    state_dir: Path | None = None,
    cwd: Path | None = None,
    json: bool = False,
) -> CliResult:
    """Run ``mailprov.cli.app.cli`` in-process with ``args`` (the one CLI harness).

    Every ``MAILPROV_*`` variable of the calling environment is cleared, so a
    developer's shell never leaks into a test; ``MAILPROV_CONFIG`` is ``config``
    (or empty: no config file), ``XDG_STATE_HOME`` is ``state_dir`` when given,
    and ``env`` is applied last. ``cwd`` is the working folder for the run.
    ``json=True`` appends ``--json`` (the result's ``data`` is the parsed document).
    Exceptions other than the CLI's own exit propagate (``catch_exceptions=False``).
    """
    from click.testing import CliRunner

    from mailprov.cli.app import cli

    isolated: dict[str, str | None] = {k: None for k in os.environ if k.startswith("MAILPROV_")}
    isolated["MAILPROV_CONFIG"] = str(config) if config is not None else ""
    if state_dir is not None:
        isolated["XDG_STATE_HOME"] = str(state_dir)
    isolated.update(env or {})
    argv = [*args, "--json"] if json else list(args)
    with contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext():
        result = CliRunner().invoke(cli, argv, input=input, env=isolated, catch_exceptions=False)
    return CliResult(tuple(argv), result.exit_code, result.stdout, result.stderr, result.output)


@dataclass
class Cli:
    """``mailprov`` in-process against one site: its config file and/or store, state and cwd."""

    state_dir: Path
    config: Path | None = None
    store_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        env: dict[str, str] | None = None,
        json: bool = False,
    ) -> CliResult:
        """Run one command (``--store`` first when the site is given by its store URL)."""
        store = ("--store", self.store_url) if self.store_url else ()
        return invoke(
            *store,
            *args,
            input=input,
            env={**self.env, **(env or {})},
            config=self.config,
            state_dir=self.state_dir,
            cwd=self.cwd,
            json=json,
        )

    def json(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """Exit status and the parsed JSON document of ``mailprov ARGS --json``."""
        result = self(*args, input=input, env=env, json=True)
        return result.exit_code, result.data


@pytest.fixture
def run(store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The CLI on an upgraded store with domain example.test, from an empty folder."""
    monkeypatch.chdir(tmp_path)
    # SHA512-CRYPT keeps CLI tests quick; every scheme is tested in tests/unit/test_passwords.py.
    cli = Cli(
        tmp_path / "state", store_url=store.url, env={"MAILPROV_PASSWORDS_SCHEME": "SHA512-CRYPT"}
    )
    assert cli("domain", "add", "example.test").exit_code == 0
    return cli


# -- free ports -------------------------------------------------------------------------------


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (asked from the OS)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    msg = "no port free for both TCP and UDP"
    raise RuntimeError(msg)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (the shipped harness's one helper)."""
    from mailprov.mailstack import free_ports as shipped

    return shipped(count)


# -- the test CA ------------------------------------------------------------------------------

#: The names ``mailprov tls self-signed`` puts in a certificate, and so the default here too.
SERVER_NAMES = ("mail.example.test", "localhost", "127.0.0.1")


@dataclass(frozen=True)
class TlsFiles:
    """A server certificate and key issued by the test CA, and the CA's own certificate."""

    cert_file: Path
    key_file: Path
    ca_file: Path


@dataclass(frozen=True)
class CertAuthority:
    """The test CA (trustme): every server certificate a test needs, and what clients trust."""

    ca: trustme.CA

    def issue(
        self,
        folder: Path,
        *names: str,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> TlsFiles:
        """Write ``cert.pem`` (leaf, then the CA), ``key.pem`` (0600) and ``ca.pem`` to ``folder``.

        The chain file is what a server presents; a client that is given it as its CA file
        (``[check] ca_file`` defaults to ``[tls] cert_file``) finds the CA in it.
        """
        leaf = self.ca.issue_cert(
            *(names or SERVER_NAMES), not_before=not_before, not_after=not_after
        )
        folder.mkdir(parents=True, exist_ok=True)
        files = TlsFiles(folder / "cert.pem", folder / "key.pem", folder / "ca.pem")
        files.cert_file.write_bytes(
            b"".join(blob.bytes() for blob in leaf.cert_chain_pems) + self.ca.cert_pem.bytes()
        )
        files.key_file.touch(mode=0o600)
        files.key_file.write_bytes(leaf.private_key_pem.bytes())
        files.ca_file.write_bytes(self.ca.cert_pem.bytes())
        return files

    def client_context(self) -> ssl.SSLContext:
        """A client context that verifies servers against the test CA only."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(context)
        return context

    def signer(self) -> tuple[Any, Any]:
        """The CA's certificate and private key (cryptography objects), to sign with by hand."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        return (
            x509.load_pem_x509_certificate(self.ca.cert_pem.bytes()),
            serialization.load_pem_private_key(self.ca.private_key_pem.bytes(), None),
        )


@functools.cache
def session_ca() -> CertAuthority:
    """The test CA, made once per session (for helpers outside fixtures, e.g. the mail stack)."""
    import trustme

    return CertAuthority(trustme.CA())


@pytest.fixture(scope="session", name="test_ca")
def fixture_test_ca() -> CertAuthority:
    """The session's test CA (trustme) for server certificates."""
    return session_ca()
