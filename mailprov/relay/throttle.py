"""A brake on AUTH guessing: failures counted per client IP and per user, delay, lockout.

Without it a client could try 150 passwords in 23 s (50 on one connection) and
be let in at once with the right one. Now each failure is answered after a delay
that doubles with the client's recent failures (``BASE_DELAY_S`` up to
``MAX_DELAY_S``); ``max_failures`` failures of one IP or one user within
``lockout_s`` lock that IP or user out for ``lockout_s`` (``454 4.7.0``, even
with the right password); the connection itself is closed after
``[relay] auth_failures_per_connection`` failures (smtp.py).

The state is in memory, per process: with ``workers = N`` each worker counts on
its own, so a client spread over N workers gets up to N times the limits.
Times come from ``clock`` (monotonic), which tests may replace.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

BASE_DELAY_S = 0.1
MAX_DELAY_S = 2.0
#: Beyond this many tracked keys, expired ones are swept (bounds the memory a flood can take).
SWEEP_AT = 10_000


@dataclass
class AuthThrottle:
    """Failure accounting for one relay process."""

    max_failures: int
    lockout_s: float
    clock: Callable[[], float] = time.monotonic
    base_delay_s: float = BASE_DELAY_S
    max_delay_s: float = MAX_DELAY_S
    _failures: dict[str, deque[float]] = field(default_factory=dict, repr=False)
    _locked_until: dict[str, float] = field(default_factory=dict, repr=False)

    @staticmethod
    def _keys(ip: str, user: str) -> tuple[str, str]:
        return f"ip:{ip}", f"user:{user.strip().lower()}"

    def locked(self, ip: str, user: str) -> bool:
        """True while this client IP or this user is locked out."""
        now = self.clock()
        return any(self._locked_until.get(key, 0.0) > now for key in self._keys(ip, user))

    def failed(self, ip: str, user: str) -> float:
        """Count a failure; lock out what went over the limit. Returns the delay to apply."""
        now = self.clock()
        if len(self._failures) > SWEEP_AT:
            self._sweep(now)
        counts = []
        for key in self._keys(ip, user):
            recent = self._failures.setdefault(key, deque())
            recent.append(now)
            while recent and recent[0] <= now - self.lockout_s:
                recent.popleft()
            if len(recent) >= self.max_failures:
                self._locked_until[key] = now + self.lockout_s
                recent.clear()
            counts.append(len(recent))
        growth = 2.0 ** max(0, max(counts) - 1)
        return min(self.base_delay_s * growth, self.max_delay_s)

    def succeeded(self, ip: str, user: str) -> None:
        """Forget the user's failures (the IP's stay: it may be guessing other users)."""
        self._failures.pop(self._keys(ip, user)[1], None)

    def _sweep(self, now: float) -> None:
        for key in [k for k, v in self._failures.items() if not v or v[-1] <= now - self.lockout_s]:
            del self._failures[key]
        for key in [k for k, until in self._locked_until.items() if until <= now]:
            del self._locked_until[key]
