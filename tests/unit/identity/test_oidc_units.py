"""Identity by redirect, the pure parts: the claims request, the sign-in's derived secrets, a
provider's JWKS as the gate's keys (and a token without ``kid`` only for such a provider),
safe echoes of provider errors, the return location, and the [oidc] settings' rules."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from mailprov.errors import ConfigInvalid, IdentityGateError, TrustInvalid
from mailprov.identity import oidc, tokens
from mailprov.identity.tokens import TrustedIssuer, TrustedKeys
from mailprov.settings import load_settings
from mailprov.system.oidc import provider_error
from tests.integration.identity.conftest import AUDIENCE, TOKEN_TYPE, IssuerKey

NOW = 1_800_000_000
ISSUER = TrustedIssuer("https://id.example", AUDIENCE, {"nist_800_63A": "ial2"})


def rsa_jwk(**extra: Any) -> dict[str, Any]:
    """A public RSA JWK as many providers publish it: no alg, no use."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    numbers = rsa.generate_private_key(65537, 2048).public_key().public_numbers()

    def b64(n: int) -> str:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {"kty": "RSA", "n": b64(numbers.n), "e": b64(numbers.e), **extra}


def test_claims_request_asks_for_verified_claims() -> None:
    """The claims request names the framework (or any), level and time, and each required
    verified claim as essential, for the ID token (OIDC4IDA §5)."""
    asked = oidc.claims_request("ru_esia", ["family_name", "given_name"])
    verified = asked["id_token"]["verified_claims"]
    assert {"value": "ru_esia"} == verified["verification"]["trust_framework"]
    assert {"assurance_level": None, "time": None} == {
        k: verified["verification"][k] for k in ("assurance_level", "time")
    }
    assert {"family_name": {"essential": True}, "given_name": {"essential": True}} == verified[
        "claims"
    ]
    assert (
        oidc.claims_request("", [])["id_token"]["verified_claims"]["verification"][
            "trust_framework"
        ]
        is None
    )


def test_derived_secrets_are_bound_to_state_purpose_and_pepper() -> None:
    """Nonce and PKCE verifier come from (pepper, state): 43 base64url characters, different
    per purpose, state and pepper; the stored MACs differ per purpose."""
    pepper, other = b"p" * 32, b"q" * 32
    nonce = oidc.derive(pepper, "nonce", "state-1")
    verifier = oidc.derive(pepper, "pkce", "state-1")
    assert 43 == len(nonce) == len(verifier)
    assert set(verifier) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert nonce == oidc.derive(pepper, "nonce", "state-1")
    assert len({nonce, verifier, oidc.derive(pepper, "nonce", "state-2")}) == 3
    assert nonce != oidc.derive(other, "nonce", "state-1")
    assert oidc.mac(pepper, "state", "x") != oidc.mac(pepper, "browser", "x")
    assert 64 == len(oidc.mac(pepper, "state", "x" * 10_000))


