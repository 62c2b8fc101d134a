"""The state format: key positions, the schema's messages, the pure diff, and export round trips."""

from __future__ import annotations

import functools
import json
import tomllib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailprov.errors import StateInvalid
from mailprov.rules import statefile
from mailprov.rules.declared import declared
from mailprov.rules.positions import json_lines, line_of, toml_lines
from mailprov.rules.state import Current, MailboxNow, diff, to_document

TOML = """\
# a comment [not.a.table]
version = 1
title = "multi \\" quoted = [x]"
text = '''
[not.a.table]
key = 1
'''

[domains."example.org"]
dkim = [
  { selector = "a", algorithm = "rsa-2048" },  # first
  # a comment between items
  { selector = 'b' },
]

[mailboxes."alice@example.org"]
name = "Alice"
deep.dotted . key = 3

[[servers]]
name = "one"

[[servers]]
name = "two"
ports = [1,
  2]
"""


class TestPositions:
    """toml_lines / json_lines: the line of each key and array item."""

    def test_toml(self) -> None:
        """Headers, dotted and quoted keys, inline tables, arrays and strings are placed."""
        lines = toml_lines(TOML)
        assert 2 == lines[("version",)]
        assert 4 == lines[("text",)]
        assert 9 == lines[("domains", "example.org")]
        assert 10 == lines[("domains", "example.org", "dkim")]
        assert 11 == lines[("domains", "example.org", "dkim", 0, "algorithm")]
        assert 13 == lines[("domains", "example.org", "dkim", 1)]
        assert 13 == lines[("domains", "example.org", "dkim", 1, "selector")]
        assert 16 == lines[("mailboxes", "alice@example.org")]
        assert 18 == lines[("mailboxes", "alice@example.org", "deep", "dotted", "key")]
        assert 20 == lines[("servers", 0)]
        assert 24 == lines[("servers", 1, "name")]
        assert 26 == lines[("servers", 1, "ports", 1)]
        assert ("not", "a", "table") not in lines

    def test_nearest_ancestor(self) -> None:
        """A path that is not written (a missing key) is placed at its nearest ancestor."""
        lines = toml_lines(TOML)
        assert 16 == line_of(lines, ("mailboxes", "alice@example.org", "quota"))
        assert line_of(lines, ("nothing",)) is None

    def test_json(self) -> None:
        """JSON objects and arrays are placed too (keys with escapes included)."""
        text = '{\n  "version": 1,\n  "mailboxes": {\n    "a\\u0040b.test": {\n      "quota": [1,\n 2]\n    }\n  }\n}\n'
        lines = json_lines(text)
        assert 2 == lines[("version",)]
        assert 4 == lines[("mailboxes", "a@b.test")]
        assert 6 == lines[("mailboxes", "a@b.test", "quota", 1)]


class TestSchemaMessages:
    """Schema problems are ours: placed, and never showing a secret value."""

    def test_version_and_types(self) -> None:
        """A wrong version and a wrong type each get a line and a plain message."""
        text = 'version = 2\n[mailboxes."a@b.test"]\nactive = "yes"\n'
        with pytest.raises(StateInvalid) as caught:
            statefile.parse(text, fmt="toml", source="s.toml")
        assert [
            "line 1: version: must be 1",
            'line 3: mailboxes."a@b.test".active: must be a boolean',
        ] == caught.value.details["problems"]

    def test_secret_values_are_never_shown(self) -> None:
        """A wrong password_hash or a clear password is named, its value is not."""
        text = (
            'version = 1\n[mailboxes."a@b.test"]\npassword_hash = "hunter2 secret"\n'
            'clear_password = "Clear-1!"\n'
        )
        with pytest.raises(StateInvalid) as caught:
            statefile.parse(text, fmt="toml", source="s.toml")
        shown = json.dumps(caught.value.to_json())
        assert "hunter2" not in shown and "Clear-1!" not in shown
        assert "never holds a clear password" in shown

    def test_shipped_schema_is_valid(self) -> None:
        """The shipped schema is a valid JSON Schema 2020-12 document."""
        import jsonschema

        jsonschema.Draft202012Validator.check_schema(json.loads(statefile.schema_text()))


# -- random sites ---------------------------------------------------------------------


@functools.cache
def hashes() -> tuple[str, ...]:
    """Three real hashes (hashing is slow, so made once)."""
    from mailprov.rules.hashing import hash_password

    return tuple(hash_password(p, "SHA512-CRYPT") for p in ("One-Pass-1!", "Two-Pass-2!", "x"))


LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True).filter(
    lambda s: "--" not in s
)
LOCAL = st.from_regex(r"[a-z0-9]{1,6}(?:[.-][a-z0-9]{1,6}){0,2}", fullmatch=True).filter(
    lambda s: s not in {"postmaster", "abuse", "hostmaster", "webmaster", "admin", "root"}
)
NAME = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x7f"),
    max_size=20,
).map(lambda s: " ".join(s.split()))
QUOTA = st.one_of(st.just(0), st.integers(1, 8).map(lambda n: n * 1024**3), st.integers(1, 10**12))


