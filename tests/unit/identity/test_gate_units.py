"""Pure parts of the identity gate with an explicit clock: code MACs and locks, the pepper file,
name matching, time leeway, and reading KDF iteration counts out of PKCS#12 files."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from mailprov.errors import ConfigInvalid, IdentityGateError
from mailprov.identity import codes, tokens
from mailprov.system.secrets import load_pepper
from tests.conftest import CertAuthority

NOW = 1_800_000_000


def test_lock_schedule() -> None:
    """10 failures lock 15 min, doubling per 10 up to 24 h; 100 need an administrator."""
    assert [codes.lock_seconds(n) for n in (9, 10, 11, 20, 30, 90)] == [
        None,
        900,
        None,
        1800,
        3600,
        86_400,
    ]
    assert codes.lock_seconds(100) == codes.LOCKED_FOR_ADMIN


def test_code_and_mac() -> None:
    """Codes are 6 digits; the MAC binds challenge, account and purpose."""
    code = codes.generate_code().reveal()
    assert codes.is_well_formed(code)
    assert not codes.is_well_formed("12345")
    assert not codes.is_well_formed("１２３４５６")  # noqa: RUF001  (full-width digits on purpose)
    pepper = b"p" * 32
    mac = codes.code_mac(pepper, "cid", "acct", "provision", code)
    assert codes.macs_equal(mac, codes.code_mac(pepper, "cid", "acct", "provision", code))
    assert not codes.macs_equal(mac, codes.code_mac(pepper, "cid2", "acct", "provision", code))
    assert not codes.macs_equal(mac, codes.code_mac(pepper, "cid", "other", "provision", code))


def test_pepper_created_0600(tmp_path: Path) -> None:
    """The pepper file is created on first use, 0600, with at least 32 random bytes, then reused."""
    path = tmp_path / "pepper"
    first = load_pepper(path)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_pepper(path) == first


def test_pepper_refused_when_short_or_shared(tmp_path: Path) -> None:
    """A short pepper, or one others can read, is a config error."""
    path = tmp_path / "pepper"
    path.write_text("abcd")
    path.chmod(0o600)
    with pytest.raises(ConfigInvalid, match="shorter than 32"):
        load_pepper(path)
    path.write_text("ab" * 40)
    path.chmod(0o644)
    with pytest.raises(ConfigInvalid, match="readable by others"):
        load_pepper(path)


def test_owner_match_rules() -> None:
    """Names match after NFKC + casefold, either order, ё = е when configured."""  # noqa: RUF002
    claims = {"given_name": "Пётр", "family_name": "Иванов"}
    assert tokens.owner_matches("ИВАНОВ петр", claims)
    assert not tokens.owner_matches("ИВАНОВ петр", claims, yo_as_ye=False)
    assert not tokens.owner_matches("Павел Иванов", claims)


def _keys_and_token(exp: int, iat: int) -> tuple[Any, str]:
    from joserfc import jwt
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256", parameters={"kid": "u1", "alg": "ES256", "use": "sig"})
    jwks = json.dumps({"keys": [key.as_dict(private=False)]})
    issuer = tokens.TrustedIssuer("https://idp.test", "aud-1", {"eidas": "substantial"})
    keys = tokens.TrustedKeys.build([(issuer, jwks)])
    payload = {
        "iss": "https://idp.test",
        "aud": ["aud-1", "x"],
        "sub": "s",
        "jti": "j",
        "nonce": "n",
        "iat": iat,
        "exp": exp,
        "verified_claims": {
            "verification": {
                "trust_framework": "eidas",
                "assurance_level": "high",
                "time": "2026-01-01T00:00:00Z",
            },
            "claims": {"given_name": "A", "family_name": "B", "birthdate": "x"},
        },
    }
    token = jwt.encode(
        {"typ": "mailprov-idv+jwt", "alg": "ES256", "kid": "u1"}, payload, key, algorithms=["ES256"]
    )
    return keys, token


def test_expiry_leeway_is_60_seconds() -> None:
    """A token expired 59 s ago still passes; 60 s ago it fails with IDG-T09 and the time."""
    keys, token = _keys_and_token(exp=NOW - 59, iat=NOW - 300)
    assert tokens.verify_token(token, keys=keys, now=NOW, nonce="n").level == "high"
    keys, token = _keys_and_token(exp=NOW - 60, iat=NOW - 300)
    with pytest.raises(IdentityGateError) as caught:
        tokens.verify_token(token, keys=keys, now=NOW, nonce="n")
    assert caught.value.details["idg"] == "IDG-T09"
    assert "2027-01-15 07:59:00Z" in caught.value.message


def test_pkcs12_iterations_read(tmp_path: Path, test_ca: CertAuthority) -> None:
    """The iteration count of a PKCS#12 file is read without decrypting it."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import (
        PrivateFormat,
        load_pem_private_key,
        pkcs12,
    )

    from mailprov.identity.certificates import pkcs12_iterations, sniff

    issued = test_ca.issue(tmp_path, "t.test")
    cert = x509.load_pem_x509_certificate(issued.cert_file.read_bytes())
    key = load_pem_private_key(issued.key_file.read_bytes(), None)
    encryption = (
        PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(54_321)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .build(b"password1")
    )
    data = pkcs12.serialize_key_and_certificates(b"t", key, cert, None, encryption)
    assert sniff(data) == "pkcs12"
    assert pkcs12_iterations(data) == 54_321
