"""The HTTP API's query parameters, each checked before it reaches storage.

Every refusal is an :class:`~mailprov.errors.InvalidValue` (HTTP 400) that names
the parameter. Numbers must be finite and in range: ``after=99999999999999999999999``
used to overflow SQLite's 64-bit integers (a 500) and ``since=nan`` silently
matched nothing. Text must be encodable as UTF-8 (a lone surrogate from ``%ED%A0%80``
would fail inside SQLite).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

from mailprov.errors import InvalidValue

#: SQLite's INTEGER range: the message sequence numbers live there.
SEQ_MAX = 2**63 - 1
#: 9999-12-31T23:59:59Z: later instants cannot be written in ISO 8601 anyway.
TIME_MAX = 253_402_300_799.0
#: Random seeds are 64-bit, like the ones a config file can hold.
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1


def text(params: Mapping[str, str], name: str) -> str | None:
    """A text parameter, or None when it is absent or empty."""
    value = params.get(name)
    if not value:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue(f"{name} is not valid UTF-8 text") from None
    return value


def whole(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """A whole number in ``low..high`` (``default`` when absent)."""
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise InvalidValue(f"{name} must be a whole number, not {raw!r:.40}") from None
    if not low <= value <= high:
        raise InvalidValue(f"{name} must be {low}-{high}, not {raw!r:.40}")
    return value


def seconds(params: Mapping[str, str], name: str, default: float, high: float) -> float:
    """A finite number of seconds in ``0..high`` (``default`` when absent)."""
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidValue(f"{name} must be a number of seconds, not {raw!r:.40}") from None
    if not (math.isfinite(value) and 0 <= value <= high):
        raise InvalidValue(f"{name} must be 0-{high:g} seconds, not {raw!r:.40}")
    return value


def instant(params: Mapping[str, str], name: str) -> float | None:
    """A point in time: Unix seconds or ISO 8601, finite, from 1970 to 9999; None if absent."""
    raw = params.get(name)
    if not raw:
        return None
    why = f"{name} must be Unix seconds or ISO 8601 (1970-9999), not {raw!r:.40}"
    try:
        value = float(raw)
    except ValueError:
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):
            raise InvalidValue(why) from None
    if not (math.isfinite(value) and 0 <= value <= TIME_MAX):
        raise InvalidValue(why)
    return value
