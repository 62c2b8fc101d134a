"""A real Postfix + Dovecot stack rendered by ``mailprov deploy apply``, for integration tests.

Reusable by every area: ``start_stack(root, store_url)`` renders a site into
``root`` (free high ports from the OS, its own queue/data/run/state/log/mail
folders, a server certificate from the test CA), starts
Postfix and Dovecot on 127.0.0.1, waits until every port greets, and returns a
:class:`MailStack`; ``MailStack.stop()`` stops both by PID. With ``[dkim] sign``
in ``extra_toml``, the OpenDKIM instance(s) deploy rendered run too, before Postfix;
with ``[rspamd] enabled``, the rspamd deploy rendered (its Redis is the caller's).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mailprov.store.migrate import upgrade
from mailprov.system import rspamd
from tests.conftest import Cli, free_ports, session_ca

HOST = "127.0.0.1"
PORT_NAMES = (
    "smtp",
    "submission",
    "submissions",
    "imap",
    "imaps",
    "pop3",
    "pop3s",
    "lmtp",
    "relay",
)
DOMAIN = "example.test"

SITE_TOML = """
[tls]
cert_file = "tls/cert.pem"
key_file = "tls/key.pem"

[ports]
smtp = {smtp}
submission = {submission}
submissions = {submissions}
imap = {imap}
imaps = {imaps}
pop3 = {pop3}
pop3s = {pop3s}
lmtp = {lmtp}

[deploy]
listen = ["127.0.0.1"]
mailprov_command = "{mailprov}"

[postfix]
queue_directory = "{root}/spool"
data_directory = "{root}/pfdata"
maillog_file = "{root}/log/postfix.log"
# 127.0.0.2 plays 'the internet' in relay tests.
mynetworks = ["127.0.0.1/32"]
relayhost = "[127.0.0.1]:{relay}"
dns = false

