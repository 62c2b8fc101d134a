"""Identity by redirect, the pure part: what mailprov asks an OpenID Connect provider for,
the secrets of one sign-in, and the provider's keys as the gate's trusted keys.

A started sign-in is one random ``state``. Its ``nonce`` and PKCE ``code_verifier`` are
derived from it with the site pepper (HMAC-SHA256), so the store keeps neither: it
keeps only the HMAC of the state and of the browser's binding cookie (see
:mod:`mailprov.services.oidc`). The ID token that comes back is checked by
:func:`mailprov.identity.tokens.verify_token` — the same checks as an identity token
given to ``request verify`` — with the keys :func:`provider_keys` builds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from mailprov.errors import TrustInvalid
from mailprov.identity.tokens import TrustedIssuer, TrustedKeys

#: Random bytes of a state and of a browser binding (43 characters in base64url).
SECRET_BYTES = 32
#: The longest state or binding worth hashing (a real one is 43 characters).
VALUE_MAX = 128


def mac(pepper: bytes, purpose: str, value: str) -> str:
    """The stored form of a state or browser binding: HMAC-SHA256 with the pepper, hex."""
    data = f"oidc-{purpose}|".encode() + value[:VALUE_MAX].encode("utf-8", "replace")
    return hmac.new(pepper, data, hashlib.sha256).hexdigest()


def derive(pepper: bytes, purpose: str, state: str) -> str:
    """The ``nonce`` or PKCE ``code_verifier`` of a sign-in: base64url of an HMAC of its
    state (43 characters: a valid RFC 7636 verifier, 256 bits like a random one)."""
    digest = hmac.new(pepper, f"oidc-{purpose}|{state}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def claims_request(framework: str, required: Sequence[str]) -> dict[str, Any]:
    """The ``claims`` parameter asking for verified claims in the ID token (OpenID Connect
    for Identity Assurance 1.0 §5): the trust framework (``framework``, or any: null), its
    assurance level and time, and the ``required`` verified claims, each essential."""
    verification: dict[str, Any] = {
        "trust_framework": {"value": framework} if framework else None,
        "assurance_level": None,
        "time": None,
    }
    claims = {name: {"essential": True} for name in required}
    return {"id_token": {"verified_claims": {"verification": verification, "claims": claims}}}


def provider_keys(jwks: Any, issuer: TrustedIssuer, default_alg: str) -> TrustedKeys:
    """The provider's JWKS as the gate's trusted keys, bound to ``issuer``.

    RFC 7517 makes ``alg``, ``use`` and ``kid`` optional, and providers leave them out;
    the gate's JWKS rules (:func:`~mailprov.identity.tokens.parse_jwks`) want them. So an
    encryption key (``use: enc``) is left out, a key without ``alg`` gets ``default_alg``
    (``[oidc] key_algorithm``), one without ``use`` gets ``sig``, one without ``kid`` a
    local name; then every rule of the gate applies (public keys only, one asymmetric
    algorithm per key that fits its type). A set of one key also serves tokens without
    ``kid`` (OpenID Connect Core §10.1).

    Raises:
        TrustInvalid: not a key set, no signing key, or a key the gate refuses.
    """
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        raise TrustInvalid("the provider's JWKS has no 'keys' list")
    signing = []
    for index, jwk in enumerate(keys):
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        signing.append(
            {
                **jwk,
                "alg": jwk.get("alg") or default_alg,
                "use": "sig",
                "kid": jwk.get("kid") or f"{issuer.iss}#{index}",
            }
        )
    if not signing:
        raise TrustInvalid("the provider's JWKS holds no signing key")
    built = TrustedKeys.build([(issuer, json.dumps({"keys": signing}))])
    if len(built.by_kid) == 1:
        return TrustedKeys(built.by_kid, sole=next(iter(built.by_kid.values())))
    return built
