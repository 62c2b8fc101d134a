"""A local TEST issuer of identity tokens (form A), for test rigs and demos only.

``init`` makes an ES256 key pair in a folder: ``private.jwk`` (0600),
``jwks.json`` (public) and ``issuer.json`` (iss, audience). ``issue_token``
signs a token. It is trusted only when its JWKS is added with
``mailprov identity trust add-issuer`` like any other issuer; its ``iss`` says TEST.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailprov.errors import FileExists, InvalidValue
from mailprov.identity.tokens import DEFAULT_TYPE
from mailprov.rules.assurance import framework_name
from mailprov.system.files import atomic_write
from mailprov.system.secrets import SecretKind, read_secret, write_secret

MAX_TTL = 600
_KEY = SecretKind(
    "test issuer key", InvalidValue, InvalidValue, hint="make a new test issuer folder"
)


@dataclass(frozen=True)
class TestIssuer:
    """A test issuer's folder and settings."""

    folder: Path
    iss: str
    audience: str
    kid: str

    @property
    def jwks_file(self) -> Path:
        """The public JWKS to trust."""
        return self.folder / "jwks.json"


def init_issuer(folder: Path, *, audience: str) -> TestIssuer:
    """Create a test issuer in ``folder`` (refuses to overwrite one)."""
    from joserfc.jwk import ECKey  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    folder.mkdir(parents=True, exist_ok=True)
    private = folder / "private.jwk"
    if private.exists():
        raise FileExists(f"{folder} already holds a test issuer", hint="choose another folder")
    kid = "test-" + secrets.token_hex(6)
    key = ECKey.generate_key("P-256", parameters={"kid": kid, "alg": "ES256", "use": "sig"})
    write_secret(private, json.dumps(key.as_dict(private=True)).encode("utf-8"))
    public = key.as_dict(private=False)
    atomic_write(folder / "jwks.json", json.dumps({"keys": [public]}, indent=2) + "\n")
    iss = f"https://test-issuer.invalid/{secrets.token_hex(4)}"
    config = {
        "iss": iss,
        "audience": audience,
        "kid": kid,
        "warning": "TEST ISSUER - not an identity provider",
    }
    atomic_write(folder / "issuer.json", json.dumps(config, indent=2) + "\n")
    return TestIssuer(folder, iss, audience, kid)


def load_issuer(folder: Path) -> tuple[TestIssuer, Any]:
    """The test issuer in ``folder`` and its private key."""
    from joserfc.jwk import ECKey  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    try:
        config = json.loads((folder / "issuer.json").read_text())
        key = ECKey.import_key(json.loads(read_secret(folder / "private.jwk", _KEY)))
    except (OSError, ValueError) as exc:
        raise InvalidValue(
            f"{folder} is not a test issuer folder ({exc})",
            hint="create one with 'mailprov identity test-issuer init DIR'",
        ) from None
    return TestIssuer(folder, config["iss"], config["audience"], config["kid"]), key


def issue_token(
    folder: Path,
    *,
    nonce: str,
    sub: str,
    level: str,
    framework: str = "nist_800_63A",
    claims: dict[str, Any] | None = None,
    ttl: int = 300,
    now: int,
) -> str:
    """Sign a form-(A) token for ``nonce`` (the request's) about subject ``sub``."""
    from joserfc import jwt  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    if not 1 <= ttl <= MAX_TTL:
        raise InvalidValue(f"--ttl must be 1-{MAX_TTL} seconds, not {ttl}")
    if framework_name(framework) is None:
        raise InvalidValue(
            f"unknown trust framework '{framework}'", hint="ru_esia, eidas or nist_800_63A"
        )
    issuer, key = load_issuer(folder)
    person = {"given_name": "Test", "family_name": "Person", "birthdate": "1990-01-01"}
    person.update(claims or {})
    payload = {
        "iss": issuer.iss,
        "sub": sub,
        "aud": issuer.audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": secrets.token_urlsafe(18),
        "nonce": nonce,
        "acr": "test",
        "verified_claims": {
            "verification": {
                "trust_framework": framework,
                "assurance_level": level,
                "time": _iso(now),
                "evidence": [{"type": "test-issuer"}],
            },
            "claims": person,
        },
    }
    header = {"typ": DEFAULT_TYPE, "alg": "ES256", "kid": issuer.kid}
    return str(jwt.encode(header, payload, key, algorithms=["ES256"]))


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
