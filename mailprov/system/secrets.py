"""Secret files: created 0600 before a byte is written, read only while they are still private.

The one home for files that hold keys, passwords and peppers: DKIM private keys,
the identity code pepper, the notify and relay smarthost password files, the test
issuer's key, the self-signed TLS key. A reader refuses a file that is not a
regular file (symlinks are not followed) or that group or others may read or
write, naming the file and what to do; a writer creates the file 0600 with
``O_EXCL`` (optionally owned by another user) before the secret goes in, and
removes it again if writing fails, so no partial or readable secret is left.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from mailprov.errors import (
    ConfigInvalid,
    DkimKeyUnsafe,
    DkimKeyUnusable,
    FileExists,
    MailprovError,
)
from mailprov.system.files import create_secret_file, fsync_dir

#: At least this many random bytes in the identity code pepper.
PEPPER_MIN = 32


@dataclass(frozen=True)
class SecretKind:
    """How errors about one kind of secret file name it, and which errors they are."""

    label: str
    unusable: type[MailprovError] = ConfigInvalid
    unsafe: type[MailprovError] = ConfigInvalid
    hint: str | None = None


DKIM_KEY = SecretKind("DKIM key file", DkimKeyUnusable, DkimKeyUnsafe)
PEPPER = SecretKind(
    "code pepper file (identity.pepper_file)",
    hint="set identity.pepper_file, or let mailprov create it",
)


def read_secret(path: Path, kind: SecretKind) -> bytes:
    """A secret file's bytes, after checking that only its owner can read it.

    Raises:
        kind.unusable: missing, not a regular file, or unreadable (naming the file).
        kind.unsafe: group or others may read or write it (naming the file and its mode).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise kind.unusable(
            f"cannot read {kind.label} {path}: {exc.strerror}", hint=kind.hint
        ) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise kind.unusable(f"{kind.label} {path} is not a regular file", hint=kind.hint)
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        os.close(fd)
        raise kind.unsafe(
            f"{kind.label} {path} has mode {mode:04o}: it is readable by others",
            hint=f"run 'chmod 600 {path}' (and check who could have read it)",
        )
    with os.fdopen(fd, "rb") as handle:
        try:
            return handle.read()
        except OSError as exc:
            raise kind.unusable(
                f"cannot read {kind.label} {path}: {exc.strerror}", hint=kind.hint
            ) from None


def read_secret_text(path: Path, kind: SecretKind) -> str:
    """A secret file's first line (a password), checked like :func:`read_secret`."""
    raw = read_secret(path, kind)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise kind.unusable(f"{kind.label} {path} is not UTF-8 text", hint=kind.hint) from None
    return text.strip("\r\n").splitlines()[0] if text.strip("\r\n") else ""


def write_secret(path: Path, data: bytes, *, owner: tuple[int, int] | None = None) -> None:
    """Write a new secret file, mode 0600, owned by ``owner``; never overwrite one.

    Raises:
        FileExists: ``path`` exists (secrets only ever go to a new file).
    """
    fd = create_secret_file(path)
    try:
        with os.fdopen(fd, "wb") as out:
            if owner is not None:
                os.fchown(out.fileno(), *owner)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    fsync_dir(path.parent)


def replace_secret(path: Path, data: bytes) -> None:
    """Replace ``path`` with a new 0600 file holding ``data`` (a temp file renamed over it)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    write_secret(tmp, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def user_ids(user: str, *, setting: str) -> tuple[int, int] | None:
    """(uid, gid) of ``user``; None when no user is named or we are not root (cannot chown).

    Raises:
        ConfigInvalid: running as root and the user does not exist (naming ``setting``).
    """
    if not user or os.geteuid() != 0:
        return None

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfigInvalid(
            f"{setting} '{user}' does not exist on this host",
            hint=f"create the user, or set {setting} to one that exists",
        ) from None
    return entry.pw_uid, entry.pw_gid


def load_pepper(path: Path, *, create: bool = True) -> bytes:
    """The identity code pepper: created (0600, 32 random bytes as hex) on first use, then read.

    Raises:
        ConfigInvalid: the file is unreadable, too short, or readable by others.
    """
    if create and not path.exists():
        try:
            write_secret(path, (secrets.token_hex(PEPPER_MIN) + "\n").encode("ascii"))
        except FileExists:
            pass  # another process made it first: read theirs
        except MailprovError as exc:
            raise ConfigInvalid(
                f"cannot create the code pepper file {path}: {exc.message}",
                hint="set identity.pepper_file to a writable path",
            ) from None
    text = read_secret(path, PEPPER).decode("ascii", "replace").strip()
    try:
        pepper = bytes.fromhex(text)
    except ValueError:
        pepper = text.encode("ascii", "replace")
    if len(pepper) < PEPPER_MIN:
        raise ConfigInvalid(
            f"the code pepper in {path} is shorter than {PEPPER_MIN} bytes",
            hint="write at least 64 hex digits of random data (e.g. 'openssl rand -hex 32')",
        )
    return pepper
