"""A real Postfix + Dovecot rendered by ``mailprov deploy apply``, on loopback, for test rigs.

``start_stack(store_url, name=...)`` makes a site in a new short folder: free high ports
from the OS, its own queue, data, run, state, log and mail folders, and a server
certificate (self-signed unless ``issue_tls`` makes one). It renders the site with
``mailprov init`` and ``mailprov deploy apply --target``, starts Dovecot and then Postfix
on 127.0.0.1, waits until every port greets, and returns a :class:`MailStack`.
``MailStack.stop()`` stops both by PID. With ``[dkim] sign`` in ``extra_toml``, the
OpenDKIM instances that deploy rendered run too, before Postfix.

Several stacks can play the hosts of one site (``[cluster]`` in ``extra_toml``): each on
its own loopback address (``host``, e.g. 127.0.0.2, 127.0.0.3 …), all on the same
``ports``, one shared PostgreSQL store.

The pytest fixture ``mail_stack`` (:mod:`mailprov.testing`) is this, once per session.
mailprov's own integration tests use it through ``tests/integration/stack.py``.
The servers run as the users the rendered configs name, so the caller is root (as in a
CI container).
"""

from __future__ import annotations

import contextlib
import functools
import imaplib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any, TypeVar

from mailprov.store.migrate import upgrade
from mailprov.system import rspamd
from mailprov.system.tls import self_signed

HOST = "127.0.0.1"
DOMAIN = "example.test"
#: What the stack needs on the PATH (Debian: postfix, postfix-pgsql, postfix-sqlite,
#: dovecot-core, dovecot-imapd, dovecot-pop3d, dovecot-lmtpd, dovecot-pgsql, dovecot-sqlite).
TOOLS = ("postfix", "postconf", "postmap", "dovecot", "doveconf", "doveadm")
PORT_NAMES = (
    "smtp",
    "submission",
    "submissions",
    "imap",
    "imaps",
    "pop3",
    "pop3s",
    "lmtp",
    "managesieve",
    "quota_status",
)
#: A port more for the relayhost Postfix sends outside mail to (nothing listens by default).
EXTRA_PORTS = ("relay",)

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
managesieve = {managesieve}
quota_status = {quota_status}

[deploy]
listen = ["{host}"]
# Where 'deploy apply --target' puts them: the filters API runs sievec on this.
dovecot_dir = "{root}/etc/dovecot"
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
mail_root = "{mail_root}"
auth_penalty = false
"""


def missing_tools() -> list[str]:
    """The server tools the stack needs that are not installed."""
    return [t for t in TOOLS if shutil.which(t, path="/usr/sbin:/usr/bin:/sbin:/bin") is None]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all held open while they are chosen)."""
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def _greets(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
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


def _start_daemon(argv: list[str], what: str) -> None:
    # The daemon keeps inherited descriptors: never capture its output through a pipe.
    with tempfile.TemporaryFile("w+") as err:
        res = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, check=False
        )
        if res.returncode != 0:
            err.seek(0)
            msg = f"{what} did not start: {err.read()}"
            raise RuntimeError(msg)


