"""Password policies and the password generator.

Two named policies (``docs/identity-gate.md``, "Decisions"):

``source`` (default)
    8-128 characters with a digit, an upper-case and a lower-case letter and a
    special character; not a common password; stale after 90 days (reported,
    and refused at login only when enforcement is configured).
``nist``
    NIST SP 800-63B rev. 4 for a single-factor password: at least 15
    characters, up to 128, no composition rules, no periodic expiry, not a
    common password.

Passwords are never truncated silently: a password over the maximum is refused.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources

from mailprov.errors import InvalidValue, PasswordPolicy

#: Characters a person could misread or that break naive shell/config quoting.
AMBIGUOUS = frozenset("0O1lI|`'\"\\ ")
SPECIALS = "!#$%&*+-=?@^_~.,:;/()[]{}<>"

UPPER = "".join(c for c in string.ascii_uppercase if c not in AMBIGUOUS)
LOWER = "".join(c for c in string.ascii_lowercase if c not in AMBIGUOUS)
DIGITS = "".join(c for c in string.digits if c not in AMBIGUOUS)
GEN_SPECIALS = "!#%+-=?@^_~"  # safe to paste anywhere: no quotes, backslash or '$'


@dataclass(frozen=True)
class PasswordPolicyRules:
    """A password policy: what a password must have, and when it becomes stale."""

    name: str
    min_length: int
    max_length: int
    require_digit: bool
    require_upper: bool
    require_lower: bool
    require_special: bool
    max_age_days: int | None

    @property
    def required_classes(self) -> list[str]:
        """Character sets the generator must draw at least one character from."""
        classes = []
        if self.require_upper:
            classes.append(UPPER)
        if self.require_lower:
            classes.append(LOWER)
        if self.require_digit:
            classes.append(DIGITS)
        if self.require_special:
            classes.append(GEN_SPECIALS)
        return classes


POLICIES: dict[str, PasswordPolicyRules] = {
    "source": PasswordPolicyRules(
        name="source",
        min_length=8,
        max_length=128,
        require_digit=True,
        require_upper=True,
        require_lower=True,
        require_special=True,
        max_age_days=90,
    ),
    "nist": PasswordPolicyRules(
        name="nist",
        min_length=15,
        max_length=128,
        require_digit=False,
        require_upper=False,
        require_lower=False,
        require_special=False,
        max_age_days=None,
    ),
}


def get_policy(
    name: str, *, min_length: int | None = None, max_age_days: int | None = None
) -> PasswordPolicyRules:
    """The named policy, with the site's overrides applied."""
    try:
        policy = POLICIES[name]
    except KeyError:
        known = ", ".join(sorted(POLICIES))
        raise InvalidValue(
            f"unknown password policy '{name}'", hint=f"use one of: {known}"
        ) from None
    if min_length is not None:
        if not 8 <= min_length <= policy.max_length:
            raise InvalidValue(
                f"passwords.min_length must be between 8 and {policy.max_length}, not {min_length}"
            )
        policy = replace(policy, min_length=min_length)
    if max_age_days is not None:
        policy = replace(policy, max_age_days=max_age_days or None)
    return policy


@cache
def _blocklist() -> frozenset[str]:
    text = resources.files("mailprov").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


#: A name at least this long must not appear anywhere in the password (see violations).
MIN_NAME_IN_PASSWORD = 3


def _base_word(password: str) -> str:
    """The password without leading/trailing digits and symbols: 'Password1!' -> 'password'."""
    return password.lower().strip(string.digits + string.punctuation + " ")


def violations(
    password: str, policy: PasswordPolicyRules, *, context: tuple[str, ...] = ()
) -> list[str]:
    """Every rule of ``policy`` that ``password`` breaks, as short phrases (empty = ok).

    Args:
        password: the candidate password.
        policy: the rules to apply.
        context: words the password must not contain (e.g. the mailbox's local part).
    """
    broken: list[str] = []
    length = len(password)
    if length < policy.min_length:
        broken.append(f"at least {policy.min_length} characters (it has {length})")
    if length > policy.max_length:
        broken.append(f"at most {policy.max_length} characters (it has {length})")
    if policy.require_digit and not any(c.isdigit() for c in password):
        broken.append("a digit")
    if policy.require_upper and not any(c.isupper() for c in password):
        broken.append("an upper-case letter")
    if policy.require_lower and not any(c.islower() for c in password):
        broken.append("a lower-case letter")
    if policy.require_special and all(c.isalnum() or c.isspace() for c in password):
        broken.append("a special character such as ! # % + - = ? @")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        broken.append("no control characters")
    lowered = password.lower()
    if lowered in _blocklist() or _base_word(password) in _blocklist():
        broken.append("not a commonly used password")
    # A name of three or more letters must not appear anywhere in the password. A
    # shorter one ("al", "jo") turns up by chance in strong passwords, so it is refused
    # only as the password's whole word ("Jo2024!!").
    words = {w for c in context for w in (c.lower(), *re.split(r"[^a-z]+", c.lower())) if w}
    base = _base_word(password)
    for word in sorted(words):
        if base == word or (len(word) >= MIN_NAME_IN_PASSWORD and word in lowered):
            broken.append("not contain the mailbox name")
            break
    return broken


def check_password(
    password: str, policy: PasswordPolicyRules, *, context: tuple[str, ...] = ()
) -> None:
    """Raise PasswordPolicy naming every rule broken (never echoing the password)."""
    broken = violations(password, policy, context=context)
    if broken:
        raise PasswordPolicy(
            f"the password does not meet the '{policy.name}' policy: it needs " + "; ".join(broken),
            rules=broken,
        )


def _shuffle(chars: list[str]) -> None:
    """Fisher-Yates shuffle driven by ``secrets``: every order equally likely."""
    for i in range(len(chars) - 1, 0, -1):
        j = secrets.randbelow(i + 1)
        chars[i], chars[j] = chars[j], chars[i]


def generate_password(policy: PasswordPolicyRules, length: int = 16) -> str:
    """A random password that passes ``policy``, with no ambiguous characters.

    One character of each required class is placed first, the rest is drawn from
    all classes, then the whole is shuffled uniformly.
    """
    length = max(length, policy.min_length)
    classes = policy.required_classes or [UPPER, LOWER, DIGITS, GEN_SPECIALS]
    alphabet = "".join(dict.fromkeys("".join(classes)))
    while True:
        chars = [secrets.choice(cls) for cls in classes]
        chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
        _shuffle(chars)
        password = "".join(chars)
        if not violations(password, policy):
            return password
