"""A secret file that appears under its name only complete, and what a killed writer leaves.

The writer (:func:`stage_secret`) creates the hidden partial copy ``.NAME.partial``
next to the target with :func:`~mailprov.system.files.create_secret_file` (0600,
``O_EXCL``), holds an exclusive ``flock`` on it for its whole life, writes and
fsyncs it; :meth:`StagedFile.publish` then hard-links it to ``NAME`` (``link``
never replaces an existing file) and fsyncs the folder; :meth:`StagedFile.finish`
removes the partial name. So a writer killed at any point leaves one of:

- nothing;
- only ``.NAME.partial`` (empty, half or fully written): never published;
- ``NAME`` and ``.NAME.partial`` as one file (same inode): complete, published,
  not finished;
- only ``NAME``: complete and finished.

:func:`inspect` says which, and whether a live process still holds the lock
(the kernel drops ``flock`` locks when a process dies, even by SIGKILL).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from mailprov.errors import FileExists
from mailprov.system.files import create_secret_file, fsync_dir

#: Larger files are not read back by :func:`inspect` (ours are a few KiB per 100 rows).
MAX_READ = 16 * 1024 * 1024


def partial_path(path: Path) -> Path:
    """The hidden name a staged file is written under before it is published."""
    return path.with_name(f".{path.name}.partial")


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class StagedFile:
    """A secret file written in full under its hidden name; see the module docstring."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.partial = partial_path(path)
        self.published = False
        self._fd: int | None = fd

    def publish(self) -> None:
        """Give the complete file its name (never replacing a file) and make that durable.

        Raises:
            FileExists: ``path`` appeared since the file was staged.
            OSError: the folder cannot be written.
        """
        try:
            os.link(self.partial, self.path)
        except FileExistsError:
            raise FileExists(
                f"{self.path} appeared while the import ran; secrets are only written to a new file"
            ) from None
        self.published = True
        fsync_dir(self.path.parent, strict=True)

    def finish(self) -> None:
        """Drop the hidden name and the lock; the file stays under its name."""
        with contextlib.suppress(OSError):
            _unlink(self.partial)
            fsync_dir(self.path.parent, strict=True)
        self._close()

    def abandon(self) -> None:
        """Remove the file under both names (use only when its contents were never used)."""
        with contextlib.suppress(OSError):
            if self.published:
                _unlink(self.path)
            _unlink(self.partial)
            fsync_dir(self.path.parent, strict=True)
        self._close()

    def release(self) -> None:
        """Drop the lock and leave both names as they are (for :func:`inspect` to judge later)."""
        self._close()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def stage_secret(path: Path, text: str) -> StagedFile:
    """Write ``text`` to ``path``'s hidden partial copy (0600, new), fsynced, and lock it.

    Raises:
        FileExists: the partial copy exists, or another process holds its lock.
        InvalidValue: the partial copy cannot be created.
        OSError: writing failed (ENOSPC, EIO, ...); the partial copy is removed.
    """
    partial = partial_path(path)
    fd = create_secret_file(partial)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FileExists(f"{path} is being looked at by another mailprov process") from None
        view = memoryview(text.encode("utf-8"))
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        fsync_dir(path.parent, strict=True)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            _unlink(partial)
        raise
    return StagedFile(path, fd)


@dataclass(frozen=True)
class Leftover:
    """What is at a staged file's path before a new writer starts.

    ``text`` is the file's contents (``path`` if it exists, else the partial copy),
    or None when it is not a regular UTF-8 file of at most :data:`MAX_READ` bytes.
    """

    path: Path
    final: bool
    partial: bool
    linked: bool
    busy: bool
    text: str | None


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None


def _read_unlocked(path: Path) -> tuple[bool, str | None]:
    """(busy, text) of ``path``: busy when a live process holds its lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return False, None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True, None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_READ:
            return False, None
        with os.fdopen(os.dup(fd), "rb") as handle:
            raw = handle.read(MAX_READ + 1)
        try:
            return False, raw.decode("utf-8")
        except UnicodeDecodeError:
            return False, None
    finally:
        os.close(fd)


def inspect(path: Path) -> Leftover | None:
    """What an earlier writer left at ``path`` (None: nothing, the path is free)."""
    final = _stat(path)
    partial = _stat(partial_path(path))
    if final is None and partial is None:
        return None
    linked = (
        final is not None
        and partial is not None
        and (final.st_dev, final.st_ino) == (partial.st_dev, partial.st_ino)
    )
    busy, text = _read_unlocked(path if final is not None else partial_path(path))
    if not busy and partial is not None and not linked:
        busy = _read_unlocked(partial_path(path))[0]
    return Leftover(path, final is not None, partial is not None, linked, busy, text)


def remove_partial(path: Path) -> None:
    """Remove ``path``'s hidden partial copy left by a dead writer (``path`` stays)."""
    _unlink(partial_path(path))
    fsync_dir(path.parent, strict=True)


def remove_leftover(path: Path) -> None:
    """Remove ``path`` and its partial copy: a dead writer's file whose contents were never used."""
    _unlink(path)
    _unlink(partial_path(path))
    fsync_dir(path.parent, strict=True)
