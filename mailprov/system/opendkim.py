"""The OpenDKIM process: ask a running signer to re-read its config and tables."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailprov.system.run import Runner


def reload(pid_file: Path) -> bool:
    """Send SIGUSR1 (re-read config and tables) to the OpenDKIM named by ``pid_file``.

    Returns False, and signals nothing, when the file is missing or its PID is not
    a running ``opendkim``: a stale PID file must never make us signal another process.
    """
    try:
        pid = int(pid_file.read_text("ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        comm = Path(f"/proc/{pid}/comm").read_text("ascii").strip()
    except OSError:
        return False
    if comm != "opendkim":
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGUSR1)
        return True
    return False


def pid_file_of(conf: Path) -> Path | None:
    """The ``PidFile`` an opendkim.conf names (None when it names none or cannot be read)."""
    try:
        lines = conf.read_text("utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.strip().partition(" ")
        if key == "PidFile" and value.strip():
            return Path(value.strip())
    return None


def check(runner: Runner, conf: Path) -> list[str]:
    """``opendkim -n -x CONF``: OpenDKIM's own config check; its complaints, or []."""
    done = runner.run(["opendkim", "-n", "-x", str(conf)], timeout=30)
    if done.returncode == 0:
        return []
    return [f"opendkim ({conf.name}): {line}" for line in done.output.splitlines() if line] or [
        f"opendkim ({conf.name}): exit status {done.returncode}"
    ]