@st.composite
def sites(draw: Any) -> Current:
    """A random store: domains (some IDN), mailboxes, aliases (catch-alls, forwards) and keys."""
    from mailprov.rules.addresses import normalise_domain
    from mailprov.rules.state import MailboxNow

    names = draw(st.lists(LABEL, min_size=1, max_size=3, unique=True))
    domains = {normalise_domain(f"{n}.test") for n in names}
    if draw(st.booleans()):
        domains.add(normalise_domain("bücher.test"))
    ordered = sorted(domains)
    boxes: dict[str, MailboxNow] = {}
    for _ in range(draw(st.integers(0, 6))):
        address = f"{draw(LOCAL)}@{draw(st.sampled_from(ordered))}"
        boxes[address] = MailboxNow(
            draw(NAME), draw(QUOTA), draw(st.booleans()), draw(st.sampled_from(hashes()))
        )
    aliases: dict[str, tuple[str, ...]] = {}
    for _ in range(draw(st.integers(0, 4))):
        local = draw(st.one_of(st.just(""), LOCAL, st.just("postmaster")))
        address = f"{local}@{draw(st.sampled_from(ordered))}"
        if address in boxes:
            continue
        targets = draw(
            st.lists(
                st.one_of(
                    st.sampled_from(sorted(boxes) or ["far@remote.example"]),
                    LOCAL.map(lambda loc: f"{loc}+tag@remote.example"),
                ),
                min_size=1,
                max_size=3,
                unique=True,
            )
        )
        targets = [t for t in targets if t != address] or ["far@remote.example"]
        aliases[address] = tuple(sorted(targets))
    dkim = {ordered[0]: {"s1": "rsa-2048", "s2": "ed25519"}} if draw(st.booleans()) else {}
    return Current(domains, boxes, aliases, dkim)


def _round_trip(current: Current, fmt: str) -> None:
    doc = to_document(current, with_hashes=True)
    chunks = statefile.to_json_lines(doc) if fmt == "json" else statefile.to_toml_lines(doc)
    text = "".join(chunks)
    parsed = statefile.parse(text, fmt=fmt, source="export")
    wanted, problems = declared(parsed)
    assert [] == problems
    planned, problems = diff(
        current, wanted, prune=True, default_quota=0, default_algorithm="rsa-2048"
    )
    assert ([], []) == (planned.changes, problems)


class TestExportRoundTrip:
    """Export then apply --check: no change, for any site."""

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(sites(), st.sampled_from(["toml", "json"]))
    def test_export_declares_the_store_exactly(self, current: Current, fmt: str) -> None:
        """The exported document, parsed and diffed against the same store, plans nothing."""
        _round_trip(current, fmt)

    @settings(max_examples=60, deadline=None)
    @given(sites())
    def test_every_object_has_its_line(self, current: Current) -> None:
        """The TOML export places every mailbox and alias on the line of its own header."""
        text = "".join(statefile.to_toml_lines(to_document(current)))
        lines = toml_lines(text)
        rows = text.splitlines()
        assert tomllib.loads(text)["version"] == 1
        for address in current.mailboxes:
            assert rows[lines[("mailboxes", address)] - 1].startswith("[mailboxes.")

    def test_names_that_need_escaping(self) -> None:
        """Quotes, backslashes, DEL and non-Latin names survive the round trip."""
        box = MailboxNow('Ива "Q" \\ \x7f end', 5, False, hashes()[0])
        current = Current({"example.test"}, {"a@example.test": box}, {}, {})
        _round_trip(current, "toml")
        _round_trip(current, "json")


# -- the schema's fast path ---------------------------------------------------------------

JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = {
    "name": st.one_of(st.text(max_size=3), st.integers(), st.text(min_size=250, max_size=260)),
    "quota": st.one_of(
        st.sampled_from(["2G", "0", "1.5 GiB", "lots", "-1", ""]), st.integers(-2, 3), st.floats()
    ),
    "active": st.one_of(st.booleans(), st.integers(0, 1), st.none()),
    "password_hash": st.sampled_from(["{SHA512-CRYPT}$6$x", "{X}", "nohash", "{A} b"]),
    "generate_password": st.one_of(st.booleans(), st.just("yes")),
    "extra": JSONISH,
}


@st.composite
def near_valid_documents(draw: Any) -> Any:
    """State documents that are valid, or nearly so (a wrong type, value or key here and there)."""
    doc: dict[str, Any] = {"version": draw(st.sampled_from([1, 1, 1, 2, "1", True, 1.0]))}
    mailboxes = {}
    for n in range(draw(st.integers(0, 3))):
        keys = draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=4))
        mailboxes[f"u{n}@example.test"] = {k: draw(FIELDS[k]) for k in keys}
    doc["mailboxes"] = draw(st.one_of(st.just(mailboxes), JSONISH))
    doc["aliases"] = {
        "a@example.test": {
            "destinations": draw(
                st.one_of(st.lists(st.sampled_from(["x@y.z", "w@v.u"]), max_size=3), JSONISH)
            )
        }
    }
    doc["domains"] = draw(
        st.one_of(
            st.just({"example.test": {}}),
            st.just({"example.test": {"dkim": [{"selector": "s1", "algorithm": "ed25519"}]}}),
            st.just({"example.test": {"dkim": [{"selector": "-bad", "algorithm": "dsa"}]}}),
            JSONISH,
        )
    )
    if draw(st.booleans()):
        doc[draw(st.sampled_from(["colour", "version"]))] = draw(JSONISH)
    return doc


class TestQuickCheck:
    """The compiled fast path never accepts what jsonschema refuses."""

    @settings(max_examples=400, deadline=None)
    @given(near_valid_documents())
    def test_quick_valid_implies_valid(self, doc: Any) -> None:
        """quick_check(schema)(doc) is True only for documents jsonschema finds valid."""
        if statefile._quick()(doc):
            assert statefile._validator().is_valid(doc)

    def test_accepts_a_typical_state(self) -> None:
        """The fast path does accept a valid state (else it would be no fast path)."""
        quick = statefile._quick()
        doc = to_document(
            Current(
                {"example.test"},
                {"a@example.test": MailboxNow("A", 0, True, "{X}y")},
                {"@example.test": ("a@example.test",)},
                {},
            ),
            with_hashes=True,
        )
        assert quick(doc)
