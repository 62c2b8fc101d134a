"""Password policies, the generator and Dovecot-form hashes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailprov.errors import InvalidValue, PasswordPolicy, PasswordTooLong
from mailprov.rules import hashing
from mailprov.rules.passwords import (
    AMBIGUOUS,
    POLICIES,
    check_password,
    generate_password,
    get_policy,
    violations,
)

SOURCE = POLICIES["source"]
NIST = POLICIES["nist"]


class TestPolicies:
    """Each rule of each policy is named when broken."""

    @pytest.mark.parametrize(
        ("password", "rule"),
        [
            ("Ab1!", "at least 8 characters"),
            ("abcdefg1!", "an upper-case letter"),
            ("ABCDEFG1!", "a lower-case letter"),
            ("Abcdefgh!", "a digit"),
            ("Abcdefgh1", "a special character"),
            ("Password1!", "not a commonly used password"),
            ("Qwerty123!", "not a commonly used password"),
            ("A" * 120 + "bcdefg1!!", "at most 128 characters"),
            ("Abc\x07defg1!", "no control characters"),
        ],
    )
    def test_source_rules(self, password: str, rule: str) -> None:
        """The 'source' policy names the exact rule a password breaks."""
        assert any(rule in v for v in violations(password, SOURCE))

    def test_source_accepts_a_good_password(self) -> None:
        """A password with every class and not on the list passes."""
        assert [] == violations("Wonder-Land-1865", SOURCE)

    def test_nist_has_no_composition_rules(self) -> None:
        """NIST accepts a long lower-case passphrase and refuses a short one."""
        assert [] == violations("correct horse battery staple", NIST)
        assert ["at least 15 characters (it has 9)"] == violations("abcdefghz", NIST)

    def test_context_words_are_refused(self) -> None:
        """A password holding the mailbox name is refused."""
        assert "not contain the mailbox name" in violations(
            "Alice-2026-x!", SOURCE, context=("alice",)
        )

    def test_short_names_count_as_the_whole_word_only(self) -> None:
        """A three-letter name is refused anywhere; a two-letter one only as the base word."""
        name = "not contain the mailbox name"
        assert name in violations("Xx-bob-2026!", SOURCE, context=("bob",))
        assert name in violations("Jo-2026-!!", SOURCE, context=("jo",))
        assert name not in violations("Majority-2026!", SOURCE, context=("jo",))

    def test_error_lists_every_rule_and_never_the_password(self) -> None:
        """PasswordPolicy carries all broken rules and not the password itself."""
        with pytest.raises(PasswordPolicy) as caught:
            check_password("secretpw", SOURCE)
        assert "secretpw" not in caught.value.message
        assert len(caught.value.details["rules"]) >= 3

    def test_overrides_are_checked(self) -> None:
        """A min_length below 8 is refused; an unknown policy names the known ones."""
        assert 12 == get_policy("source", min_length=12).min_length
        with pytest.raises(InvalidValue):
            get_policy("source", min_length=4)
        with pytest.raises(InvalidValue) as caught:
            get_policy("fancy")
        assert "nist, source" in (caught.value.hint or "")


class TestGenerator:
    """Generated passwords always pass their policy."""

    @settings(max_examples=200)
    @given(
        policy=st.sampled_from(list(POLICIES.values())),
        length=st.integers(min_value=8, max_value=64),
    )
    def test_generated_passwords_pass_their_policy(self, policy: object, length: int) -> None:
        """Every generated password passes the policy it was generated for."""
        password = generate_password(policy, length)  # type: ignore[arg-type]
        assert [] == violations(password, policy)  # type: ignore[arg-type]
        assert len(password) == max(length, policy.min_length)  # type: ignore[attr-defined]
        assert not AMBIGUOUS.intersection(password)

    def test_default_length_and_variety(self) -> None:
        """The default is 16 characters, and 200 passwords are all different."""
        made = {generate_password(SOURCE) for _ in range(200)}
        assert 200 == len(made)
        assert {16} == {len(p) for p in made}

    def test_positions_are_uniform(self) -> None:
        """The shuffle spreads the required digit across positions (not always first)."""
        firsts = {
            next(i for i, c in enumerate(generate_password(SOURCE, 8)) if c.isdigit())
            for _ in range(300)
        }
        assert len(firsts) >= 6


class TestHashing:
    """Hashes are in Dovecot's {SCHEME} form and verify."""

    @pytest.mark.parametrize(
        ("scheme", "prefix"),
        [
            ("ARGON2ID", "{ARGON2ID}$argon2id$"),
            ("SHA512-CRYPT", "{SHA512-CRYPT}$6$"),
            ("BLF-CRYPT", "{BLF-CRYPT}$2y$"),
        ],
    )
    def test_each_scheme(self, scheme: str, prefix: str) -> None:
        """Each scheme makes a Dovecot-form hash that verifies only the right password."""
        digest = hashing.hash_password("Wonder-Land-1865", scheme)
        assert digest.startswith(prefix)
        assert hashing.verify_password("Wonder-Land-1865", digest)
        assert not hashing.verify_password("Wonder-Land-1866", digest)
        # Found by fuzzing the sign-in API: a NUL byte made SHA512-CRYPT raise (a 500).
        assert not hashing.verify_password("Wonder-Land-1865\0", digest)

    @pytest.mark.parametrize("scheme", ["ARGON2ID", "SHA512-CRYPT", "BLF-CRYPT"])
    def test_a_nul_byte_matches_nothing(self, scheme: str) -> None:
        """A typed password with a NUL byte is a mismatch, never an exception (sign-in fuzz)."""
        digest = hashing.hash_password("Wonder-Land-1865", scheme)
        assert not hashing.verify_password("Wonder-Land-1865\x00", digest)

    def test_bcrypt_refuses_over_72_bytes(self) -> None:
        """BLF-CRYPT refuses a password it would truncate, with a clear error."""
        with pytest.raises(PasswordTooLong, match="72 bytes"):
            hashing.hash_password("Ж" * 37 + "a1!", "BLF-CRYPT")

    def test_unknown_scheme(self) -> None:
        """An unknown scheme names the known ones."""
        with pytest.raises(InvalidValue) as caught:
            hashing.hash_password("x", "MD5")
        assert "ARGON2ID" in (caught.value.hint or "")

    @pytest.mark.parametrize(
        "value", ["plain", "{MD5}abc", "{ARGON2ID}not-a-hash", "{SHA512-CRYPT}$1$x$y"]
    )
    def test_split_hash_refuses_garbage(self, value: str) -> None:
        """Only a well-formed hash of a known scheme is accepted for import."""
        with pytest.raises(InvalidValue):
            hashing.split_hash(value)
        assert not hashing.verify_password("x", value)
