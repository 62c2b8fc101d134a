"""The owner's spam settings: the junk threshold and "move spam to Junk", without I/O.

Each is kept at three levels: the mailbox, its domain, and the site (``[rspamd]
spam_threshold`` and ``spam_to_junk``). None at a level means "not set here: take
the value one level up", so the site always decides last. :func:`resolve` is the
one place that says so; the SQL the mail server asks at delivery (Dovecot's
``user_query``) prints the same order with ``COALESCE``, and a test holds the two
to the same answers on both store backends.

At delivery, Sieve compares rspamd's score with the threshold. Sieve's numeric
comparator (``i;ascii-numeric``, RFC 4790) knows whole numbers only, and counts a
value that does not start with a digit as infinity, so both sides travel as whole
hundredths (:func:`hundredths`): rspamd writes ``X-Spam-Score-Hundredths`` (the score
as ``X-Spam-Status`` shows it, times 100, negative scores as 0), and a threshold
has at most two decimals and is above 0, so a negative score never reaches it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from mailprov.errors import InvalidValue

#: The header rspamd adds to inbound mail and the Sieve rule reads.
SCORE_HEADER = "X-Spam-Score-Hundredths"
#: The lowest and highest threshold anyone may set (the site's is checked the same way).
MIN_THRESHOLD = 0.01
MAX_THRESHOLD = 1000.0

Level = Literal["mailbox", "domain", "site"]
#: What the CLI, the API and a state file give to clear a level's value ("take the
#: default one level up"); stored as NULL.
DEFAULT: Literal["default"] = "default"
Default = Literal["default"]


@dataclass(frozen=True)
class SpamLevel:
    """The values set at one level (None: not set here)."""

    threshold: float | None = None
    to_junk: bool | None = None


@dataclass(frozen=True)
class SpamSettings:
    """The effective values, and the level each comes from."""

    threshold: float
    to_junk: bool
    threshold_from: Level
    to_junk_from: Level

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "threshold": self.threshold,
            "to_junk": self.to_junk,
            "threshold_from": self.threshold_from,
            "to_junk_from": self.to_junk_from,
        }


def resolve(mailbox: SpamLevel, domain: SpamLevel, site: SpamLevel) -> SpamSettings:
    """The effective settings: the mailbox's value, else the domain's, else the site's."""
    levels: tuple[tuple[Level, SpamLevel], ...] = (
        ("mailbox", mailbox),
        ("domain", domain),
        ("site", site),
    )
    threshold = next((n, v.threshold) for n, v in levels if v.threshold is not None or n == "site")
    to_junk = next((n, v.to_junk) for n, v in levels if v.to_junk is not None or n == "site")
    if threshold[1] is None or to_junk[1] is None:
        msg = "the site level must set both values"
        raise ValueError(msg)
    return SpamSettings(float(threshold[1]), bool(to_junk[1]), threshold[0], to_junk[0])


def check_threshold(value: object, *, below: float | None = None) -> float:
    """A junk threshold: a number above 0 with at most two decimals (and under ``below``,
    the site's reject score, when given).

    Raises:
        InvalidValue: what is wrong with it.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidValue("the spam threshold must be a number", hint="e.g. 6 or 5.5")
    try:
        number = float(value)
    except ValueError:
        raise InvalidValue(
            f"the spam threshold {value!r} is not a number", hint="e.g. 6 or 5.5"
        ) from None
    if not math.isfinite(number) or not MIN_THRESHOLD <= number <= MAX_THRESHOLD:
        raise InvalidValue(
            f"the spam threshold {value} is out of range",
            hint=f"give a score from {MIN_THRESHOLD} to {MAX_THRESHOLD:g}",
        )
    if abs(number * 100 - round(number * 100)) > 1e-6:
        raise InvalidValue(
            f"the spam threshold {value} has more than two decimals",
            hint="round it to hundredths, e.g. 5.25",
        )
    if below is not None and number >= below:
        raise InvalidValue(
            f"the spam threshold {number:g} is not below the reject score {below:g}: "
            "mail scoring that much is refused before delivery, so none would reach Junk",
            hint=f"give a score below {below:g}",
        )
    return round(number, 2)


def hundredths(threshold: float) -> int:
    """The threshold as the whole number of hundredths Sieve compares."""
    return round(threshold * 100)
