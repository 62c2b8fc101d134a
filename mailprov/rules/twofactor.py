"""Two-factor rules without I/O: TOTP codes (RFC 6238), recovery codes, app passwords.

TOTP uses ``pyotp`` with the parameters every authenticator app shows by default:
SHA-1, 6 digits, 30-second steps, a 160-bit secret (RFC 4226 section 4). A code is
accepted for the current step and one step either side (clock drift); a code of an
older step (up to five minutes back) is reported as *expired* rather than *wrong*,
so a person with a slow phone clock learns what to fix. Whether a step was already
used is the caller's business (``owner_totp.last_step``).

The secret is kept sealed in the store (AES-GCM under a key derived from the site
pepper, the address as associated data), so a copy of the database alone yields
no authenticator secrets.

Recovery codes and app passwords are random strings over a 32-letter alphabet
without look-alikes (no ``l``/``1``, ``o``/``0``); neither contains a character
that SQL or Dovecot's variable expansion would escape.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

import pyotp

STEP_SECONDS = 30
DIGITS = 6
#: Steps accepted either side of now (RFC 6238 section 5.2 recommends at most one).
WINDOW = 1
#: Older steps still recognised as "expired" (ten steps: five minutes).
EXPIRED_STEPS = 10
SECRET_BYTES = 20

ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
RECOVERY_CODE_LENGTH = 12  # 60 bits
RECOVERY_CODES = 10
APP_PASSWORD_LENGTH = 24  # 120 bits
GROUP = 4

_TOTP_RE = re.compile(r"[0-9]{6}")
_SEAL_INFO = b"mailprov|totp-secret|v1"


class Verdict(StrEnum):
    """What a TOTP code is, given the secret and the time."""

    OK = "ok"
    EXPIRED = "expired"
    WRONG = "wrong"


@dataclass(frozen=True)
class Checked:
    """A verdict and, unless wrong, the time step the code belongs to."""

    verdict: Verdict
    step: int | None = None


def new_secret() -> str:
    """A new TOTP secret: 160 random bits, base32 without padding (32 characters)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii").rstrip("=")


def step_at(now: int) -> int:
    """The TOTP time step of Unix time ``now``."""
    return now // STEP_SECONDS


def code_at(secret: str, step: int) -> str:
    """The code of ``step`` (for tests and the benchmark; the server only compares)."""
    return str(pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).generate_otp(step))


def clean_code(raw: str) -> str:
    """A code as typed, without spaces (apps show ``123 456``)."""
    return "".join(raw.split())


def looks_like_totp(raw: str) -> bool:
    """Exactly six digits once spaces are gone."""
    return bool(_TOTP_RE.fullmatch(clean_code(raw)))


def check_code(secret: str, raw: str, now: int) -> Checked:
    """Which step of ``secret`` the code ``raw`` belongs to, if any (constant-time compares).

    Every candidate step is compared, so the time taken does not say which matched.
    """
    code = clean_code(raw)
    if not _TOTP_RE.fullmatch(code):
        return Checked(Verdict.WRONG)
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = step_at(now)
    found = Checked(Verdict.WRONG)
    for step in range(current - EXPIRED_STEPS, current + WINDOW + 1):
        if not hmac.compare_digest(str(totp.generate_otp(step)).encode(), code.encode()):
            continue
        # A code may repeat: the latest accepted step wins over any expired one.
        if step >= current - WINDOW:
            found = Checked(Verdict.OK, step)
        elif found.verdict is Verdict.WRONG:
            found = Checked(Verdict.EXPIRED, step)
    return found


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app reads (from the QR code)."""
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    return str(totp.provisioning_uri(name=account, issuer_name=issuer))


def qr_svg(uri: str) -> str:
    """The URI as a QR code in SVG (segno; error correction M, 4 px per module)."""
    import segno  # noqa: PLC0415  (lazy: only enrolment draws QR codes)

    out = io.BytesIO()
    segno.make(uri, error="m", micro=False).save(
        out, kind="svg", scale=4, xmldecl=False, svgns=True, nl=False, title="two-factor QR code"
    )
    return out.getvalue().decode("utf-8")


# -- the secret, sealed ----------------------------------------------------------------


def _seal_key(pepper: bytes) -> bytes:
    return hmac.new(pepper, _SEAL_INFO, hashlib.sha256).digest()


def seal_secret(pepper: bytes, address: str, secret: str) -> str:
    """The stored form of a TOTP secret: AES-256-GCM, bound to ``address`` (64 characters)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415  (lazy: heavy)

    raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
    nonce = secrets.token_bytes(12)
    sealed = nonce + AESGCM(_seal_key(pepper)).encrypt(nonce, raw, address.encode())
    return base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("=")


def unseal_secret(pepper: bytes, address: str, stored: str) -> str | None:
    """The secret sealed by :func:`seal_secret`, or None if it does not open (other pepper)."""
    from cryptography.exceptions import InvalidTag  # noqa: PLC0415  (lazy: heavy)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415  (lazy: heavy)

    try:
        sealed = base64.urlsafe_b64decode(stored + "=" * (-len(stored) % 4))
        raw = AESGCM(_seal_key(pepper)).decrypt(sealed[:12], sealed[12:], address.encode())
    except (InvalidTag, ValueError):
        return None
    return base64.b32encode(raw).decode("ascii").rstrip("=")


# -- recovery codes and app passwords --------------------------------------------------


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def _grouped(text: str) -> str:
    return "-".join(text[i : i + GROUP] for i in range(0, len(text), GROUP))


def new_recovery_codes(count: int = RECOVERY_CODES) -> list[str]:
    """``count`` distinct recovery codes, shown as ``abcd-efgh-jkmn``."""
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(_grouped(_random(RECOVERY_CODE_LENGTH)))
    return sorted(codes)


def normal_recovery_code(raw: str) -> str | None:
    """A recovery code as typed, in its one stored form (no dashes or spaces, lower
    case); None if it cannot be one."""
    code = "".join(raw.lower().replace("-", " ").split())
    if len(code) != RECOVERY_CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def new_app_password() -> str:
    """A new app password: 120 random bits, shown as six groups of four (``abcd-...``).

    The dashes are part of it: mail clients send exactly what was pasted.
    """
    return _grouped(_random(APP_PASSWORD_LENGTH))
