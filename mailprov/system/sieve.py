"""Sieve scripts on this host: Pigeonhole's own compiler checks them, and they are written
into the owner's script storage, the one the rendered Dovecot and ManageSieve use.

The rendered Dovecot keeps each mailbox's scripts in its mail home
(``sieve = file:~/sieve;active=~/.dovecot.sieve``, home = ``MAIL_ROOT/DOMAIN/LOCAL``):
script NAME is the file ``~/sieve/NAME.sieve``, and the active one is named by the
symlink ``~/.dovecot.sieve`` (Pigeonhole's "file" storage, doc/locations/file.txt).
:func:`install` writes exactly that, owned by the vmail user, so ManageSieve lists the
script and delivery runs it; no running Dovecot is needed.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailprov.system.files import atomic_write

if TYPE_CHECKING:
    from mailprov.system.run import Runner

#: The storage's folder and active-script link in the mail home (see the template).
SCRIPT_DIR = "sieve"
ACTIVE_LINK = ".dovecot.sieve"


@dataclass(frozen=True)
class MailHome:
    """One mailbox's mail home and the user that owns it."""

    path: Path
    uid: int
    gid: int

    @property
    def scripts(self) -> Path:
        """The script storage folder."""
        return self.path / SCRIPT_DIR


class StorageRefused(Exception):
    """The mail home cannot take the script (the message says why)."""


def check(runner: Runner, script: str, conf: Path | None) -> list[str]:
    """Pigeonhole's complaints about ``script`` (``sievec``); an empty list when it compiles.

    ``conf`` is the rendered dovecot.conf, whose sieve settings (size limit, extensions)
    then apply; without it sievec reads the system's. Each complaint names the line,
    as ``line 3: error: ...``.
    """
    with tempfile.TemporaryDirectory(prefix="mailprov-sieve-") as tmp:
        source, binary = Path(tmp) / "script.sieve", Path(tmp) / "script.svbin"
        source.write_text(script, encoding="utf-8", newline="")
        argv = ["sievec", *(["-c", str(conf)] if conf else []), str(source), str(binary)]
        res = runner.run(argv, timeout=30)
    if res.returncode == 0:
        return []
    complaints = []
    for line in res.output.splitlines():
        text = line.strip().removeprefix("script: ")
        if not text or text.startswith("sievec: Fatal: failed to compile"):
            continue
        complaints.append(text.replace(str(source), "script"))
    return complaints or [f"sievec refused the script (status {res.returncode})"]


def _own_dir(parent_fd: int, name: str, home: MailHome, *, create: bool) -> int:
    """Open folder ``name`` under ``parent_fd`` without following a symlink (making it
    0700 for the vmail user when ``create``); returns its descriptor."""
    if create:
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            pass
        else:
            if os.geteuid() == 0:
                os.chown(name, home.uid, home.gid, dir_fd=parent_fd, follow_symlinks=False)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
    except FileNotFoundError:
        raise StorageRefused(f"{name}: no such folder") from None
    except OSError:
        raise StorageRefused(f"{name} is not a folder (a symlink or a file)") from None
    return fd


def install(home: MailHome, mail_root: Path, name: str, script: str) -> None:
    """Write script ``name`` into ``home``'s storage and make it the active one.

    Each folder from ``mail_root`` down is opened without following symlinks (the vmail
    user owns them; root must not be led elsewhere). The script is written atomically,
    its stale compiled binary removed (Pigeonhole recompiles), and the active link
    replaced in one rename. Readers see the old script or the new one, never a mix.

    Raises:
        StorageRefused: ``mail_root`` is missing, or a folder on the way is not one.
    """
    relative = home.path.relative_to(mail_root)
    try:
        fd = os.open(mail_root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise StorageRefused(f"{mail_root}: {exc.strerror}") from None
    try:
        for part in [*relative.parts, SCRIPT_DIR]:
            child = _own_dir(fd, part, home, create=True)
            os.close(fd)
            fd = child
        # The folder is now pinned by fd: write through /proc's view of it.
        scripts = Path(f"/proc/self/fd/{fd}")
        atomic_write(scripts / f"{name}.sieve", script, mode=0o600, owner=home.uid, group=home.gid)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{name}.svbin", dir_fd=fd)
    finally:
        os.close(fd)
    _activate(home, name)


def _activate(home: MailHome, name: str) -> None:
    fd = os.open(home.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        tmp = f".{ACTIVE_LINK}.mailprov-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=fd)
        os.symlink(f"{SCRIPT_DIR}/{name}.sieve", tmp, dir_fd=fd)
        if os.geteuid() == 0:
            os.chown(tmp, home.uid, home.gid, dir_fd=fd, follow_symlinks=False)
        os.rename(tmp, ACTIVE_LINK, src_dir_fd=fd, dst_dir_fd=fd)
        # Pigeonhole keeps the active script's binary beside the link; one compiled in
        # the same second as the new script could pass for current.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(ACTIVE_LINK.removesuffix(".sieve") + ".svbin", dir_fd=fd)
        os.fsync(fd)
    finally:
        os.close(fd)


def active_script(home: MailHome) -> str | None:
    """The name of the active script in ``home``'s storage, or None."""
    link = home.path / ACTIVE_LINK
    try:
        if not stat.S_ISLNK(link.lstat().st_mode):
            return None
        target = os.readlink(link)
    except OSError:
        return None
    folder, _, file = target.rpartition("/")
    if folder != SCRIPT_DIR or not file.endswith(".sieve"):
        return None
    return file.removesuffix(".sieve")
