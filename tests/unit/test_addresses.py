"""Address rules: normalisation, every rule broken, IDNA, suggestions."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailprov.errors import InvalidAddress
from mailprov.rules.addresses import (
    MAX_LOCAL,
    Address,
    domain_to_unicode,
    normalise_domain,
    parse_address,
    parse_destination,
    suggest,
)

LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True).filter(
    lambda s: "--" not in s
)
LOCAL = st.lists(st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True), min_size=1, max_size=4).flatmap(
    lambda parts: st.sampled_from([".", "-"]).map(lambda sep: sep.join(parts))
)


class TestParseAddress:
    """parse_address applies the SPEC's address row."""

    def test_lower_cases_and_keeps_valid(self) -> None:
        """Upper case is folded; a valid address survives unchanged otherwise."""
        assert Address("john.smith", "example.org") == parse_address("John.Smith@Example.ORG")

    @pytest.mark.parametrize(
        ("raw", "fragment"),
        [
            ("a b@example.org", "Latin letters"),
            ("a..b@example.org", "two dots or hyphens"),
            ("a--b@example.org", "two dots or hyphens"),
            ("a.-b@example.org", "two dots or hyphens"),
            ("-a@example.org", "start or end"),
            ("a-@example.org", "start or end"),
            (".a@example.org", "start or end"),
            ("a.@example.org", "start or end"),
            ('"q"@example.org', "Latin letters"),
            ("a\r\nb@example.org", "Latin letters"),
            ("a\x00b@example.org", "Latin letters"),
            ("ivan_p@example.org", "Latin letters"),
            ("иван@example.org", "Latin letters"),
            ("a+tag@example.org", "Latin letters"),
            ("x" * 65 + "@example.org", "longer than 64"),
            ("a@b@example.org", "exactly one"),
            ("nobody", "exactly one"),
            ("@example.org", "empty local part"),
            ("a@example", "not a valid domain"),
            ("a@-example.org", "not a valid domain"),
            ("a@exa mple.org", "not a valid domain"),
            ("a@example.123", "not a valid domain"),
        ],
    )
    def test_rejects_each_broken_rule(self, raw: str, fragment: str) -> None:
        """Every rule violation raises InvalidAddress naming the rule."""
        with pytest.raises(InvalidAddress) as caught:
            parse_address(raw)
        assert fragment in caught.value.message
        assert "\n" not in caught.value.message
        assert "\x00" not in caught.value.message

    def test_whole_address_limit(self) -> None:
        """An address over 254 characters is refused even when its parts are each valid."""
        domain = ".".join(["d" * 60] * 4)  # 243 characters
        with pytest.raises(InvalidAddress, match="longer than 254"):
            parse_address("a" * 20 + "@" + domain)

    def test_catch_all_only_when_allowed(self) -> None:
        """'@domain' is accepted only for aliases."""
        assert parse_address("@Example.org", allow_catch_all=True).is_catch_all

    def test_role_addresses_are_flagged(self) -> None:
        """RFC 2142 role names are recognised."""
        assert parse_address("postmaster@example.org").is_role
        assert not parse_address("post.master@example.org").is_role

    @given(local=LOCAL, labels=st.lists(LABEL, min_size=1, max_size=3))
    def test_valid_addresses_round_trip(self, local: str, labels: list[str]) -> None:
        """Any address made of allowed characters parses to itself, and parsing is idempotent."""
        raw = f"{local}@{'.'.join([*labels, 'org'])}"
        parsed = parse_address(raw.upper())
        assert raw == str(parsed)
        assert parsed == parse_address(str(parsed))

    @given(
        local=st.text(min_size=1, max_size=70),
        bad=st.sampled_from(list(" \"'(),:;<>[\\]\r\n\t\x00_+!#$%&*=?^`{|}~ё")),
    )
    def test_forbidden_characters_never_pass(self, local: str, bad: str) -> None:
        """A local part holding any character outside [a-z0-9.-] is always refused."""
        with pytest.raises(InvalidAddress):
            parse_address(f"{local}{bad}@example.org")


