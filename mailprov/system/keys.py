"""Private key files on disk: written 0600 for their user, read only when still private."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from mailprov.errors import ConfigInvalid, DkimKeyUnsafe, DkimKeyUnusable
from mailprov.system.files import create_secret_file


def signer_ids(user: str) -> tuple[int, int] | None:
    """(uid, gid) of ``user``; None when no user is named or we are not root (cannot chown).

    Raises:
        ConfigInvalid: running as root and the user does not exist.
    """
    if not user or os.geteuid() != 0:
        return None
    import pwd  # noqa: PLC0415

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfigInvalid(
            f"dkim.signer_user '{user}' does not exist on this host",
            hint="install the signer (apt install opendkim) or set [dkim] signer_user",
        ) from None
    return entry.pw_uid, entry.pw_gid


def write_private_key(path: Path, pem: bytes, *, owner: tuple[int, int] | None) -> None:
    """Write a new private key file, mode 0600, owned by ``owner``; never overwrite one.

    The file is created 0600 before any byte is written, and removed again if
    writing fails, so no partial or world-readable key is left behind.
    """
    fd = create_secret_file(path)
    try:
        with os.fdopen(fd, "wb") as out:
            if owner is not None:
                os.fchown(out.fileno(), *owner)
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


def read_private_key(path: Path) -> bytes:
    """A private key file's bytes, after checking that only its owner can read it.

    Raises:
        DkimKeyUnusable: missing, not a regular file, or unreadable (naming the file).
        DkimKeyUnsafe: group or others may read or write it (naming the file and its mode).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise DkimKeyUnusable(f"cannot read DKIM key file {path}: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise DkimKeyUnusable(f"DKIM key file {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        os.close(fd)
        raise DkimKeyUnsafe(f"DKIM key file {path} has mode {mode:04o}: other users may read it")
    with os.fdopen(fd, "rb") as handle:
        try:
            return handle.read()
        except OSError as exc:
            raise DkimKeyUnusable(f"cannot read DKIM key file {path}: {exc.strerror}") from None