def _conf_value(conf: Path, key: str) -> str:
    return next(line.split()[1] for line in conf.read_text().splitlines() if line.startswith(key))


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        with Path(f"/proc/{pid}/stat").open() as f:
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
        """The certificate chain the servers present."""
        return self.root / "tls" / "cert.pem"

    @property
    def ca_file(self) -> Path:
        """The certificate that signed :attr:`cert_file` (itself, when self-signed)."""
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
        """A client context that fully verifies the stack's certificate (SAN has 127.0.0.1)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def mailprov(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``mailprov ARGS`` for this site in a subprocess (no ``MAILPROV_*`` of the caller)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPROV_")}
        env |= {"MAILPROV_CONFIG": str(self.config_file), "XDG_STATE_HOME": str(self.root / "xdg")}
        return subprocess.run(
            [sys.executable, "-m", "mailprov", *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
        )

    def add_mailbox(self, address: str, password: str, *extra: str) -> None:
        """Create a mailbox with ``mailprov mailbox add`` (password on stdin)."""
        res = self.mailprov(
            "mailbox", "add", address, "--password-stdin", *extra, input=password + "\n"
        )
        if res.returncode != 0:
            msg = f"mailbox add {address} failed: {res.stderr}"
            raise RuntimeError(msg)

    def messages(self, address: str, password: str, folder: str = "INBOX") -> list[Message]:
        """Every message in ``folder`` of ``address``, read over IMAPS (verified TLS)."""
        with imaplib.IMAP4_SSL(
            self.host, self.ports["imaps"], ssl_context=self.tls_context(), timeout=10
        ) as imap:
            imap.login(address, password)
            imap.select(folder, readonly=True)
            _, found = imap.search(None, "ALL")
            out = []
            for num in found[0].split():
                _, data = imap.fetch(num.decode(), "(RFC822)")
                part = data[0]
                if isinstance(part, tuple):
                    out.append(message_from_bytes(part[1]))
            return out

    def wait_for_message(
        self, address: str, password: str, subject: str, timeout: float = 10.0
    ) -> Message:
        """The first message whose Subject is ``subject``, waiting for delivery."""
        end = time.monotonic() + timeout
        while True:
            for found in self.messages(address, password):
                if found["Subject"] == subject:
                    return found
            if time.monotonic() > end:
                msg = f"{subject!r} never reached {address}\n{self.log()[-2500:]}"
                raise TimeoutError(msg)
            time.sleep(0.1)

    def sql(self, statement: str, **params: Any) -> None:
        """Run one write statement on the store (for moving time forward in tests)."""
        # Lazy: only this helper needs SQLAlchemy's engine.
        from sqlalchemy import create_engine, text  # noqa: PLC0415  (lazy: heavy)

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
            port = int(_conf_value(conf, "Socket").split("@")[0].removeprefix("inet:"))
            pid_file = Path(_conf_value(conf, "PidFile"))
            pid_file.unlink(missing_ok=True)
            _start_daemon(["opendkim", "-x", str(conf)], "opendkim")
            _wait(pid_file.exists, f"opendkim pid file {pid_file}")
            self.pids[conf.stem] = int(pid_file.read_text().split()[0])
            _wait(functools.partial(_listens, port), f"opendkim on {port}")

    def start_filter(self) -> None:
        """Start the rspamd deploy rendered (none unless [rspamd] enabled), as _rspamd.

        Its state and PID folders must exist, owned by _rspamd (``prepare`` makes them);
        its Redis is the caller's.
        """
        conf = self.target / "rspamd" / "rspamd.conf"
        if not conf.exists():
            return
        pid_file = rspamd.pid_file_of(conf)
        if pid_file is None:
            msg = f"{conf} names no pid file"
            raise RuntimeError(msg)
        pid_file.unlink(missing_ok=True)
        db_dir = self.root / "rspamd-db"
        argv = ["rspamd", "-c", str(conf), *rspamd.variables(str(conf.parent), str(db_dir))]
        _start_daemon([*argv, "-u", "_rspamd", "-g", "_rspamd"], "rspamd")
        _wait(pid_file.exists, f"rspamd pid file {pid_file}", 60)
        self.pids["rspamd"] = int(pid_file.read_text().split()[0])
        port = self.ports["rspamd_milter"]
        _wait(functools.partial(_listens, port), f"rspamd milter on {port}", 60)

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
        _start_daemon(["dovecot", "-c", str(self.dovecot_conf)], "dovecot")
        # master.pid can exist before Dovecot has written its number into it. A frontend
        # ([cluster] role) has no LMTP socket: it stores no mail.
        sockets = ["auth-postfix", "master.pid"]
        if "unix_listener lmtp" in self.dovecot_conf.read_text():
            sockets.append("lmtp")
        _wait(
            lambda: (
                all((run / n).exists() for n in sockets)
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
            msg = f"postfix did not start:\n{self.log()}"
            raise RuntimeError(msg)
        pid_file = self.root / "spool" / "pid" / "master.pid"
        _wait(pid_file.exists, "postfix pid")
        self.pids["postfix"] = int(pid_file.read_text().split()[0])
        for name in greet:
            port = self.ports[name]
            _wait(functools.partial(_greets, port, self.host), f"{name} greeting on {port}")

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


def self_signed_tls(folder: Path, host: str = HOST) -> None:
    """A self-signed certificate for ``host`` in ``folder`` (``ca.pem`` is the certificate)."""
    made = self_signed(f"mail.{DOMAIN}", folder, ips=[host], now=int(time.time()))
    shutil.copyfile(made.cert_file, folder / "ca.pem")


S = TypeVar("S", bound=MailStack)


def stack_ports(
    extra_ports: tuple[str, ...] = (),
    *,
    milters: bool = False,
    chosen: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Ports for every server of a stack: the ``chosen`` ones as given, free ones for the
    rest (``milters``: the OpenDKIM ones too)."""
    names: tuple[str, ...] = (*PORT_NAMES, *EXTRA_PORTS)
    if milters:
        names = (*names, "milter", "milter_ed25519")
    names = (*names, *extra_ports)
    given = dict(chosen or {})
    free = [name for name in names if name not in given]
    return given | dict(zip(free, free_ports(len(free)), strict=True))