class TestDomains:
    """Domains are stored as IDNA A-labels and shown as U-labels."""

    def test_idn_is_stored_as_a_label(self) -> None:
        """A Cyrillic domain becomes its xn-- form, and shows back as Cyrillic."""
        assert "xn--e1afmkfd.xn--p1ai" == normalise_domain("Пример.РФ")
        assert "пример.рф" == domain_to_unicode("xn--e1afmkfd.xn--p1ai")

    def test_idna_2008(self) -> None:
        """IDNA 2008 keeps 'ß' (IDNA 2003 would have mapped it to 'ss')."""
        assert normalise_domain("straße.de").startswith("xn--")

    def test_trailing_dot_is_dropped(self) -> None:
        """'example.org.' is the same domain as 'example.org'."""
        assert "example.org" == normalise_domain("example.org.")

    @given(labels=st.lists(LABEL, min_size=1, max_size=4))
    def test_ascii_domains_round_trip(self, labels: list[str]) -> None:
        """An ASCII domain normalises to itself and shows as itself."""
        name = ".".join([*labels, "test"])
        assert name == normalise_domain(name)
        assert name == domain_to_unicode(normalise_domain(name))


class TestDestinations:
    """Alias destinations may be remote addresses but never break a lookup result."""

    def test_remote_with_plus_is_fine(self) -> None:
        """Forwarding to a tagged remote address is allowed."""
        assert "user+tag@gmail.com" == parse_destination("User+Tag@Gmail.com")

    @pytest.mark.parametrize(
        "raw", ["a,b@x.org", "a b@x.org", "a\n@x.org", "a@x.org,b@y.org", '"a"@x.org']
    )
    def test_separators_are_refused(self, raw: str) -> None:
        """Commas, spaces, quotes and newlines would change a Postfix result: refused."""
        with pytest.raises(InvalidAddress):
            parse_destination(raw)


class TestSuggestions:
    """Taken addresses get valid, deterministic alternatives."""

    def test_at_least_three_valid_and_distinct(self) -> None:
        """Suggestions are valid addresses, distinct from the original and each other."""
        taken = parse_address("john.smith@example.org")
        options = [str(o) for o in list(suggest(taken))[:10]]
        assert len(set(options)) == 10
        assert str(taken) not in options
        for option in options:
            assert option == str(parse_address(option))

    def test_deterministic(self) -> None:
        """The same input gives the same suggestions."""
        taken = parse_address("ann@example.org")
        assert list(suggest(taken))[:5] == list(suggest(taken))[:5]

    @given(local=LOCAL)
    def test_long_names_still_get_suggestions(self, local: str) -> None:
        """Even a local part at the 64-character limit gets valid suggestions."""
        long_local = (local + "x" * MAX_LOCAL)[:MAX_LOCAL].rstrip(".-")
        taken = parse_address(f"{long_local}@example.org")
        options = list(suggest(taken))[:3]
        assert len(options) == 3
        assert all(
            len(o.local) <= MAX_LOCAL and str(parse_address(str(o))) == str(o) for o in options
        )

    def test_suggestions_never_role_names(self) -> None:
        """A suggestion never falls on a reserved role address."""
        taken = parse_address("admin.x@example.org")
        assert not any(o.is_role for o in list(suggest(taken))[:50])


def test_local_alphabet_is_exactly_latin_digits_dot_hyphen() -> None:
    """Every ASCII printable character outside [A-Za-z0-9.-] is refused in a local part."""
    allowed = set(string.ascii_letters + string.digits + ".-")
    for ch in string.printable:
        if ch in allowed or ch == "@":
            continue
        with pytest.raises(InvalidAddress):
            parse_address(f"a{ch}b@example.org")
