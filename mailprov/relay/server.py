"""Starting and stopping the relay: sockets first, then the SMTP servers, the API and workers.

Start-up never hangs: the SMTP hostname is explicit (aiosmtpd would otherwise
call ``socket.getfqdn()`` for every connection, which can block on DNS), every
socket is bound before anything reports ready, a taken port is a clear
``PortInUse`` error, and workers that do not report ready within
``WORKER_START_S`` abort the start.

With ``workers = N > 1`` the relay runs N processes that each bind the same
port with ``SO_REUSEPORT`` (the kernel spreads connections over them) and write
into one store. The first process also serves the API; fault rules set over the
API reach the workers through ``STORAGE/faults.json``, which they re-read when it
changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import pickle
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailprov.errors import ConfigInvalid, MailprovError, PortInUse
from mailprov.model import Secret
from mailprov.relay.api import build_app
from mailprov.relay.arrivals import Arrivals
from mailprov.relay.auth import FileAuthenticator, StoreAuthenticator
from mailprov.relay.delivery import MaildirDelivery, RecipientResolver
from mailprov.relay.faults import FaultRule, FaultSet, parse_fault
from mailprov.relay.gate import ApiGate, allowed_hosts
from mailprov.relay.handlers import Capture, DeliverLocal, Forward, RelayContext
from mailprov.relay.lmtp import DeliverLmtp, parse_target
from mailprov.relay.logs import setup_logging
from mailprov.relay.options import refuse_open_api
from mailprov.relay.reader import StoreReader
from mailprov.relay.smtp import RelaySMTP
from mailprov.relay.storage import MessageStore, Retention
from mailprov.relay.storage.writer import StoreWriter
from mailprov.relay.throttle import AuthThrottle
from mailprov.system.files import atomic_write
from mailprov.system.secrets import SecretKind, read_secret_text
from mailprov.system.tls import self_signed, server_context

if TYPE_CHECKING:
    import ssl

    from mailprov.relay.auth import Authenticator
    from mailprov.relay.handlers import RelayContext, RelayHandler
    from mailprov.relay.options import RelayOptions
    from mailprov.relay.storage import MessageStore

log = logging.getLogger("mailprov.relay")
WORKER_START_S = 20.0
FAULT_POLL_S = 0.25
#: A shorter bearer token could be guessed.
MIN_TOKEN_CHARS = 16


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket. Raises PortInUse when the address is taken."""
    try:
        family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ConfigInvalid(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(
                f"cannot listen on {host}:{port}: the address is already in use"
            ) from None
        raise ConfigInvalid(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def bind_shared(host: str, port: int) -> socket.socket:
    """Bind ``port`` with SO_REUSEPORT, after proving nobody else holds it.

    A SO_REUSEPORT bind would silently *share* a port with another relay of the
    same user, so first bind without it (which fails if anyone listens there);
    port 0 is turned into a concrete free port the same way.
    """
    probe = bind_socket(host, port)
    port = probe.getsockname()[1]
    probe.close()
    return bind_socket(host, port, reuse_port=True)


class RelayServer:
    """One relay process: SMTP listeners (and, in the first process, the API and workers)."""

    def __init__(
        self, options: RelayOptions, *, worker: int = 0, authenticator: Authenticator | None = None
    ) -> None:
        self.options = options
        self._authenticator = authenticator
        self.worker = worker
        self.faults = FaultSet.from_specs(options.faults, options.fault_seed)
        self.ctx: RelayContext | None = None
        self.api_store: MessageStore
        self.api_gate = ApiGate(frozenset())
        #: Stored messages handed to waiters (the API's process only).
        self.arrivals: Arrivals | None = None
        #: The API's store queries, off the event loop (the API's process only).
        self.reader: StoreReader | None = None
        self.port = options.port
        self.tls_port: int | None = None
        self.api_port: int | None = None
        self.cert_file: Path | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._api_runner: Any = None
        self._workers: list[subprocess.Popen[bytes]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._account_store: Any = None
        self._faults_mtime = 0.0

    # -- building ---------------------------------------------------------------

    def _tls(self) -> ssl.SSLContext | None:

        o = self.options
        if o.tls == "off":
            return None
        if o.tls == "generate" and self.worker == 0:
            made = self_signed(
                o.hostname,
                o.storage_dir / "tls",
                ips=["127.0.0.1", "::1"],
                now=int(time.time()),
                replace=True,
            )
            cert, key = made.cert_file, made.key_file
        elif o.tls == "generate":
            cert, key = o.storage_dir / "tls" / "cert.pem", o.storage_dir / "tls" / "key.pem"
        else:
            assert o.tls_cert_file is not None  # noqa: S101 (narrows a type)
            assert o.tls_key_file is not None  # noqa: S101 (narrows a type)
            cert, key = o.tls_cert_file, o.tls_key_file
        self.cert_file = cert
        return server_context(
            cert, key, hint="fix relay.tls_cert_file/tls_key_file, or set relay.tls = 'generate'"
        )

    def _context(self) -> RelayContext:

        o = self.options
        retention = Retention(o.max_messages, o.max_age_s, o.max_bytes)
        store = MessageStore(o.storage_dir, retention, fsync=o.fsync).open(
            writer=o.mode == "capture"
        )
        self.api_store = store
        needs_accounts = (
            o.mode == "deliver"
            or (o.credentials_file is None and o.store_url)
            or (o.mode == "forward" and o.store_url)
        )
        if needs_accounts and o.store_url:
            from mailprov.store import open_store  # noqa: PLC0415  (lazy: SQLAlchemy, only with a store)

            self._account_store = open_store(o.store_url)
        if o.mode == "deliver" and self._account_store is None:
            raise ConfigInvalid("relay.mode = 'deliver' needs the account store (store.url)")
        authenticator: Any = self._authenticator  # a test rig's (mailprov.testing), if given
        if authenticator is None and o.credentials_file is not None:
            authenticator = FileAuthenticator(o.credentials_file).load()
        elif authenticator is None and self._account_store is not None:
            authenticator = StoreAuthenticator(self._account_store)
        if o.require_auth and authenticator is None:
            raise ConfigInvalid(
                "relay.require_auth is on but there is nothing to check passwords against",
                hint="set store.url (the account store) or relay.credentials_file",
            )
        password = None
        if o.smarthost and o.smarthost.password_file:
            kind = SecretKind("relay.smarthost_password_file")
            password = Secret(read_secret_text(o.smarthost.password_file, kind))

        if o.api and self.worker == 0:
            self.arrivals = Arrivals()
        # One process: each stored batch is handed to the waiters at once. Several: the
        # others' messages are read from the index by Arrivals.follow, so all of them are.
        announce = self.arrivals.publish if self.arrivals and o.workers == 1 else None
        return RelayContext(
            options=o,
            faults=self.faults,
            store=store,
            writer=StoreWriter(store, announce) if o.mode == "capture" else None,
            authenticator=authenticator,
            resolver=RecipientResolver(self._account_store, o.local_domains),
            smarthost_password=password,
            throttle=AuthThrottle(o.auth_max_failures, o.auth_lockout_s),
        )

    def _handler(self, ctx: RelayContext) -> RelayHandler:

        if self.options.mode == "deliver":
            if self.options.lmtp:
                return DeliverLmtp(ctx, parse_target(self.options.lmtp))
            return DeliverLocal(ctx, MaildirDelivery(self.options.mail_root))
        if self.options.mode == "forward":
            return Forward(ctx)
        return Capture(ctx)

    def _factory(self, handler: RelayHandler, tls: ssl.SSLContext | None, *, implicit: bool) -> Any:
        o = self.options
        assert self.ctx is not None  # noqa: S101 (narrows a type)
        ctx = self.ctx
        exclude = [] if ctx.authenticator is not None else ["PLAIN", "LOGIN"]
        kwargs = {
            "hostname": o.hostname,
            "ident": "mailprov relay",
            "data_size_limit": o.size_limit,
            "enable_SMTPUTF8": True,
            "decode_data": False,
            "timeout": 300,
            "tls_context": None if implicit else tls,
            "auth_required": o.require_auth,
            "auth_require_tls": not (o.allow_auth_without_tls or implicit),
            "require_starttls": o.require_tls and not implicit and tls is not None,
            "auth_exclude_mechanism": exclude,
        }

        def factory() -> RelaySMTP:
            return RelaySMTP(handler, relay=ctx, **kwargs)

        return factory

    # -- running ------------------------------------------------------------------

    async def start(self, *, sockets: dict[str, socket.socket] | None = None) -> None:  # noqa: PLR0912
        """Bind, build, listen, start the API and workers. Returns once all are ready."""
        o = self.options
        loop = asyncio.get_running_loop()
        shared = o.workers > 1
        socks = dict(sockets or {})
        api_token = None
        if o.api and self.worker == 0:
            refuse_open_api(o.api, o.api_token_file)  # before anything listens
            api_token = self._api_token()
        try:
            if "smtp" not in socks:
                socks["smtp"] = (bind_shared if shared else bind_socket)(o.host, o.port)
            if o.tls_listen and "tls" not in socks:
                socks["tls"] = (bind_shared if shared else bind_socket)(*o.tls_listen)
            api_sock = bind_socket(*o.api) if o.api and self.worker == 0 else None
        except MailprovError:
            for sock in socks.values():
                sock.close()
            raise
        self.port = socks["smtp"].getsockname()[1]
        if "tls" in socks:
            self.tls_port = socks["tls"].getsockname()[1]
        try:
            self.ctx = self._context()
            tls = self._tls()
            if o.require_tls and tls is None:
                raise ConfigInvalid("relay.require_tls needs TLS: relay.tls must not be 'off'")
            handler = self._handler(self.ctx)
            if self.ctx.writer is not None:
                self.ctx.writer.start()
            if self.worker == 0:
                self._write_faults()
            self._servers.append(
                await loop.create_server(
                    self._factory(handler, tls, implicit=False), sock=socks["smtp"]
                )
            )
            if "tls" in socks:
                if tls is None:
                    raise ConfigInvalid("relay.tls_listen needs TLS: relay.tls must not be 'off'")
                self._servers.append(
                    await loop.create_server(
                        self._factory(handler, tls, implicit=True), sock=socks["tls"], ssl=tls
                    )
                )
            if api_sock is not None:
                await self._start_api(api_sock, api_token)
            if self.worker == 0 and o.workers > 1:
                await asyncio.to_thread(self._spawn_workers)
            if self.worker > 0:
                self._tasks.append(loop.create_task(self._follow_faults()))
        except BaseException:
            await self.stop()
            for sock in socks.values():
                sock.close()
            if api_sock is not None:  # bound, but the API never started
                api_sock.close()
            raise

    def _api_token(self) -> Secret | None:
        """The bearer token from relay.api_token_file (0600, via system/secrets), or None."""
        path = self.options.api_token_file
        if path is None:
            return None
        token = read_secret_text(path, SecretKind("API token file (relay.api_token_file)"))
        if len(token.strip()) < MIN_TOKEN_CHARS:
            raise ConfigInvalid(
                f"relay.api_token_file {path} holds fewer than {MIN_TOKEN_CHARS} characters",
                hint="write a long random token into it, e.g. 'openssl rand -hex 32'",
            )
        return Secret(token.strip())

    async def _start_api(self, sock: socket.socket, token: Secret | None) -> None:
        from aiohttp import web  # noqa: PLC0415  (lazy: a heavy import only this path needs)

        assert self.options.api is not None  # noqa: S101 (narrows a type)
        self.api_port = sock.getsockname()[1]
        hosts = allowed_hosts(self.options.api[0], self.api_port, self.options.api_hosts)
        self.api_gate = ApiGate(hosts, token)
        self.reader = StoreReader(self.options.storage_dir)
        if self.arrivals is not None and self.options.workers > 1:
            loop = asyncio.get_running_loop()
            self._tasks.append(loop.create_task(self.arrivals.follow(self.reader)))
        runner = web.AppRunner(build_app(self), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.SockSite(runner, sock)
        await site.start()
        self._api_runner = runner

    def _spawn_workers(self) -> None:
        """Start workers 1..N-1 and wait (bounded) until each has bound its sockets."""
        options = replace(
            self.options,
            port=self.port,
            api=None,
            tls_listen=(self.options.tls_listen[0], self.tls_port)
            if self.options.tls_listen and self.tls_port
            else None,
            faults=tuple(r.spec for r in self.faults.rules),
        )
        for index in range(1, self.options.workers):
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from mailprov.relay.server import worker_main; worker_main()",
                    str(index),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            assert proc.stdin is not None  # noqa: S101 (narrows a type)
            proc.stdin.write(pickle.dumps(options))
            proc.stdin.close()
            self._workers.append(proc)
        deadline = time.monotonic() + WORKER_START_S
        for proc in self._workers:
            assert proc.stdout is not None  # noqa: S101 (narrows a type)
            line = _readline_until(proc, deadline)
            if not line.startswith(b"ready"):
                said = line.decode(errors="replace").strip()
                raise MailprovError(
                    f"relay worker {proc.pid} did not start: {said}",
                    hint="run with --workers 1 to see the error",
                )

    def describe(self) -> dict[str, Any]:
        """Mode, listeners and counters, for the ready line and /health."""
        o = self.options
        assert self.ctx is not None  # noqa: S101 (narrows a type)
        return {
            "mode": o.mode,
            "hostname": o.hostname,
            "smtp": f"{o.host}:{self.port}",
            "smtps": f"{o.tls_listen[0]}:{self.tls_port}" if o.tls_listen else None,
            "api": f"http://{o.api[0]}:{self.api_port}/api/v1" if self.api_port and o.api else None,
            "workers": o.workers,
            "pid": os.getpid(),
            "storage": str(o.storage_dir),
            "tls_cert": str(self.cert_file) if self.cert_file else None,
            "counters": dict(self.ctx.counters),
        }

    async def stop(self) -> None:
        """Stop listening, stop the workers (by PID), close everything."""
        for task in self._tasks:
            task.cancel()
        for server in self._servers:
            server.close()
        await self._close_sessions()
        for proc in self._workers:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in self._workers:
            try:
                await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        self._workers.clear()
        if self.arrivals is not None:  # ends open inbox pages and pending waits
            self.arrivals.close()
        if self._api_runner is not None:
            await self._api_runner.cleanup()
            self._api_runner = None
        if self.reader is not None:
            await asyncio.to_thread(self.reader.close)
            self.reader = None
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self._servers.clear()
        if self.ctx is not None and self.ctx.writer is not None:
            self.ctx.writer.close()
        if self.ctx is not None and self.ctx.store is not None:
            self.ctx.store.close()
        if self._account_store is not None:
            self._account_store.close()
            self._account_store = None

    async def _close_sessions(self) -> None:
        """Let smarthost connections say QUIT (bounded), then cut what is left."""
        if self.ctx is None:
            return
        if self.ctx.closing:
            await asyncio.wait(set(self.ctx.closing), timeout=5)
        for up in list(self.ctx.upstreams):
            up.abort()

    # -- fault rules ----------------------------------------------------------------

    def add_fault(self, spec: str) -> FaultRule:
        """Add a rule now (and for the workers)."""
        rule = self.faults.add(spec)
        self._write_faults()
        return rule

    def clear_faults(self, seed: int | None = None) -> None:
        """Remove every rule (and for the workers)."""
        self.faults.clear(seed)
        self._write_faults()

    def _write_faults(self) -> None:

        data = {"seed": self.faults.seed, "rules": [r.spec for r in self.faults.rules]}
        atomic_write(self.options.storage_dir / "faults.json", json.dumps(data), mode=0o600)

    async def _follow_faults(self) -> None:
        path = self.options.storage_dir / "faults.json"
        parent = os.getppid()
        while True:
            await asyncio.sleep(FAULT_POLL_S)
            if os.getppid() != parent:  # the first process is gone: so are we
                os.kill(os.getpid(), signal.SIGTERM)
                return
            with contextlib.suppress(OSError, ValueError, MailprovError):
                mtime = path.stat().st_mtime_ns
                if mtime != self._faults_mtime:
                    self._faults_mtime = mtime
                    data = json.loads(path.read_text("utf-8"))
                    rules = [parse_fault(s) for s in data["rules"]]
                    self.faults.clear(int(data["seed"]) + self.worker)
                    self.faults.rules.extend(rules)


def _readline_until(proc: subprocess.Popen[bytes], deadline: float) -> bytes:

    assert proc.stdout is not None  # noqa: S101 (narrows a type)
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(max(0.0, deadline - time.monotonic())):
            return b"timed out"
    return proc.stdout.readline() or b"exited"


def worker_main() -> None:
    """Entry point of a worker process: options (pickled) on stdin, 'ready' on stdout."""
    index = int(sys.argv[-1])
    options: RelayOptions = pickle.loads(sys.stdin.buffer.read())  # noqa: S301  (from our parent)

    setup_logging(options)

    async def run() -> None:
        server = RelayServer(options, worker=index)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            socks = {"smtp": bind_socket(options.host, options.port, reuse_port=True)}
            if options.tls_listen:
                socks["tls"] = bind_socket(*options.tls_listen, reuse_port=True)
            await server.start(sockets=socks)
        except MailprovError as exc:
            sys.stdout.write(f"error {exc.message}\n")
            sys.stdout.flush()
            return
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await stop.wait()
        await server.stop()

    asyncio.run(run())
