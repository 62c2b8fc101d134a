"""Fault rules: the relay refuses, delays or drops on purpose, so rigs can test failure paths.

A rule is ``STAGE:PATTERN=ACTION`` followed by options::

    rcpt:bounce-*@example.test=550 5.1.1 no such user
    data:*=451 4.3.0 try later@p=0.1
    mail:*@slow.test=delay@delay=2.5
    rcpt:*@flaky.test=drop@times=1
    data:*=554 5.7.1 rejected for alice@user=alice@example.test

``STAGE`` is the SMTP command the rule acts on: ``ehlo`` (HELO/EHLO; PATTERN is
the client's name), ``auth`` (the user name), ``mail`` (the sender), ``rcpt``
(the recipient) or ``data`` (matches if any recipient matches). PATTERN is a
shell-style glob, compared without case. ACTION is a reply (``CODE TEXT``,
CODE 400-599), ``drop`` (the connection is cut without a reply) or ``delay``
(wait, then carry on normally). Options: ``@p=P`` fire with probability P
(drawn from a generator seeded by ``relay.fault_seed``, so a run repeats),
``@delay=S`` wait S seconds before acting, ``@times=N`` fire at most N times,
``@user=GLOB`` only for that AUTH user, ``@from=GLOB`` only for that sender.

With several worker processes, each keeps its own random generator and
``times`` counter; use one worker when a test needs an exact sequence.
"""

from __future__ import annotations

import fnmatch
import random
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from mailprov.errors import FaultRuleInvalid

STAGES = ("ehlo", "auth", "mail", "rcpt", "data")
_OPTION = re.compile(r"@(p|delay|times|user|from)=")
_REPLY = re.compile(r"^([45]\d\d)(?:\s+(.*))?$", re.DOTALL)


@dataclass(frozen=True)
class FaultRule:
    """One parsed rule (``spec`` is the text it came from)."""

    spec: str
    stage: str
    pattern: str
    action: str  # "reply", "drop" or "delay"
    code: int = 0
    text: str = ""
    probability: float = 1.0
    delay: float = 0.0
    times: int | None = None
    user: str | None = None
    sender: str | None = None

    @property
    def reply(self) -> str:
        """The SMTP reply line this rule sends (for ``reply`` rules)."""
        return f"{self.code} {self.text}".rstrip()

    def matches(self, subjects: Iterable[str], *, user: str | None, sender: str | None) -> bool:
        """True if the stage's subject(s) and the rule's user/sender filters match."""
        if self.user is not None and not fnmatch.fnmatchcase((user or "").lower(), self.user):
            return False
        if self.sender is not None and not fnmatch.fnmatchcase((sender or "").lower(), self.sender):
            return False
        return any(fnmatch.fnmatchcase(s.lower(), self.pattern) for s in subjects)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "rule": self.spec,
            "stage": self.stage,
            "pattern": self.pattern,
            "action": self.action,
            "code": self.code or None,
            "text": self.text or None,
            "probability": self.probability,
            "delay": self.delay,
            "times": self.times,
            "user": self.user,
            "from": self.sender,
        }


def _bad(spec: str, why: str) -> FaultRuleInvalid:
    return FaultRuleInvalid(f"fault rule {spec!r}: {why}")


def parse_fault(spec: str) -> FaultRule:  # noqa: PLR0912 (one branch per rule element)
    """Parse one rule. Raises FaultRuleInvalid saying what is wrong."""
    stage, colon, rest = spec.partition(":")
    stage = stage.strip().lower()
    if not colon or stage not in STAGES:
        raise _bad(spec, f"it must start with a stage and ':' (one of {', '.join(STAGES)})")
    pattern, eq, tail = rest.partition("=")
    if not eq or not pattern.strip():
        raise _bad(spec, "it needs PATTERN=ACTION after the stage")
    found = list(_OPTION.finditer(tail))
    action_text = tail[: found[0].start()] if found else tail
    options: dict[str, str] = {}
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(tail)
        options[match.group(1)] = tail[match.end() : end].strip()
    rule = FaultRule(spec=spec, stage=stage, pattern=pattern.strip().lower(), action="reply")
    action_text = action_text.strip()
    reply = _REPLY.match(action_text)
    if action_text.lower() in ("drop", "delay"):
        rule = replace(rule, action=action_text.lower())
    elif reply:
        rule = replace(rule, code=int(reply.group(1)), text=(reply.group(2) or "").strip())
    else:
        raise _bad(
            spec,
            "the action must be a 4xx/5xx reply such as '550 5.1.1 no such user', "
            "'drop' or 'delay'",
        )
    try:
        if "p" in options:
            rule = replace(rule, probability=float(options["p"]))
        if "delay" in options:
            rule = replace(rule, delay=float(options["delay"]))
        if "times" in options:
            rule = replace(rule, times=int(options["times"]))
    except ValueError:
        raise _bad(spec, "p and delay must be numbers, times a whole number") from None
    if not 0.0 <= rule.probability <= 1.0:
        raise _bad(spec, "p must be between 0 and 1")
    if not 0.0 <= rule.delay <= 600:
        raise _bad(spec, "delay must be 0-600 seconds")
    if rule.times is not None and rule.times < 1:
        raise _bad(spec, "times must be at least 1")
    if rule.action == "delay" and not rule.delay:
        raise _bad(spec, "a 'delay' action needs @delay=SECONDS")
    if "user" in options:
        rule = replace(rule, user=options["user"].lower())
    if "from" in options:
        rule = replace(rule, sender=options["from"].lower())
    return rule


@dataclass
class FaultSet:
    """The active rules, checked in order; the first that matches and fires wins.

    Thread-safe: the pytest fixture changes rules from the test's thread while the
    relay runs on its own loop.
    """

    seed: int = 0
    rules: list[FaultRule] = field(default_factory=list)
    fired: dict[str, int] = field(default_factory=dict)
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311  (reproducible faults, not security)

    @classmethod
    def from_specs(cls, specs: Iterable[str], seed: int = 0) -> FaultSet:
        """Parse every spec (all or nothing)."""
        return cls(seed=seed, rules=[parse_fault(s) for s in specs])

    def add(self, spec: str) -> FaultRule:
        """Parse and append one rule."""
        rule = parse_fault(spec)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self, seed: int | None = None) -> None:
        """Remove every rule (and reseed, if a seed is given)."""
        with self._lock:
            self.rules.clear()
            self.fired.clear()
            if seed is not None:
                self.seed = seed
                self._rng = random.Random(seed)  # noqa: S311

    def check(
        self,
        stage: str,
        subjects: Iterable[str],
        *,
        user: str | None = None,
        sender: str | None = None,
    ) -> FaultRule | None:
        """The rule that fires for this command, if any."""
        if not self.rules:
            return None
        subjects = list(subjects)
        with self._lock:
            for rule in self.rules:
                if rule.stage != stage or not rule.matches(subjects, user=user, sender=sender):
                    continue
                if rule.times is not None and self.fired.get(rule.spec, 0) >= rule.times:
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                self.fired[rule.spec] = self.fired.get(rule.spec, 0) + 1
                return rule
        return None

    def to_json(self) -> list[dict[str, Any]]:
        """The rules with how often each fired."""
        with self._lock:
            return [{**r.to_json(), "fired": self.fired.get(r.spec, 0)} for r in self.rules]
