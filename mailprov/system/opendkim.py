"""The OpenDKIM process: ask a running signer to re-read its config and tables."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


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
