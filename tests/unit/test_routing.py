"""Which aliases can take mail (the pure twin of the Postfix alias maps' rule)."""

from __future__ import annotations

from mailprov.rules.routing import deliverable, reaching

LOCAL = {"example.test", "off.test"}


class TestDeliverable:
    def test_alias_needs_one_enabled_mailbox_or_forward(self) -> None:
        """An alias is deliverable through an enabled mailbox or an outside address only."""
        aliases = {
            "mixed@example.test": ["on@example.test", "off@example.test"],
            "dead@example.test": ["off@example.test"],
            "fwd@example.test": ["off@example.test", "friend@example.net"],
            "@example.test": ["off@example.test"],
        }
        assert {"mixed@example.test", "fwd@example.test"} == deliverable(
            aliases, {"on@example.test"}, LOCAL
        )

    def test_nested_aliases_and_cycles(self) -> None:
        """Liveness follows aliases to any depth; a cycle with no way out leads nowhere."""
        aliases = {
            "outer@example.test": ["inner@example.test"],
            "inner@example.test": ["on@example.test"],
            "a@example.test": ["b@example.test"],
            "b@example.test": ["a@example.test"],
            "missing@example.test": ["disabled-alias@example.test"],
        }
        assert {"outer@example.test", "inner@example.test"} == deliverable(
            aliases, {"on@example.test"}, LOCAL
        )


def test_reaching_follows_aliases_backwards() -> None:
    """The aliases that reach an address directly or through other aliases."""
    aliases = {
        "outer@example.test": ["inner@example.test"],
        "inner@example.test": ["box@example.test"],
        "other@example.test": ["else@example.test"],
    }
    assert {"outer@example.test", "inner@example.test"} == reaching(aliases, "box@example.test")