def render_site(
    root: Path,
    store_url: str,
    *,
    name: str,
    extra_toml: str = "",
    prepare: Callable[[S], None] | None = None,
    issue_tls: Callable[[Path], None] = self_signed_tls,
    factory: Callable[..., S] = MailStack,  # type: ignore[assignment]
    extra_ports: tuple[str, ...] = (),
    host: str = HOST,
    ports: Mapping[str, int] | None = None,
    mail_root: Path | None = None,
) -> S:
    """Create a site in ``root`` and render it with ``mailprov deploy apply --target``.

    Args:
        extra_toml: appended to the config; ``{root}``, ``{host}`` and ``{<port name>}`` are
            filled in (also for each of ``extra_ports``, free ports chosen like the others).
        prepare: runs before the deploy (e.g. to make and publish DKIM keys).
        issue_tls: writes ``cert.pem``, ``key.pem`` and ``ca.pem`` into the folder it is given
            (the default's certificate names ``host``).
        factory: the :class:`MailStack` (sub)class to make.
        host: the loopback address the servers listen on.
        ports: ports the caller chose instead of free ones, by name: all of them
            (:func:`stack_ports`, e.g. the same for every host of a site), or some (e.g.
            ``relay``: a capture relay already listening, for the mail Postfix sends out).
        mail_root: the mail homes' folder (default ``ROOT/mail``): another site on the same
            store (a ``mailprov serve`` writing Sieve scripts) may name its own. Dovecot runs
            as vmail: every folder above it must be searchable by others.
    """
    upgrade(store_url)
    chosen = stack_ports(extra_ports, milters=bool(extra_toml), chosen=ports)
    if issue_tls is self_signed_tls:
        issue_tls = functools.partial(self_signed_tls, host=host)
    command = shutil.which("mailprov") or str(Path(sys.executable).with_name("mailprov"))
    stack = factory(name, root, chosen, store_url, root / "mailprov.toml", root / "etc", host)
    init = stack.mailprov("init", "--dir", str(root), "--store", store_url, "--domain", DOMAIN)
    if init.returncode != 0:
        msg = f"mailprov init failed: {init.stderr}"
        raise RuntimeError(msg)
    with stack.config_file.open("a") as f:
        homes = mail_root or root / "mail"
        f.write(
            SITE_TOML.format(
                root=root, name=name, mailprov=command, host=host, mail_root=homes, **chosen
            )
        )
        f.write(extra_toml.format(root=root, host=host, **chosen))
    issue_tls(root / "tls")
    if prepare is not None:
        prepare(stack)
    applied = stack.mailprov("deploy", "apply", "--target", str(stack.target))
    if applied.returncode != 0:
        msg = f"mailprov deploy apply failed: {applied.stderr}"
        raise RuntimeError(msg)
    return stack


def start_stack(
    store_url: str,
    *,
    name: str,
    base: str = "/tmp",  # noqa: S108  (short: unix socket paths must stay under 108 bytes)
    extra_toml: str = "",
    prepare: Callable[[S], None] | None = None,
    issue_tls: Callable[[Path], None] = self_signed_tls,
    factory: Callable[..., S] = MailStack,  # type: ignore[assignment]
    extra_ports: tuple[str, ...] = (),
    host: str = HOST,
    ports: Mapping[str, int] | None = None,
    mail_root: Path | None = None,
) -> S:
    """Render a site in a new short folder under ``base`` and start its servers (the
    arguments: :func:`render_site`'s)."""
    root = Path(tempfile.mkdtemp(prefix=f"mp-{name}-", dir=base))
    root.chmod(0o755)
    stack = render_site(
        root,
        store_url,
        name=name,
        extra_toml=extra_toml,
        prepare=prepare,
        issue_tls=issue_tls,
        factory=factory,
        extra_ports=extra_ports,
        host=host,
        ports=ports,
        mail_root=mail_root,
    )
    try:
        stack.start()
    except BaseException:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return stack
