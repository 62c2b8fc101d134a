"""Installing rendered files: atomic replacement with owner and mode, and runtime folders."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import tempfile
from pathlib import Path

from mailprov.errors import TargetNotWritable


def _gid(group: str | None) -> int:
    if group is None:
        return 0
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return 0  # the server is not installed here: root-only is the safe fallback


def install_file(path: Path, data: bytes, *, mode: int, group: str | None = None) -> None:
    """Write ``path`` atomically (temp file + fsync + rename), owned root:``group`` when root."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise TargetNotWritable(f"cannot write in {path.parent}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if os.geteuid() == 0:
            os.chown(tmp, 0, _gid(group))
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_file(path: Path) -> None:
    """Remove ``path`` if it exists."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def ensure_dir(path: Path, *, mode: int = 0o755, owner: str | None = None) -> bool:
    """Create a folder (and parents) if missing; True if it was created.

    Raises:
        TargetNotWritable: the folder cannot be created or written.
    """
    created = not path.is_dir()
    try:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
        if created and owner and os.geteuid() == 0:
            entry = pwd.getpwnam(owner)
            os.chown(path, entry.pw_uid, entry.pw_gid)
    except (OSError, KeyError) as exc:
        raise TargetNotWritable(f"cannot create {path}: {getattr(exc, 'strerror', exc)}") from None
    if not os.access(path, os.W_OK):
        raise TargetNotWritable(f"{path} is not writable")
    return created


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (renames) to disk."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
