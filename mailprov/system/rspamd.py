"""The rspamd process: its own config check, asking a running rspamd to reload, and whether
it and its Redis answer (for doctor)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailprov.system.run import Runner

_PIDFILE_RE = re.compile(r'^\s*pidfile\s*=\s*"([^"]+)"', re.MULTILINE)


def variables(config_dir: str, db_dir: str) -> list[str]:
    """The ``--var`` options rspamd and rspamadm need to read mailprov's files (the unit
    template passes the same)."""
    return [f"--var=LOCAL_CONFDIR={config_dir}", f"--var=DBDIR={db_dir}"]


def check(runner: Runner, config_dir: Path, db_dir: str) -> list[str]:
    """``rspamadm configtest`` on ``config_dir/rspamd.conf`` with its local.d/ and override.d/.

    Returns rspamadm's complaints, or [] when it says the syntax is OK.
    """
    done = runner.run(
        [
            "rspamadm",
            *variables(str(config_dir), db_dir),
            "configtest",
            "-c",
            str(config_dir / "rspamd.conf"),
        ],
        timeout=60,
    )
    if done.returncode == 0:
        return []
    lines = [line for line in done.output.splitlines() if line.strip() and "syntax" not in line]
    return [f"rspamd: {line}" for line in lines] or [
        f"rspamd: rspamadm configtest exit status {done.returncode}"
    ]


def pid_file_of(conf: Path) -> Path | None:
    """The ``pidfile`` a rendered rspamd.conf names (None when it cannot be read)."""
    try:
        found = _PIDFILE_RE.search(conf.read_text("utf-8"))
    except OSError:
        return None
    return Path(found.group(1)) if found else None


def reload(pid_file: Path) -> bool:
    """Send SIGHUP (re-read the config, restart the workers) to the rspamd named by ``pid_file``.

    Returns False, and signals nothing, when the file is missing or its PID is not a
    running ``rspamd``: a stale PID file must never make us signal another process.
    """
    try:
        pid = int(pid_file.read_text("ascii").split()[0])
        comm = Path(f"/proc/{pid}/comm").read_text("ascii").strip()
    except (OSError, ValueError, IndexError):
        return False
    if comm != "rspamd":
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGHUP)
        return True
    return False


def controller_ping(host: str, port: int, *, timeout: float = 2.0) -> str | None:
    """Ask rspamd's controller ``GET /ping``; None when it answers ``pong``, else what was wrong."""
    target = f"[{host}]" if ":" in host else host
    request = f"GET /ping HTTP/1.0\r\nHost: {target}\r\n\r\n".encode("ascii")
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(request)
            reply = _read_all(conn, 4096)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    head, _, body = reply.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode("ascii", "replace")
    if " 200 " not in f"{status} " or b"pong" not in body:
        return f"unexpected answer {status[:60]!r}"
    return None


def redis_ping(host: str, port: int, *, timeout: float = 2.0) -> str | None:
    """Send Redis ``PING``; None when it answers ``+PONG``, else what was wrong (a Redis that
    wants a password answers ``-NOAUTH``, which rspamd's config here does not give it)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(b"PING\r\n")
            reply = conn.recv(256)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    if reply.startswith(b"+PONG"):
        return None
    text = reply.decode("utf-8", "replace").strip()[:80]
    return f"it answered {text!r}" if text else "it closed the connection without an answer"


def _read_all(conn: socket.socket, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = conn.recv(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
