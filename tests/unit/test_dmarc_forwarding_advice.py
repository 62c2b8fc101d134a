"""The pure rule behind ``dns check``'s forwarding warning: which DMARC policies, forwards
and ARC settings warn, and the policy read from what DNS served."""

from __future__ import annotations

from mailprov.rules.dnscheck import CheckResult, forwarding_advice, published_dmarc_policy

FORWARDS = ["team@example.test -> a@elsewhere.test"]


def test_only_quarantine_or_reject_with_forwards_and_no_seal_warn() -> None:
    """p=quarantine/reject + forwarding + no ARC: one warning; anything else: none."""
    for policy in ("quarantine", "reject"):
        (advice,) = forwarding_advice("example.test", policy, FORWARDS, arc_seal=False)
        assert advice.id == "dns.dmarc.forwarding_unsealed"
        assert f"p={policy}" in advice.message
    assert forwarding_advice("example.test", "none", FORWARDS, arc_seal=False) == []
    assert forwarding_advice("example.test", None, FORWARDS, arc_seal=False) == []
    assert forwarding_advice("example.test", "reject", [], arc_seal=False) == []
    assert forwarding_advice("example.test", "reject", FORWARDS, arc_seal=True) == []


def test_many_forwards_are_summarised() -> None:
    """Seven forwards show the first five and 'and 2 more'."""
    many = [f"a{i}@example.test -> b@else.test" for i in range(7)]
    (advice,) = forwarding_advice("example.test", "reject", many, arc_seal=False)
    assert "a4@example.test" in advice.message
    assert "a5@example.test" not in advice.message
    assert "and 2 more" in advice.message


def test_policy_is_read_from_the_served_dmarc_record() -> None:
    """The p= tag of the v=DMARC1 record found, case-insensitively; none found: None."""
    found = CheckResult(
        "dns.dmarc",
        "_dmarc.example.test.",
        "TXT",
        "wrong",
        "v=DMARC1; p=quarantine",
        ("v=DMARC1; p=REJECT; rua=mailto:d@example.test",),
    )
    assert published_dmarc_policy([found]) == "reject"
    missing = CheckResult("dns.dmarc", "_dmarc.example.test.", "TXT", "missing", "v=DMARC1")
    assert published_dmarc_policy([missing]) is None
