"""One-time confirmation codes: generation, peppered MACs, locks.

Only ``HMAC-SHA256(pepper, "cid|account|purpose|code")`` is ever stored; the
pepper lives in a file outside the store (at least 32 random bytes, read by
:func:`mailprov.system.secrets.load_pepper`), so a
copy of the database alone cannot be used to test codes offline. Comparison is
constant-time, and a MAC is computed even when the challenge is unknown.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from mailprov.model import Secret

CODE_DIGITS = 6
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
