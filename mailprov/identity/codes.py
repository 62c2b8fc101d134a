"""One-time confirmation codes (IDENTITY.md §5): generation, peppered MACs, the pepper, locks.

Only ``HMAC-SHA256(pepper, "cid|account|purpose|code")`` is ever stored; the
pepper lives in a file outside the store (at least 32 random bytes), so a
copy of the database alone cannot be used to test codes offline. Comparison is
constant-time, and a MAC is computed even when the challenge is unknown.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from mailprov.errors import ConfigInvalid
from mailprov.model import Secret

CODE_DIGITS = 6
PEPPER_MIN = 32
_CODE_RE = re.compile(r"[0-9]{6}")

#: Account lock (§5.4): 10 consecutive failures lock for 15 minutes, doubling up to 24 hours;
#: 100 consecutive failures need an administrator.
LOCK_AFTER = 10
LOCK_BASE_SECONDS = 15 * 60
LOCK_MAX_SECONDS = 24 * 3600
ADMIN_RESET_AFTER = 100
LOCKED_FOR_ADMIN = -1


def generate_code() -> Secret:
    """A uniformly random 6-digit code."""
    return Secret(f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}")


def new_challenge_id() -> str:
    """A challenge id: 128 random bits."""
    return secrets.token_urlsafe(16)


def is_well_formed(code: str) -> bool:
    """Exactly six ASCII digits (check IDG-K01)."""
    return bool(_CODE_RE.fullmatch(code))


def code_mac(pepper: bytes, cid: str, account: str, purpose: str, code: str) -> str:
    """The stored form of a code: hex HMAC-SHA256 over ``cid|account|purpose|code``."""
    message = f"{cid}|{account}|{purpose}|{code}".encode()
    return hmac.new(pepper, message, hashlib.sha256).hexdigest()


def macs_equal(a: str, b: str) -> bool:
    """Constant-time comparison of two hex MACs."""
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))


def lock_seconds(failures: int) -> int | None:
    """How long ``failures`` consecutive failures lock the account (None: not locked).

    Returns:
        None below 10; 15 min at 10, doubling at each further 10, at most 24 h;
        ``LOCKED_FOR_ADMIN`` (-1) from 100 on.
    """
    if failures >= ADMIN_RESET_AFTER:
        return LOCKED_FOR_ADMIN
    if failures < LOCK_AFTER or failures % LOCK_AFTER:
        return None
    return int(min(LOCK_BASE_SECONDS * 2 ** (failures // LOCK_AFTER - 1), LOCK_MAX_SECONDS))


def load_pepper(path: Path, *, create: bool = True) -> bytes:
    """Read the pepper file, creating it (0600, 32 random bytes, hex) on first use.

    Raises:
        ConfigInvalid: the file is unreadable, too short, or readable by others.
    """
    if not path.exists() and create:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        except OSError as exc:
            raise ConfigInvalid(
                f"cannot create the code pepper file {path}: {exc.strerror}",
                hint="set identity.pepper_file to a writable path",
            ) from None
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(PEPPER_MIN) + "\n")
    try:
        mode = path.stat().st_mode
        text = path.read_text("ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigInvalid(
            f"cannot read the code pepper file {path}: {getattr(exc, 'strerror', exc)}",
            hint="set identity.pepper_file, or let mailprov create it",
        ) from None
    if mode & 0o077:
        raise ConfigInvalid(
            f"the code pepper file {path} is readable by others", hint=f"chmod 600 {path}"
        )
    try:
        pepper = bytes.fromhex(text)
    except ValueError:
        pepper = text.encode("ascii")
    if len(pepper) < PEPPER_MIN:
        raise ConfigInvalid(
            f"the code pepper in {path} is shorter than {PEPPER_MIN} bytes",
            hint="write at least 64 hex digits of random data (e.g. 'openssl rand -hex 32')",
        )
    return pepper