[dovecot]
base_dir = "{root}/run"
state_dir = "{root}/state"
log_path = "{root}/log/dovecot.log"
instance_name = "mp-{name}"
mail_root = "{root}/mail"
auth_penalty = false
"""


def _greets(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as s:
            return s.recv(4)[:3] in (b"220", b"* O", b"+OK")
    except OSError:
        return False


def _listens(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait(pred: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise TimeoutError(what)
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@dataclass
class MailStack:
    """A running, rendered stack: where it listens, where its files are, and its store."""

    name: str
    root: Path
    ports: dict[str, int]
    store_url: str
    config_file: Path
    target: Path
    host: str = HOST
    domain: str = DOMAIN
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return "sqlite" if self.store_url.startswith("sqlite") else "postgresql"

    @property
    def cert_file(self) -> Path:
        """The certificate chain the servers present (issued by the test CA)."""
        return self.root / "tls" / "cert.pem"

    @property
    def ca_file(self) -> Path:
        """The test CA's certificate, which signed :attr:`cert_file`."""
        return self.root / "tls" / "ca.pem"

    @property
    def postfix_dir(self) -> Path:
        """Postfix's config_directory."""
        return self.target / "postfix"

    @property
    def dovecot_conf(self) -> Path:
        """Dovecot's main config file."""
        return self.target / "dovecot" / "dovecot.conf"

    def tls_context(self) -> ssl.SSLContext:
        """A client context that fully verifies the stack's certificate against the test CA
        (SAN has 127.0.0.1)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    @property
    def cli(self) -> Cli:
        """``mailprov`` in-process against this site (``stack.cli.json(...)`` for --json)."""
        return Cli(self.root / "xdg", config=self.config_file)

    def add_mailbox(self, address: str, password: str, *extra: str) -> None:
        """Create a mailbox through the CLI (password on stdin)."""
        result = self.cli(
            "mailbox", "add", address, "--password-stdin", *extra, input=password + "\n"
        )
        assert result.exit_code == 0, result.output

    def sql(self, statement: str, **params: Any) -> None:
        """Run one write statement on the store (for moving time forward in tests)."""

        engine = create_engine(self.store_url)
        try:
            with engine.begin() as conn:
                conn.execute(text(statement), params)
        finally:
            engine.dispose()

    def log(self) -> str:
        """The servers' logs so far (for assertion messages; rspamd's when it runs)."""
        return "".join(
            p.read_text("utf-8", "replace")[-4000:]
            for p in (
                self.root / "log" / "postfix.log",
                self.root / "log" / "dovecot.log",
                self.root / "rspamd-run" / "rspamd.log",
            )
            if p.exists()
        )

    def start_signers(self) -> None:
        """Start each OpenDKIM instance deploy rendered (none unless [dkim] sign is on)."""
        for conf in sorted((self.target / "opendkim").glob("*.conf")):
            port = int(
                next(
                    line.split()[1].split("@")[0].removeprefix("inet:")
                    for line in conf.read_text().splitlines()
                    if line.startswith("Socket")
                )
            )
            pid_file = Path(
                next(
                    line.split()[1]
                    for line in conf.read_text().splitlines()
                    if line.startswith("PidFile")
                )
            )
            pid_file.unlink(missing_ok=True)
            with tempfile.TemporaryFile("w+") as err:
                res = subprocess.run(
                    ["opendkim", "-x", str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    check=False,
                )
                if res.returncode != 0:
                    err.seek(0)
                    raise RuntimeError(f"opendkim did not start: {err.read()}")
            _wait(pid_file.exists, f"opendkim pid file {pid_file}")
            self.pids[conf.stem] = int(pid_file.read_text().split()[0])
            _wait(lambda p=port: _listens(p), f"opendkim on {port}")

    def start_filter(self) -> None:
        """Start the rspamd deploy rendered (none unless [rspamd] enabled), as _rspamd.

        Its state and PID folders must exist, owned by _rspamd (``prepare`` makes them).
        """
        conf = self.target / "rspamd" / "rspamd.conf"
        if not conf.exists():
            return
        pid_file = rspamd.pid_file_of(conf)
        assert pid_file is not None
        pid_file.unlink(missing_ok=True)
        db_dir = self.root / "rspamd-db"
        with tempfile.TemporaryFile("w+") as err:
            res = subprocess.run(
                [
                    "rspamd",
                    "-c",
                    str(conf),
                    *rspamd.variables(str(conf.parent), str(db_dir)),
                    "-u",
                    "_rspamd",
                    "-g",
                    "_rspamd",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                check=False,
            )
            if res.returncode != 0:
                err.seek(0)
                raise RuntimeError(f"rspamd did not start: {err.read()}")
        _wait(pid_file.exists, f"rspamd pid file {pid_file}", 60)
        self.pids["rspamd"] = int(pid_file.read_text().split()[0])
        port = self.ports["rspamd_milter"]
        _wait(lambda: _listens(port), f"rspamd milter on {port}", 60)

    def stop_filter(self) -> None:
        """Stop rspamd (SIGTERM by PID) and wait until it has exited."""
        pid = self.pids.pop("rspamd", None)
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGTERM)
            _wait(lambda: not alive(pid), "rspamd to stop", 30)

    def start(self, greet: tuple[str, ...] = ("smtp", "submission", "imap", "pop3")) -> None:
        """Start the signers and rspamd (if any), Dovecot, then Postfix, and wait until
        ``greet`` ports greet.

        (The TLS-only ports greet only after a handshake, so they are not polled.)
        """
        self.start_signers()
        self.start_filter()
        run = self.root / "run"
        # A pid file left by an earlier instance would name the wrong process.
        for stale in (run / "master.pid", self.root / "spool" / "pid" / "master.pid"):
            stale.unlink(missing_ok=True)
        # The daemon keeps inherited descriptors: never capture its output through a pipe.
        with tempfile.TemporaryFile("w+") as err:
            res = subprocess.run(
                ["dovecot", "-c", str(self.dovecot_conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                check=False,
            )
            if res.returncode != 0:
                err.seek(0)
                raise RuntimeError(f"dovecot did not start: {err.read()}")
        # master.pid can exist before Dovecot has written its number into it.
        _wait(
            lambda: (
                all((run / n).exists() for n in ("auth-postfix", "lmtp", "master.pid"))
                and bool((run / "master.pid").read_text().strip())
            ),
            "dovecot sockets",
        )
        self.pids["dovecot"] = int((run / "master.pid").read_text().split()[0])
        res = subprocess.run(
            ["postfix", "-c", str(self.postfix_dir), "start"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        if res.returncode != 0:
            raise RuntimeError(f"postfix did not start:\n{self.log()}")
        pid_file = self.root / "spool" / "pid" / "master.pid"
        _wait(pid_file.exists, "postfix pid")
        self.pids["postfix"] = int(pid_file.read_text().split()[0])
        for name in greet:
            _wait(lambda n=name: _greets(self.ports[n]), f"{name} greeting on {self.ports[name]}")

    def stop(self) -> None:
        """Stop Postfix and Dovecot by their PIDs and wait until both have exited."""
        for name, pid_file in (
            ("dovecot", self.root / "run" / "master.pid"),
            ("postfix", self.root / "spool" / "pid" / "master.pid"),
        ):
            if name not in self.pids and pid_file.exists():  # started, but start() failed later
                self.pids[name] = int(pid_file.read_text().split()[0])
        if "postfix" in self.pids:
            subprocess.run(
                ["postfix", "-c", str(self.postfix_dir), "stop"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
        for pid in self.pids.values():
            if alive(pid):
                os.kill(pid, signal.SIGTERM)
        # OpenDKIM takes a few seconds to exit: all were signalled at once above.
        _wait(lambda: not any(alive(p) for p in self.pids.values()), "servers to stop", 20)
        self.pids.clear()


def render_site(
    root: Path,
    store_url: str,
    *,
    name: str,
    extra_toml: str = "",
    prepare: Callable[[MailStack], None] | None = None,
    extra_ports: tuple[str, ...] = (),
) -> MailStack:
    """Create a site in ``root`` and render it with ``mailprov deploy apply --target``.

    ``extra_toml`` is appended to the config (``{root}`` and ``{<port name>}`` are filled in,
    also for each of ``extra_ports``); ``prepare`` runs before the deploy (e.g. to make and
    publish DKIM keys).
    """

    upgrade(store_url)
    # A differently configured stack (the DKIM one) also gets ports for the OpenDKIM milters.
    names = (*PORT_NAMES, "milter", "milter_ed25519") if extra_toml else PORT_NAMES
    names = (*names, *extra_ports)
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    mailprov = shutil.which("mailprov") or str(Path(sys.executable).with_name("mailprov"))
    stack = MailStack(name, root, ports, store_url, root / "mailprov.toml", root / "etc")
    init = stack.cli("init", "--dir", str(root), "--store", store_url, "--domain", DOMAIN)
    assert init.exit_code == 0, init.output
    with stack.config_file.open("a") as f:
        f.write(SITE_TOML.format(root=root, name=name, mailprov=mailprov, **ports))
        f.write(extra_toml.format(root=root, **ports))
    session_ca().issue(root / "tls")
    if prepare is not None:
        prepare(stack)
    applied = stack.cli("deploy", "apply", "--target", str(stack.target))
    assert applied.exit_code == 0, applied.output
    return stack


def start_stack(
    store_url: str,
    *,
    name: str,
    base: str = "/tmp",
    extra_toml: str = "",
    prepare: Callable[[MailStack], None] | None = None,
    extra_ports: tuple[str, ...] = (),
) -> MailStack:
    """Render a site in a new short folder under ``base`` and start its servers."""
    # Short root: unix socket paths must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix=f"mp-{name}-", dir=base))
    os.chmod(root, 0o755)
    stack = render_site(
        root,
        store_url,
        name=name,
        extra_toml=extra_toml,
        prepare=prepare,
        extra_ports=extra_ports,
    )
    try:
        stack.start()
    except BaseException:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return stack


def create_pg_database(base_url: str) -> str:
    """A new database on the test PostgreSQL server (the maps cannot set search_path)."""

    name = f"mailprov_{secrets.token_hex(4)}"
    engine = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(base_url: str, url: str) -> None:
    """Drop a database made by :func:`create_pg_database`."""

    name = make_url(url).database
    engine = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()
