"""Postfix's own checks and reload, run against a config folder (``-c DIR``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailprov.system.run import Runner

MAP_PARAMETERS = (
    "virtual_mailbox_domains",
    "virtual_mailbox_maps",
    "virtual_alias_maps",
    "smtpd_sender_login_maps",
)
SQL_MAP = re.compile(r"^(sqlite|pgsql):(/\S+)$")
PROBE = "probe@invalid.invalid"


def check(runner: Runner, config_dir: Path, *, full: bool) -> list[str]:
    """Problems Postfix itself finds in ``config_dir`` (empty when it is clean).

    Runs ``postconf -n`` (unknown parameters count as errors), ``postconf -M``,
    a ``postmap`` probe that parses every typed parameter, a lookup in every SQL
    map (so each query runs against the real store), and with ``full`` the
    ``postfix check`` that also creates missing queue folders. ``postfix`` only
    reports on a terminal, so it runs under a pty and any output is a problem.
    """
    d = str(config_dir)
    problems: list[str] = []
    res = runner.run(["postconf", "-c", d, "-n"])
    if res.returncode != 0:
        return [res.stderr.strip() or "postconf -n failed"]
    problems += [line for line in res.stderr.splitlines() if line.strip()]
    res = runner.run(["postconf", "-c", d, "-M"])
    if res.returncode != 0:
        return [*problems, res.stderr.strip() or "postconf -M failed"]
    res = runner.run(["postmap", "-c", d, "-q", "probe", "inline:{probe=ok}"])
    if res.returncode != 0:
        return [*problems, res.stderr.strip() or "postmap could not read main.cf"]
    problems += _check_maps(runner, d)
    if full and not problems:
        res = runner.run(["postfix", "-c", d, "check"], tty=True)
        out = sorted({line.strip() for line in res.stdout.splitlines() if line.strip()})
        if res.returncode != 0 or out:
            problems += out or [f"postfix check failed (status {res.returncode})"]
    return problems


def _check_maps(runner: Runner, d: str) -> list[str]:
    res = runner.run(["postconf", "-c", d, "-xh", *MAP_PARAMETERS])
    problems: list[str] = []
    for token in res.stdout.replace(",", " ").split():
        match = SQL_MAP.match(token)
        if not match:
            continue
        if match.group(1) == "sqlite":
            # A sqlite map whose dbpath is missing CREATES an empty database: check first.
            dbpath = _setting(Path(match.group(2)), "dbpath")
            if dbpath is None or not Path(dbpath).is_file():
                problems.append(f"{match.group(2)}: the database {dbpath} does not exist")
                continue
        res = runner.run(["postmap", "-c", d, "-q", PROBE, token])
        if res.stderr.strip():
            problems.append(res.stderr.strip())
    return problems


def _setting(path: Path, key: str) -> str | None:
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        name, sep, value = line.partition("=")
        if sep and name.strip() == key:
            return value.strip()
    return None


def reload(runner: Runner, config_dir: Path) -> str | None:
    """Reload a running Postfix; None on success, else its message."""
    res = runner.run(["postfix", "-c", str(config_dir), "reload"], tty=True)
    return (
        None if res.returncode == 0 else (res.output or f"postfix reload failed ({res.returncode})")
    )


def queue_size(runner: Runner, config_dir: Path) -> int | None:
    """Messages in the Postfix queue (``postqueue -c DIR -j``); None when it cannot be read."""
    res = runner.run(["postqueue", "-c", str(config_dir), "-j"], timeout=30)
    if res.returncode != 0:
        return None
    return sum(1 for line in res.stdout.splitlines() if line.strip().startswith("{"))
