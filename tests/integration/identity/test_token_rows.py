"""Every row of IDENTITY.md table (A) through `mailprov request verify`: its code, the request
left as the table says (open; rejected for a name mismatch), and no mailbox created."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.identity.conftest import TOKEN_TYPE, Gate, IssuerKey, b64url


def _hs256_with_public_key(issuer: IssuerKey, nonce: str) -> str:
    from cryptography.hazmat.primitives import serialization

    secret = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"typ": TOKEN_TYPE, "alg": "HS256", "kid": issuer.kid}
    signing_input = (
        f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(issuer.claims(nonce)).encode())}"
    )
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def _alg_none(issuer: IssuerKey, nonce: str) -> str:
    header = {"typ": TOKEN_TYPE, "alg": "none", "kid": issuer.kid}
    body = b64url(json.dumps(issuer.claims(nonce)).encode())
    return f"{b64url(json.dumps(header).encode())}.{body}."


def _tampered(issuer: IssuerKey, nonce: str) -> str:
    head, body, sig = issuer.token(nonce).split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["sub"] = "someone-else"
    return f"{head}.{b64url(json.dumps(claims).encode())}.{sig}"


def _other_issuer_key(issuer: IssuerKey, nonce: str) -> str:
    forger = IssuerKey.new(issuer.iss)
    forger.kid = issuer.kid  # claims the trusted kid, signs with its own key
    return forger.token(nonce)


def _vc(**verification: Any) -> dict[str, Any]:
    base = {
        "trust_framework": "nist_800_63A",
        "assurance_level": "ial2",
        "time": "2026-01-10T10:00Z",
    }
    base.update(verification)
    return {
        "verification": base,
        "claims": {"given_name": "Anna", "family_name": "Smirnova", "birthdate": "1990-02-03"},
    }


Builder = Callable[[IssuerKey, str], str]


def t(offset: int = 0) -> int:
    """Now plus offset, taken when the token is built."""
    return int(time.time()) + offset


ROWS: list[tuple[str, str, Builder]] = [
    ("garbage", "IDG-T01", lambda i, n: "this is not a token"),
    ("oversized", "IDG-T01", lambda i, n: i.token(n, pad="x" * 9000)),
    ("header not JSON", "IDG-T01", lambda i, n: "bm90LWpzb24." + i.token(n).split(".", 1)[1]),
    ("wrong typ", "IDG-T02", lambda i, n: i.token(n, header={"typ": "JWT"})),
    ("jku header", "IDG-T03", lambda i, n: i.token(n, header={"jku": "https://evil.example/jwks"})),
    ("x5u header", "IDG-T03", lambda i, n: i.token(n, header={"x5u": "https://evil.example/c"})),
    ("jwk header", "IDG-T03", lambda i, n: i.token(n, header={"jwk": {"kty": "EC"}})),
    ("x5c header", "IDG-T03", lambda i, n: i.token(n, header={"x5c": ["MIIB"]})),
    ("zip header", "IDG-T03", lambda i, n: i.token(n, header={"zip": "DEF"})),
    ("crit header", "IDG-T03", lambda i, n: i.token(n, header={"crit": ["exp"]})),
    ("unknown kid", "IDG-T04", lambda i, n: i.token(n, header={"kid": "nobody"})),
    ("alg none", "IDG-T05", _alg_none),
    ("HS256 with the public key as secret", "IDG-T05", _hs256_with_public_key),
    ("ES384 header on an ES256 key", "IDG-T05", lambda i, n: i.token(n, header={"alg": "ES384"})),
    ("tampered payload", "IDG-T06", _tampered),
    ("forged key under a trusted kid", "IDG-T06", _other_issuer_key),
    ("iss not the key's issuer", "IDG-T07", lambda i, n: i.token(n, iss="https://other.example")),
    ("wrong aud", "IDG-T08", lambda i, n: i.token(n, aud="urn:mailprov:elsewhere")),
    ("expired", "IDG-T09", lambda i, n: i.token(n, iat=t(-900), nbf=t(-900), exp=t(-400))),
    ("not yet valid", "IDG-T10", lambda i, n: i.token(n, nbf=t(300), exp=t(500))),
    ("lifetime over 600 s", "IDG-T11", lambda i, n: i.token(n, iat=t(), exp=t(601))),
    ("missing verified_claims", "IDG-T12", lambda i, n: i.token(n, verified_claims=None)),
    ("missing sub", "IDG-T12", lambda i, n: i.token(n, sub=None)),
    ("jti over 128 chars", "IDG-T12", lambda i, n: i.token(n, jti="j" * 129)),
    ("nonce of another request", "IDG-T13", lambda i, n: i.token("another-requests-nonce")),
    (
        "framework not accepted",
        "IDG-V01",
        lambda i, n: i.token(
            n, verified_claims=_vc(trust_framework="https://x/trust_framework/de_aml")
        ),
    ),
    (
        "level too low",
        "IDG-V02",
        lambda i, n: i.token(n, verified_claims=_vc(assurance_level="ial1")),
    ),
    (
        "verification too old",
        "IDG-V03",
        lambda i, n: i.token(n, verified_claims=_vc(time="2019-01-01T00:00Z")),
    ),
    (
        "verification time missing",
        "IDG-V03",
        lambda i, n: i.token(
            n,
            verified_claims={
                "verification": {"trust_framework": "nist_800_63A", "assurance_level": "ial2"}
            },
        ),
    ),
    (
        "birthdate missing",
        "IDG-V04",
        lambda i, n: i.token(
            n, verified_claims={**_vc(), "claims": {"given_name": "A", "family_name": "B"}}
        ),
    ),
]


@pytest.mark.parametrize(("case", "idg", "build"), ROWS, ids=[r[0] for r in ROWS])
def test_token_row(gate: Gate, case: str, idg: str, build: Builder) -> None:
    """A bad token fails with its IDG code naming the request; it stays open, no mailbox."""
    req = gate.open()
    status, data = gate.verify_token(req["id"], build(gate.issuer, req["nonce"]))
    assert data["error"]["idg"] == idg, (case, data)
    assert data["error"]["request_id"] == req["id"]
    assert data["error"]["message"].startswith(idg + ": ")
    assert status == data["error"]["exit_status"] != 0
    assert gate.state(req["id"]) == "open"
    assert gate.mailboxes() == []


def test_name_mismatch_rejects(gate: Gate) -> None:
    """IDG-V05: a requested owner name that differs from the verified one rejects the request."""
    req = gate.open(name="Boris Petrov")
    status, data = gate.verify_token(req["id"], gate.issuer.token(req["nonce"]))
    assert (status, data["error"]["idg"]) == (11, "IDG-V05")
    assert gate.state(req["id"]) == "rejected"
    assert gate.mailboxes() == []


def test_name_match_normalised(gate: Gate) -> None:
    """IDG-V05 passes for the same name in another case, order and spacing (NFKC + casefold)."""
    req = gate.open(name="  SMIRNOVA   anna ")
    status, data = gate.verify_token(req["id"], gate.issuer.token(req["nonce"]))
    assert status == 0, data
    assert data["request"]["state"] == "identity-verified"


def test_replayed_jti(gate: Gate) -> None:
    """IDG-T14: a second token with an already used (iss, jti) is refused even for a new request."""
    first = gate.open("anna")
    token = gate.issuer.token(first["nonce"], jti="fixed-jti-1")
    assert gate.verify_token(first["id"], token)[0] == 0
    second = gate.open("boris")
    status, data = gate.verify_token(
        second["id"], gate.issuer.token(second["nonce"], jti="fixed-jti-1")
    )
    assert (status, data["error"]["idg"]) == (43, "IDG-T14")
    assert gate.state(second["id"]) == "open"


def test_failures_are_audited_without_the_token(gate: Gate) -> None:
    """A failed check is audited with its IDG code; no token or personal data is stored."""
    req = gate.open()
    token = gate.issuer.token(req["nonce"], aud="urn:wrong")
    gate.verify_token(req["id"], token)
    text = gate.audit_text()
    assert "request.verify-failed" in text
    assert "IDG-T08" in text
    assert token.split(".")[1] not in text
    assert "Smirnova" not in text


def test_key_of_another_trusted_issuer(gate: Gate) -> None:
    """IDG-T07: a token signed by issuer B's key but claiming issuer A's iss is refused."""
    other = IssuerKey.new("https://other-idp.example")
    (gate.folder / "other.json").write_text(json.dumps(other.jwks()))
    status, _ = gate.cli.json(
        "identity",
        "trust",
        "add-issuer",
        "--iss",
        other.iss,
        "--jwks",
        str(gate.folder / "other.json"),
        "--audience",
        "urn:mailprov:test-site",
    )
    assert status == 0
    req = gate.open()
    token = other.token(req["nonce"], iss=gate.issuer.iss)
    status, data = gate.verify_token(req["id"], token)
    assert (status, data["error"]["idg"]) == (40, "IDG-T07")
    assert gate.state(req["id"]) == "open"
