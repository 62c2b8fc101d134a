"""Password hashes in Dovecot's forms: ``{ARGON2ID}``, ``{SHA512-CRYPT}``, ``{BLF-CRYPT}``,
and ``{SHA256.HEX}`` for app passwords.

Hashing goes through libpass (the maintained fork of passlib, import name
``passlib``), imported lazily because it is slow to import and most commands
never hash. Parameters follow ``docs/identity-gate.md`` (verified against
Dovecot 2.3.19 with ``doveadm pw -t``).
"""

from __future__ import annotations

import hashlib
import hmac
from functools import cache
from typing import Any

from mailprov.errors import InvalidValue, PasswordTooLong

SCHEMES = ("ARGON2ID", "SHA512-CRYPT", "BLF-CRYPT")
DEFAULT_SCHEME = "ARGON2ID"
BCRYPT_MAX_BYTES = 72

# glibc's and Dovecot's own default for SHA512-CRYPT is 5,000 rounds; libpass's
# default is 656,000, which costs 0.33 s per hash in its pure-Python backend.
# 100,000 rounds is a middle ground (about 0.05 s); sites may raise it.
SHA512_ROUNDS = 100_000


def check_scheme(scheme: str) -> str:
    """Return the canonical scheme name, or raise InvalidValue naming the known ones."""
    name = scheme.upper().strip("{}")
    if name not in SCHEMES:
        raise InvalidValue(
            f"unknown password hash scheme '{scheme}'",
            hint="use one of: " + ", ".join(SCHEMES),
        )
    return name


@cache
def _hasher(scheme: str) -> Any:
    from passlib import hash as ph  # noqa: PLC0415  (lazy: slow import, rarely needed)

    if scheme == "ARGON2ID":
        return ph.argon2.using(type="ID", memory_cost=65536, time_cost=3, parallelism=1)
    if scheme == "SHA512-CRYPT":
        return ph.sha512_crypt.using(rounds=SHA512_ROUNDS)
    return ph.bcrypt.using(ident="2y", rounds=12, truncate_error=True)


def check_length(password: str, scheme: str) -> None:
    """Refuse a password the scheme would truncate (bcrypt's 72-byte cap)."""
    if check_scheme(scheme) == "BLF-CRYPT" and len(password.encode("utf-8")) > BCRYPT_MAX_BYTES:
        raise PasswordTooLong(
            f"the password is longer than {BCRYPT_MAX_BYTES} bytes, which BLF-CRYPT "
            "would silently truncate",
            hint="choose a shorter password, or set passwords.scheme to ARGON2ID",
        )


def hash_password(password: str, scheme: str = DEFAULT_SCHEME) -> str:
    """Hash ``password`` into Dovecot's ``{SCHEME}hash`` form."""
    name = check_scheme(scheme)
    check_length(password, name)
    return "{" + name + "}" + str(_hasher(name).hash(password))


def split_hash(stored: str) -> tuple[str, str]:
    """Split ``{SCHEME}hash`` into scheme and hash; raise InvalidValue if it is not one."""
    if not stored.startswith("{") or "}" not in stored:
        raise InvalidValue(
            "a password hash must look like {SCHEME}hash, e.g. {ARGON2ID}$argon2id$..."
        )
    scheme, _, digest = stored[1:].partition("}")
    name = check_scheme(scheme)
    if not _hasher(name).identify(digest):
        raise InvalidValue(f"the value is not a valid {name} hash")
    return name, digest


def verify_password(password: str, stored: str) -> bool:
    """True if ``password`` matches the ``{SCHEME}hash`` string (constant time in the hash)."""
    try:
        scheme, digest = split_hash(stored)
    except InvalidValue:
        return False
    if scheme == "BLF-CRYPT" and len(password.encode("utf-8")) > BCRYPT_MAX_BYTES:
        return False
    try:
        return bool(_hasher(scheme).verify(password, digest))
    except ValueError:  # e.g. a NUL byte, which crypt(3) schemes refuse: it matches nothing
        return False


#: App passwords are 120 random bits, so a slow, salted hash buys nothing: an
#: offline search of 2**120 candidates is out of reach at any hash speed, and no
#: table can be precomputed for them. An unsalted SHA-256 is what lets Dovecot
#: *find* the one matching row of several (``%{sha256:password}`` in the passdb
#: query; an SQL passdb that returns several rows fails), and it costs microseconds
#: per login instead of Argon2's 64 MiB and tens of milliseconds.
APP_PASSWORD_SCHEME = "SHA256.HEX"  # noqa: S105  (a scheme name, not a password)


def app_password_hash(secret: str) -> str:
    """The stored form of an app password: ``{SHA256.HEX}`` + hex SHA-256 of it."""
    digest = hashlib.sha256(secret.encode("utf-8")).hexdigest()
    return "{" + APP_PASSWORD_SCHEME + "}" + digest


def same_secret(a: str, b: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