class TestProviderKeys:
    """A provider's JWKS under the gate's JWKS rules, with RFC 7517's optional members filled."""

    def test_missing_alg_and_use_are_filled_and_one_key_is_sole(self) -> None:
        """A lone RSA key without alg/use gets the configured algorithm and serves kid-less
        tokens; an encryption key is left out."""
        jwks = {"keys": [rsa_jwk(kid="k1"), rsa_jwk(kid="enc", use="enc")]}
        keys = oidc.provider_keys(jwks, ISSUER, "RS256")
        assert ["k1"] == list(keys.by_kid)
        assert keys.sole is keys.by_kid["k1"]
        assert ("RS256", ISSUER) == (keys.by_kid["k1"].alg, keys.by_kid["k1"].issuer)

    def test_two_keys_have_no_sole_key(self) -> None:
        """With two signing keys a token must name its key."""
        keys = oidc.provider_keys({"keys": [rsa_jwk(), rsa_jwk()]}, ISSUER, "PS256")
        assert 2 == len(keys.by_kid)
        assert keys.sole is None
        assert {"PS256"} == {k.alg for k in keys.by_kid.values()}

    @pytest.mark.parametrize(
        "jwks",
        [
            {"keys": [rsa_jwk(d="AQAB")]},
            {"keys": [rsa_jwk(use="enc")]},
            {"keys": []},
            {"nokeys": True},
            [],
            {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
            {"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]},
        ],
        ids=["private", "only-enc", "empty", "no-list", "not-object", "symmetric", "alg-misfit"],
    )
    def test_what_the_gate_refuses_stays_refused(self, jwks: Any) -> None:
        """Private members, no signing key, a symmetric key, a key unfit for the configured
        algorithm: TrustInvalid, as for a trusted issuer's JWKS file."""
        with pytest.raises(TrustInvalid):
            oidc.provider_keys(jwks, ISSUER, "RS256")


def test_a_token_without_kid_needs_a_provider_with_one_key() -> None:
    """Check 4: a kid-less token is refused by a trusted issuer's key set (IDG-T04) and
    accepted with the provider's sole key; a kid not in the set is still IDG-T04."""
    key = IssuerKey.new(ISSUER.iss)
    payload = key.claims("n-1", now=NOW, aud=AUDIENCE)
    raw = key.sign({"typ": TOKEN_TYPE, "alg": "ES256"}, payload)
    text = json.dumps(key.jwks())
    trusted = TrustedKeys.build([(ISSUER, text)])
    provider = oidc.provider_keys(key.jwks(), ISSUER, "RS256")
    policy = tokens.TokenPolicy(token_type=TOKEN_TYPE)
    with pytest.raises(IdentityGateError) as refused:
        tokens.verify_token(raw, keys=trusted, now=NOW, nonce="n-1", policy=policy)
    assert "IDG-T04" == refused.value.details["idg"]
    verified = tokens.verify_token(raw, keys=provider, now=NOW, nonce="n-1", policy=policy)
    assert (key.kid, "subject-1") == (verified.kid, verified.sub)
    other = key.sign({"typ": TOKEN_TYPE, "alg": "ES256", "kid": "unknown"}, payload)
    with pytest.raises(IdentityGateError) as unknown:
        tokens.verify_token(other, keys=provider, now=NOW, nonce="n-1", policy=policy)
    assert "IDG-T04" == unknown.value.details["idg"]


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("access_denied", "access_denied"),
        ("invalid_grant", "invalid_grant"),
        ("<script>", "unknown"),
        ("Access Denied", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
        ("a" * 80, "a" * 40),
    ],
)
def test_provider_errors_are_echoed_only_as_plain_codes(given: object, shown: str) -> None:
    """Only RFC 6749-shaped error codes are repeated (at most 40 characters); anything else
    is 'unknown'."""
    assert shown == provider_error(given)


# -- the [oidc] settings -----------------------------------------------------------------------


def load(tmp_path: Path, oidc_text: str) -> Any:
    """Settings from a file holding ``[oidc]`` with ``oidc_text``."""
    path = tmp_path / "m.toml"
    path.write_text("[oidc]\n" + oidc_text, "utf-8")
    return load_settings(config_file=path, env={})


COMPLETE = (
    'issuer = "https://id.example.org"\nclient_id = "mailprov"\n'
    'redirect_url = "https://mail.example.org/api/v1/identity/oidc/callback"\n'
)


def test_a_complete_oidc_section_loads(tmp_path: Path) -> None:
    """An issuer with client id and redirect URL, a loopback http issuer, a framework with
    one of its levels and a return URL with {number} load as written."""
    config = load(
        tmp_path,
        COMPLETE + 'trust_framework = "ru_esia"\nmin_assurance_level = "standard"\n'
        'return_url = "https://portal.example.org/apply/{number}/done"\n',
    )
    assert ("https://id.example.org", "standard") == (
        config.oidc.issuer,
        config.oidc.min_assurance_level,
    )
    loopback = load(tmp_path, COMPLETE.replace("https://id.example.org", "http://127.0.0.1:9400"))
    assert "http://127.0.0.1:9400" == loopback.oidc.issuer


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('issuer = "http://id.example.org"', "oidc.issuer"),
        ('issuer = "https://user@id.example.org"', "oidc.issuer"),
        ('issuer = "https://id.example.org/?x=1"', "oidc.issuer"),
        ('issuer = "ftp://id.example.org"', "oidc.issuer"),
        ('issuer = "https://"', "oidc.issuer"),
        ('issuer = "https://id.example.org"', "oidc.client_id"),
        ('min_assurance_level = "confirmed"', "needs oidc.trust_framework"),
        ('trust_framework = "eidas"\nmin_assurance_level = "confirmed"', "not a level of eidas"),
        (COMPLETE + 'scopes = ["profile"]', "'openid'"),
        ('return_url = "/requests/{id}"', "oidc.return_url"),
        ('return_url = "//evil.example/x"', "oidc.return_url"),
        ('return_url = "/a b"', "oidc.return_url"),
        ('trust_framework = "esia"', "oidc.trust_framework"),
    ],
)
def test_oidc_settings_are_checked_where_they_load(
    tmp_path: Path, text: str, fragment: str
) -> None:
    """Plain http off loopback, URLs with user/query, a half-configured provider, a level
    without (or outside) its framework, scopes without openid, odd return URLs: refused."""
    with pytest.raises(ConfigInvalid) as refused:
        load(tmp_path, text + "\n")
    assert fragment in refused.value.message
