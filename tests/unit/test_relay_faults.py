"""Fault rules: parsing, matching, probability with a seed, and limits."""

from __future__ import annotations

import pytest

from mailprov.errors import FaultRuleInvalid
from mailprov.relay.faults import FaultSet, parse_fault


def test_reply_rule_with_at_signs_in_pattern_and_options() -> None:
    """A reply rule keeps '@' in the pattern and text, and reads trailing @options."""
    rule = parse_fault(
        "rcpt:bounce-*@example.test=550 5.1.1 no such user@p=0.25@times=3@from=*@app.test"
    )
    assert (rule.stage, rule.pattern, rule.code, rule.text) == (
        "rcpt",
        "bounce-*@example.test",
        550,
        "5.1.1 no such user",
    )
    assert (rule.probability, rule.times, rule.sender) == (0.25, 3, "*@app.test")


def test_drop_and_delay_actions() -> None:
    """'drop' and 'delay' (with @delay=) parse as their actions."""
    assert parse_fault("mail:*=drop").action == "drop"
    delay = parse_fault("data:*=delay@delay=1.5")
    assert (delay.action, delay.delay) == ("delay", 1.5)


@pytest.mark.parametrize(
    "spec",
    [
        "rcpt",
        "nope:*=550 x",
        "rcpt:*",
        "rcpt:=550 x",
        "rcpt:*=250 ok",
        "rcpt:*=hello",
        "rcpt:*=550 x@p=2",
        "rcpt:*=550 x@p=often",
        "rcpt:*=550 x@times=0",
        "data:*=delay",
        "rcpt:*=550 x@delay=9999",
    ],
)
def test_bad_rules_are_refused_with_a_reason(spec: str) -> None:
    """Every malformed rule raises FaultRuleInvalid quoting the rule."""
    with pytest.raises(FaultRuleInvalid) as err:
        parse_fault(spec)
    assert repr(spec) in err.value.message


def test_matching_is_by_stage_glob_user_and_sender() -> None:
    """A rule fires only for its stage, a matching subject, and its user/sender filters."""
    faults = FaultSet.from_specs(["rcpt:*@bad.test=550 5.1.1 no@user=alice@*"])
    assert faults.check("mail", ["x@bad.test"], user="alice@a.test") is None
    assert faults.check("rcpt", ["x@good.test"], user="alice@a.test") is None
    assert faults.check("rcpt", ["X@BAD.test"], user="bob@a.test") is None
    rule = faults.check("rcpt", ["X@BAD.test"], user="alice@a.test")
    assert rule is not None
    assert rule.reply == "550 5.1.1 no"


def test_times_limits_how_often_a_rule_fires() -> None:
    """A rule with @times=2 fires twice, then never."""
    faults = FaultSet.from_specs(["data:*=451 4.3.0 later@times=2"])
    fired = [faults.check("data", ["a@b"]) is not None for _ in range(4)]
    assert fired == [True, True, False, False]


def test_probability_is_reproducible_with_a_seed() -> None:
    """The same seed gives the same firing sequence; about p of the checks fire."""

    def sequence(seed: int) -> list[bool]:
        faults = FaultSet.from_specs(["data:*=451 4.3.0 later@p=0.3"], seed=seed)
        return [faults.check("data", ["a@b"]) is not None for _ in range(400)]

    assert sequence(7) == sequence(7)
    assert sequence(7) != sequence(8)
    assert 80 < sum(sequence(7)) < 160
