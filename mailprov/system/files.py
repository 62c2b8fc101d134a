"""Writing files safely: atomic replacement, and secret files created 0600."""

from __future__ import annotations

import contextlib
import grp
import os
import tempfile
from pathlib import Path

from mailprov.errors import FileExists, InvalidValue


def atomic_write(path: Path, data: bytes | str, *, mode: int = 0o644) -> None:
    """Write ``path`` so that readers see either the old file or the whole new one.

    The data goes to a temporary file in the same folder, is flushed to disk, gets
    its mode, and is renamed over the target.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise InvalidValue(
            f"cannot write {path}: {exc.strerror}", hint="check the folder's permissions"
        ) from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def share_with_group(path: Path, group: str) -> bool:
    """Give ``path`` the group ``group`` (its mode decides what the group may do).

    Returns False, changing nothing, when the group does not exist or this user may
    not hand the file to it (neither root nor a member): the file keeps its group.
    """
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        return False
    try:
        os.chown(path, -1, gid)
    except PermissionError:
        return False
    return True


def create_secret_file(path: Path) -> int:
    """Create a new file readable only by its owner (0600) and return its descriptor.

    Refuses to overwrite an existing file, so secrets never land in a file that
    someone else could already have open.
    """
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise FileExists(f"{path} already exists; secrets are only written to a new file") from None
    except OSError as exc:
        raise InvalidValue(f"cannot create {path}: {exc.strerror}") from None
