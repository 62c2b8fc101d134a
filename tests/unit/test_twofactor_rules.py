"""The two-factor rules: TOTP codes (made by pyotp itself) against a moving clock, the sealed
secret, recovery codes and app passwords (their hash judged by Dovecot's own doveadm)."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pyotp
import pytest

from mailprov.rules import hashing
from mailprov.rules import twofactor as tf
from tests.conftest import require_or_skip

NOW = 1_800_000_015  # 15 s into a 30-second step
PEPPER = b"p" * 32


@pytest.fixture(name="secret")
def fixture_secret() -> str:
    """A fresh secret."""
    return tf.new_secret()


def code(secret: str, at: float) -> str:
    """The code an authenticator app shows at ``at`` (pyotp, not the code under test)."""
    return pyotp.TOTP(secret).at(at)


def test_secret_is_160_bits_of_base32(secret: str) -> None:
    """32 base32 characters (160 bits), different each time."""
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert tf.new_secret() != secret


def test_current_code_is_accepted_with_its_step(secret: str) -> None:
    """The code shown now passes and names the current 30-second step."""
    checked = tf.check_code(secret, code(secret, NOW), NOW)
    assert checked == tf.Checked(tf.Verdict.OK, NOW // 30)


@pytest.mark.parametrize("skew", [-30, +30])
def test_one_step_of_clock_drift_is_accepted(secret: str, skew: int) -> None:
    """A phone 30 s behind or ahead still passes (RFC 6238's one step either side)."""
    assert tf.check_code(secret, code(secret, NOW + skew), NOW).verdict is tf.Verdict.OK


@pytest.mark.parametrize("age", [60, 120, 300])
def test_older_codes_are_expired_not_wrong(secret: str, age: int) -> None:
    """A code from 1-5 minutes ago is reported as expired (the clock, not a typo)."""
    assert tf.check_code(secret, code(secret, NOW - age), NOW).verdict is tf.Verdict.EXPIRED


@pytest.mark.parametrize("offset", [-600, +60, +300])
def test_far_codes_are_wrong(secret: str, offset: int) -> None:
    """Ten minutes old, or from a clock running ahead by more than a step: wrong."""
    checked = tf.check_code(secret, code(secret, NOW + offset), NOW)
    assert checked.verdict is tf.Verdict.WRONG
    assert checked.step is None


def test_the_clock_moving_on_expires_a_code(secret: str) -> None:
    """The same code passes now, still 30 s later, and is expired a minute later."""
    shown = code(secret, NOW)
    assert tf.check_code(secret, shown, NOW + 30).verdict is tf.Verdict.OK
    assert tf.check_code(secret, shown, NOW + 60).verdict is tf.Verdict.EXPIRED


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "12a456", "١٢٣٤٥٦", "123456\n7"])
def test_malformed_codes_are_wrong(secret: str, typed: str) -> None:
    """Not exactly six ASCII digits: wrong, whatever the secret."""
    assert tf.check_code(secret, typed, NOW).verdict is tf.Verdict.WRONG


def test_spaces_inside_a_code_are_ignored(secret: str) -> None:
    """Apps show '123 456'; typed that way it still passes."""
    shown = code(secret, NOW)
    assert tf.check_code(secret, f" {shown[:3]} {shown[3:]} ", NOW).verdict is tf.Verdict.OK
    assert tf.looks_like_totp(f"{shown[:3]} {shown[3:]}")


def test_another_secrets_code_is_wrong(secret: str) -> None:
    """A code of another secret does not pass (unless by a one-in-a-million collision)."""
    other = tf.new_secret()
    hits = sum(
        tf.check_code(secret, code(other, NOW + 30 * i), NOW + 30 * i).verdict is tf.Verdict.OK
        for i in range(20)
    )
    assert hits == 0


def test_provisioning_uri_is_read_back_by_pyotp(secret: str) -> None:
    """pyotp's own parser finds the secret, the account and the issuer in the URI."""
    uri = tf.provisioning_uri(secret, "ann@example.test", "example.test")
    assert uri.startswith("otpauth://totp/")
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.secret == secret
    assert parsed.name == "ann@example.test"
    assert parsed.issuer == "example.test"


def test_qr_code_is_standalone_svg(secret: str) -> None:
    """The QR code is one SVG element with the SVG namespace (usable as an image)."""
    svg = tf.qr_svg(tf.provisioning_uri(secret, "ann@example.test", "example.test"))
    root = ET.fromstring(svg)  # noqa: S314  (our own output)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert secret not in svg  # drawn, not written


def test_sealed_secret_opens_only_with_its_pepper_and_address(secret: str) -> None:
    """64 characters that fit owner_totp.secret; another pepper or address opens nothing."""
    sealed = tf.seal_secret(PEPPER, "ann@example.test", secret)
    assert len(sealed) == 64
    assert secret not in sealed
    assert tf.unseal_secret(PEPPER, "ann@example.test", sealed) == secret
    assert tf.unseal_secret(b"q" * 32, "ann@example.test", sealed) is None
    assert tf.unseal_secret(PEPPER, "bob@example.test", sealed) is None
    assert tf.unseal_secret(PEPPER, "ann@example.test", "not-base64!") is None


def test_recovery_codes_are_ten_distinct_and_typed_back_in_any_form() -> None:
    """Ten codes of three groups of four; upper case, spaces or no dashes still match."""
    made = tf.new_recovery_codes()
    assert len(made) == len(set(made)) == 10
    assert all(re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", c) for c in made)
    first = made[0]
    plain = first.replace("-", "")
    for typed in (first, first.upper(), plain, f" {first.replace('-', ' ')} "):
        assert tf.normal_recovery_code(typed) == plain
    for bad in ("", "123456", first + "x", first.replace(first[0], "0", 1), "l" * 12):
        assert tf.normal_recovery_code(bad) is None


def test_app_passwords_are_random_and_safe_in_sql() -> None:
    """Six groups of four from a 32-letter alphabet (120 bits); nothing SQL would escape."""
    made = {tf.new_app_password() for _ in range(50)}
    assert len(made) == 50
    assert all(re.fullmatch(r"([a-z2-9]{4}-){5}[a-z2-9]{4}", p) for p in made)
    assert len(tf.ALPHABET) == len(set(tf.ALPHABET)) == 32


def test_app_password_hash_is_dovecots_sha256_hex() -> None:
    """The stored form is what 'doveadm pw -s SHA256.HEX' makes, and doveadm verifies it."""
    secret = tf.new_app_password()
    stored = hashing.app_password_hash(secret)
    assert re.fullmatch(r"\{SHA256\.HEX\}[0-9a-f]{64}", stored)
    doveadm = shutil.which("doveadm", path="/usr/bin:/usr/sbin:/bin:/sbin")
    if doveadm is None:
        require_or_skip("doveadm not installed (make test-deps installs it)")
    made = subprocess.run(
        [str(doveadm), "pw", "-s", "SHA256.HEX", "-p", secret],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert made == stored
    verified = subprocess.run(
        [str(doveadm), "pw", "-t", stored, "-p", secret],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    wrong = subprocess.run(
        [str(doveadm), "pw", "-t", stored, "-p", secret + "x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong.returncode != 0
