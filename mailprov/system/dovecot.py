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


#: dsync's exit status for "changes arrived while syncing: run it again" (doveadm-sync(1)).
DSYNC_RUN_AGAIN = 2


def dsync(
    runner: Runner,
    conf: Path,
    *,
    user: str,
    at: str,
    peer: str,
    two_way: bool,
    timeout: float,
    attempts: int = 3,
) -> str | None:
    """Copy ``user``'s mail from ``peer`` to ``at`` (both HOST:PORT doveadm servers).

    ``doveadm -S AT`` runs the command on ``at``'s doveadm server, which pulls from
    ``peer`` over the doveadm protocol; the password comes from ``conf``
    (``doveadm_password = <FILE``), never argv. One way (``backup -R``): ``at`` becomes
    an exact copy of ``peer``. Two way (``sync -f``): each side gets what the other has;
    a full sync, because both sides may have given the same UID to different messages
    (dsync's quick state check calls such mailboxes equal). None on success, else
    doveadm's message.
    """
    verb = ["sync", "-f"] if two_way else ["backup", "-R"]
    argv = ["doveadm", "-c", str(conf), *verb, "-S", at, "-u", user, f"tcp:{peer}"]
    for attempt in range(1, attempts + 1):
        res = runner.run(argv, timeout=timeout)
        if res.returncode == DSYNC_RUN_AGAIN and attempt < attempts:
            continue
        if res.returncode == 0:
            return None
        return res.output or f"doveadm {verb[0]} failed (status {res.returncode})"
    return None
