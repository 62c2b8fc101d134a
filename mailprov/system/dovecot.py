"""Dovecot's own config check and reload."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailprov.system.run import Runner


def check(runner: Runner, conf: Path) -> list[str]:
    """Problems ``doveconf -n -x`` finds (``-x`` also opens the ``<file`` values: the TLS files).

    doveconf prints its header to stdout even when it fails: judge by status and stderr.
    """
    res = runner.run(["doveconf", "-c", str(conf), "-n", "-x"])
    if res.returncode != 0:
        return [res.stderr.strip() or f"doveconf failed (status {res.returncode})"]
    return [line for line in res.stderr.splitlines() if line.strip()]


def reload(runner: Runner, conf: Path) -> str | None:
    """Reload a running Dovecot; None on success, else its message."""
    res = runner.run(["doveadm", "-c", str(conf), "reload"])
    return (
        None if res.returncode == 0 else (res.output or f"doveadm reload failed ({res.returncode})")
    )
