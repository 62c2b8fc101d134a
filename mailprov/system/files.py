"""Writing files safely: the one atomic writer, changed-only writes, folders, secret files."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import tempfile
from collections.abc import Mapping
from pathlib import Path

from mailprov.errors import FileExists, InvalidValue, TargetNotWritable


def uid_of(owner: str | int | None) -> int:
    """The uid of ``owner`` (a name or a number); root when None."""
    if owner is None:
        return 0
    return owner if isinstance(owner, int) else pwd.getpwnam(owner).pw_uid


def gid_of(group: str | int | None) -> int:
    """The gid of ``group``; root's group when None or unknown here.

    An unknown group means that server is not installed on this host: root-only is the safe
    fallback for a file that would have been readable by it.
    """
    if group is None:
        return 0
    if isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return 0


def fsync_dir(path: Path, *, strict: bool = False) -> None:
    """Flush a folder's entries (new names, renames) to disk.

    A file system that cannot fsync a folder is tolerated unless ``strict`` (where a
    lost entry would lose data nobody can recreate, e.g. generated passwords).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        if strict:
            raise


def atomic_write(
    path: Path,
    data: bytes | str,
    *,
    mode: int = 0o644,
    owner: str | int | None = None,
    group: str | int | None = None,
) -> None:
    """Write ``path`` so that readers see either the old file or the whole new one.

    The data goes to a temporary file in the same folder, is flushed to disk, gets its mode
    (and, when running as root and either is given, owner ``owner``:``group``, each root by
    default), is renamed over
    the target, and the folder is flushed so the rename survives a power loss. On any
    failure (a signal included) the temporary file is removed and the target is untouched.

    Raises:
        InvalidValue: the folder cannot be written.
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
        if os.geteuid() == 0 and (owner is not None or group is not None):
            os.chown(tmp, uid_of(owner), gid_of(group))
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def read_bytes(path: Path) -> bytes | None:
    """What a reader of ``path`` gets (through symlinks); None when there is nothing."""
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except IsADirectoryError:
        return b"\0(a folder)"


def changed_files(files: Mapping[Path, bytes | str]) -> list[Path]:
    """The paths of ``files`` whose content on disk differs or that are missing (reads only)."""
    out = []
    for path, data in files.items():
        raw = data.encode("utf-8") if isinstance(data, str) else data
        if read_bytes(path) != raw:
            out.append(path)
    return out


def write_changed(
    files: Mapping[Path, bytes | str], *, mode: int = 0o644, dry_run: bool = False
) -> list[Path]:
    """Write (atomically, creating folders) each of ``files`` whose content differs; returns them.

    The render→diff→write step shared by ``deploy render``, ``dkim render/activate`` and
    ``client-config --web-root``. With ``dry_run`` only the diff is computed.

    Raises:
        TargetNotWritable: a folder cannot be created or written.
    """
    changed = changed_files(files)
    if not dry_run:
        for path in changed:
            ensure_dir(path.parent)
            atomic_write(path, files[path], mode=mode)
    return changed


def remove_file(path: Path) -> bool:
    """Remove ``path`` (a file or a symlink) if it exists; True if it did."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


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
