"""The rspamd process: its own config check, and asking a running rspamd to reload."""

from __future__ import annotations

import contextlib
import os
import re
import signal
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
