"""Fixtures shared by the integration areas: a private authoritative DNS server (knot), the
rendered Postfix + Dovecot stack (one per store backend), one more SQLite stack whose
deploy wires in DKIM signing (OpenDKIM milters, keys published in knot), and one whose
deploy wires in rspamd (with a private Redis; rspamd resolves through knot only)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, pg_base_url, require_or_skip
from tests.integration.knot import Knot
from tests.integration.stack import (
    MailStack,
    create_pg_database,
    drop_pg_database,
    start_stack,
)


@pytest.fixture(scope="session", name="knot")
def fixture_knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Knot]:
    """A private knotd on a free 127.0.0.1 port for the whole session, stopped by PID."""
    if shutil.which("knotd") is None or shutil.which("knotc") is None:
        require_or_skip("knotd not installed (apt install knot knot-dnsutils)")
    server = Knot.start(tmp_path_factory.mktemp("knot"))
    yield server
    server.stop()


def _require_servers(*extra: str) -> None:
    for tool in ("postfix", "postconf", "dovecot", "doveconf", "doveadm", *extra):
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


DKIM_TOML = """
[dkim]
sign = true
key_dir = "{root}/dkim"
# deploy --target renders OpenDKIM's files into etc/opendkim; 'dkim activate' rewrites them there.
opendkim_dir = "{root}/etc/opendkim"
pid_file = "{root}/odrun/opendkim.pid"
ed25519_pid_file = "{root}/odrun/opendkim-ed25519.pid"
algorithms = ["rsa-2048", "ed25519"]
milter_port = {milter}
ed25519_milter_port = {milter_ed25519}

[dns]
# The mail host's address: the zone published into knot names it as its own name server.
ipv4 = ["127.0.0.1"]
check_nameserver = "{knot}"
check_timeout = 0.5
check_retries = 0
"""


def safe_base() -> str:
    """A root-owned folder no one else may write to, for the DKIM stack's keys.

    OpenDKIM's RequireSafeKeys refuses a key whose path passes through a
    world-writable folder such as /tmp.
    """
    for base in (Path("/run"), Path("/var/lib")):
        if base.is_dir() and os.access(base, os.W_OK) and not base.stat().st_mode & 0o002:
            return str(base)
    require_or_skip("no root-owned, non-world-writable folder for DKIM keys (run as root)")
    raise AssertionError  # unreachable


def publish_zone(stack: MailStack, knot: Knot) -> None:
    """Load the records ``dns records --standalone`` prints for the stack's domain into knot."""
    result = stack.cli("dns", "records", stack.domain, "--standalone", "--no-tlsa")
    assert result.exit_code == 0, result.output
    head, _, rest = result.stdout.partition("( ")
    old_serial, _, tail = rest.partition(" ")
    # A new, higher serial each load, so knot serves the new zone.
    stack.__dict__["_serial"] = stack.__dict__.get("_serial", 0) + 1
    knot.load_zone(stack.domain, f"{head}( {int(old_serial) + stack.__dict__['_serial']} {tail}")


@pytest.fixture(scope="session", name="dkim_stack")
def fixture_dkim_stack(knot: Knot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailStack]:
    """A second rendered SQLite stack with '[dkim] sign': keys made, published in knot and
    activated before 'deploy apply', then OpenDKIM (RSA and Ed25519), Dovecot and Postfix."""
    _require_servers("opendkim")
    base = safe_base()
    url = f"sqlite:///{tmp_path_factory.mktemp('dkimstore')}/mailprov.sqlite"

    def prepare(stack: MailStack) -> None:
        run = stack.root / "odrun"
        run.mkdir()
        shutil.chown(run, "opendkim", "opendkim")
        status, rotated = stack.cli.json("dkim", "rotate", stack.domain)
        assert status == 0, rotated
        publish_zone(stack, knot)
        for key in rotated["keys"]:
            status, doc = stack.cli.json("dkim", "activate", stack.domain, key["selector"])
            assert status == 0, doc

    stack = start_stack(
        url,
        name="dk",
        base=base,
        extra_toml=DKIM_TOML.replace("{knot}", knot.address),
        prepare=prepare,
    )
    try:
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(stack.root, ignore_errors=True)


RSPAMD_TOML = """
[rspamd]
enabled = true
milter_port = {rspamd_milter}
normal_port = {rspamd_normal}
controller_port = {rspamd_controller}
redis = "127.0.0.1:{redis}"
# rspamd's resolver asks the private knot only: no query leaves 127.0.0.1.
nameservers = ["{knot}"]
# 127.0.0.2 plays "the internet" here, and loopback is always local to rspamd.
check_local = true
db_dir = "{root}/rspamd-db"
run_dir = "{root}/rspamd-run"
log_file = "{root}/rspamd-run/rspamd.log"
"""
RSPAMD_PORTS = ("rspamd_milter", "rspamd_normal", "rspamd_controller", "redis")
#: The rspamd stack seals with ARC (continuing [rspamd]); a domain's seal needs its RSA key
#: made and activated first (no key, no seal), which the ARC test does for a domain of its own.
ARC_TOML = """arc_seal = true

[dkim]
key_dir = "{root}/dkim"
"""


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private redis-server on a free 127.0.0.1 port (no persistence), once it listens.

    The caller stops it (``terminate()``); the tests' ``redis`` fixture and the rspamd
    benchmarks share this one starter.
    """
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
            "--daemonize",
            "no",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.terminate()
                msg = "redis-server exited" if proc.poll() else "redis-server did not listen"
                raise RuntimeError(msg) from None
            time.sleep(0.05)


@pytest.fixture(scope="session", name="redis")
def fixture_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A private redis-server for the session (see :func:`start_redis`), stopped by PID."""
    if shutil.which("redis-server") is None:
        require_or_skip("redis-server not installed (scripts/install-test-deps.sh)")
    proc, port = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session", name="rspamd_stack")
def fixture_rspamd_stack(
    knot: Knot, redis: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MailStack]:
    """A SQLite stack with '[rspamd] enabled': rspamd (as _rspamd, resolving through knot,
    state in the private Redis) as the milter of port 25 and submission."""
    _require_servers("rspamd", "rspamadm")
    url = f"sqlite:///{tmp_path_factory.mktemp('rspamdstore')}/mailprov.sqlite"

    def prepare(stack: MailStack) -> None:
        for sub in ("rspamd-db", "rspamd-run"):
            (stack.root / sub).mkdir()
            shutil.chown(stack.root / sub, "_rspamd", "_rspamd")

    toml = RSPAMD_TOML.replace("{knot}", knot.address).replace("{redis}", str(redis))
    toml += ARC_TOML
    stack = start_stack(
        url, name="rs", extra_toml=toml, prepare=prepare, extra_ports=RSPAMD_PORTS[:3]
    )
    try:
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(stack.root, ignore_errors=True)
