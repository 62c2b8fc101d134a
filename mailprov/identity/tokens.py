"""Identity assertion tokens (proof A of ../shared/IDENTITY.md): trusted keys and the check list.

:func:`verify_token` runs checks 1-17 of table (A) in order and stops at the
first failure with its IDG code; the caller (the provisioning service) adds
the owner match (18) and the replay insert (19) in its transaction. Keys come
only from JWKS data the site chose — a trusted issuer's local JWKS file, or the
configured OpenID Connect provider's ``jwks_uri`` (identity by redirect) — one
algorithm per key, asymmetric algorithms only; ``jku``/``x5u``/``jwk``/``x5c`` are
never followed, they are refused.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mailprov.errors import TrustInvalid, idg_error
from mailprov.rules.assurance import FRAMEWORK_LEVELS, framework_name

MAX_TOKEN = 8192
LEEWAY = 60
MAX_LIFETIME = 600
MAX_JTI = 128
DEFAULT_TYPE = "mailprov-idv+jwt"

#: Asymmetric algorithms only: 'none' and HMAC can never be configured (algorithm confusion).
ALLOWED_ALGS = (
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
)
_KTY_FOR_ALG = {"ES": "EC", "Ed": "OKP", "RS": "RSA", "PS": "RSA"}
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
FORBIDDEN_HEADERS = ("crit", "jku", "x5u", "jwk", "x5c", "zip")
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


@dataclass(frozen=True)
class TrustedIssuer:
    """An identity provider: its exact ``iss``, our audience, and accepted frameworks/levels."""

    iss: str
    audience: str
    frameworks: Mapping[str, str]  # framework -> minimum level


@dataclass(frozen=True)
class TrustedKey:
    """One verification key, bound to its issuer and its single algorithm."""

    kid: str
    alg: str
    key: Any  # a joserfc key (public only)
    issuer: TrustedIssuer


@dataclass(frozen=True)
class TrustedKeys:
    """The trusted key set, by ``kid`` (unique across issuers)."""

    by_kid: Mapping[str, TrustedKey] = field(default_factory=dict)
    #: The key a token without ``kid`` is checked with: set only for an OpenID Connect
    #: provider whose key set holds one signing key (OpenID Connect Core §10.1 lets its
    #: ID tokens leave ``kid`` out); None everywhere else, so check 4 refuses them.
    sole: TrustedKey | None = None

    @classmethod
    def build(cls, issuers: Sequence[tuple[TrustedIssuer, str]]) -> TrustedKeys:
        """From ``(issuer, jwks_text)`` pairs; a kid used twice is a configuration error."""
        found: dict[str, TrustedKey] = {}
        for issuer, text in issuers:
            for kid, alg, key in parse_jwks(text):
                if kid in found:
                    raise TrustInvalid(
                        f"key id '{kid}' is used by {found[kid].issuer.iss} and {issuer.iss}"
                    )
                found[kid] = TrustedKey(kid, alg, key, issuer)
        return cls(found)


@dataclass(frozen=True)
class TokenPolicy:
    """The site's token policy ([identity] settings)."""

    token_type: str = DEFAULT_TYPE
    max_verification_age_days: int = 1095
    required_claims: tuple[str, ...] = ("family_name", "given_name", "birthdate")


@dataclass(frozen=True)
class VerifiedIdentity:
    """What a verified token proves. ``claims`` is personal data: never log or audit it."""

    iss: str
    sub: str
    jti: str
    kid: str
    exp: int
    framework: str
    level: str
    claims: Mapping[str, Any] = field(repr=False)

    @property
    def account(self) -> str:
        """The gate's account key for this person: ``iss|sub``."""
        return f"{self.iss}|{self.sub}"

    @property
    def display_name(self) -> str:
        """Given and family name from the verified claims."""
        parts = [self.claims.get("given_name"), self.claims.get("family_name")]
        return " ".join(str(p) for p in parts if p)


def parse_jwks(text: str) -> list[tuple[str, str, Any]]:
    """Validate a JWKS document and import its keys: ``[(kid, alg, key)]``.

    Raises:
        TrustInvalid: not JSON, private members present, ``kid``/``alg``/``use=sig`` missing,
            a symmetric or unknown algorithm, or a key that does not fit its algorithm.
    """
    from joserfc.errors import JoseError  # noqa: PLC0415  (lazy: a heavy import only this path needs)
    from joserfc.jwk import import_key  # noqa: PLC0415  (lazy: a heavy import only this path needs)
    from joserfc.jws import JWSRegistry  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    try:
        data = json.loads(text)
    except ValueError:
        raise TrustInvalid(
            "the JWKS file is not JSON", hint='give a JWKS: {"keys": [...]}'
        ) from None
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, list) or not keys:
        raise TrustInvalid("the JWKS has no 'keys' list", hint='give a JWKS: {"keys": [...]}')
    out = []
    for index, jwk in enumerate(keys):
        where = f"JWKS key #{index + 1}"
        if not isinstance(jwk, dict):
            raise TrustInvalid(f"{where} is not an object")
        private = sorted(PRIVATE_MEMBERS.intersection(jwk))
        if private:
            raise TrustInvalid(
                f"{where} contains private key members ({', '.join(private)}); refusing it",
                hint="publish only the public keys; the private key stays with the issuer",
            )
        for member in ("kid", "alg", "use"):
            if not isinstance(jwk.get(member), str) or not jwk[member]:
                raise TrustInvalid(
                    f"{where} lacks '{member}'", hint="each key needs kid, alg and use=sig"
                )
        if jwk["use"] != "sig":
            raise TrustInvalid(f"{where} has use={jwk['use']!r:.20}, not 'sig'")
        alg = jwk["alg"]
        if alg not in ALLOWED_ALGS or jwk.get("kty") != _KTY_FOR_ALG[alg[:2]]:
            raise TrustInvalid(
                f"{where} has algorithm {alg!r:.20} with key type {jwk.get('kty')!r:.10}",
                hint="allowed: " + ", ".join(ALLOWED_ALGS),
            )
        try:
            JWSRegistry.algorithms[alg]
            key = import_key(jwk, parameters={"alg": alg})
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise TrustInvalid(f"{where} is not a valid {alg} key: {exc}") from None
        out.append((jwk["kid"], alg, key))
    return out


def _b64json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def _header(raw: str, rid: dict[str, Any]) -> dict[str, Any]:
    """Check 1: size, three base64url segments, a JSON object header."""
    if len(raw) > MAX_TOKEN or not _COMPACT.fullmatch(raw):
        raise idg_error("IDG-T01", **rid)
    parts = raw.split(".")
    try:
        header = _b64json(parts[0])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise idg_error("IDG-T01", **rid) from None
    if not isinstance(header, dict):
        raise idg_error("IDG-T01", **rid)
    return header


def _signed_claims(raw: str, trusted: TrustedKey, rid: dict[str, Any]) -> dict[str, Any]:
    """Check 6: the signature, with joserfc's algorithm for the key's one ``alg`` and its typed
    key (what ``jwt.decode(tok, key, algorithms=[key.alg])`` does, without decoding twice)."""
    from joserfc.jws import JWSRegistry  # noqa: PLC0415  (lazy: the CLI imports this module)

    head, body, sig = raw.split(".")
    try:
        signature = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    except (ValueError, binascii.Error):
        raise idg_error("IDG-T06", **rid) from None
    algorithm = JWSRegistry.algorithms[trusted.alg]
    if not algorithm.verify(f"{head}.{body}".encode("ascii"), signature, trusted.key):
        raise idg_error("IDG-T06", **rid)
    try:
        claims = _b64json(body)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise idg_error("IDG-T01", **rid) from None
    if not isinstance(claims, dict):
        raise idg_error("IDG-T01", **rid)
    return claims


def _int_claim(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise idg_error("IDG-T12", name=name)
    return int(value)


def verify_token(  # noqa: PLR0912  (the check list is one ordered sequence)
    raw: str,
    *,
    keys: TrustedKeys,
    now: int,
    nonce: str | None = None,
    policy: TokenPolicy | None = None,
    request_id: str | None = None,
) -> VerifiedIdentity:
    """Run checks 1-17 of IDENTITY.md table (A) on ``raw``; stop at the first failure.

    Args:
        raw: the compact JWS (whitespace around it is ignored).
        keys: the trusted keys.
        now: Unix seconds.
        nonce: the pending request's nonce (check 13), or None to skip it.
        policy: the site's token policy.
        request_id: named in every error.

    Raises:
        IdentityGateError: its ``idg`` detail names the failed check.
    """
    policy = policy or TokenPolicy()
    rid: dict[str, Any] = {"request_id": request_id}
    raw = raw.strip()
    header = _header(raw, rid)
    typ = header.get("typ")
    if typ != policy.token_type:
        raise idg_error("IDG-T02", typ=typ, cfg=policy.token_type, **rid)
    for name in FORBIDDEN_HEADERS:
        if name in header:
            raise idg_error("IDG-T03", name=name, **rid)
    kid = header.get("kid")
    trusted = keys.by_kid.get(kid) if isinstance(kid, str) else keys.sole if kid is None else None
    if trusted is None:
        raise idg_error("IDG-T04", kid=kid, **rid)
    alg = header.get("alg")
    if alg not in ALLOWED_ALGS or alg != trusted.alg:
        raise idg_error("IDG-T05", alg=alg, **rid)
    claims = _signed_claims(raw, trusted, rid)
    issuer = trusted.issuer
    if claims.get("iss") != issuer.iss:
        raise idg_error("IDG-T07", iss=claims.get("iss"), kid=kid, **rid)
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if issuer.audience not in [a for a in auds if isinstance(a, str)]:
        raise idg_error("IDG-T08", **rid)
    exp = _int_claim(claims, "exp")
    if exp <= now - LEEWAY:
        shown = datetime.fromtimestamp(exp, UTC).strftime("%Y-%m-%d %H:%M:%S")
        raise idg_error("IDG-T09", exp=shown, **rid)
    iat = _int_claim(claims, "iat")
    nbf = _int_claim(claims, "nbf") if "nbf" in claims else iat
    if nbf > now + LEEWAY or iat > now + LEEWAY:
        raise idg_error("IDG-T10", **rid)
    if exp - iat > MAX_LIFETIME:
        raise idg_error("IDG-T11", **rid)
    for name in ("sub", "jti", "nonce"):
        value = claims.get(name)
        if not isinstance(value, str) or not value or (name == "jti" and len(value) > MAX_JTI):
            raise idg_error("IDG-T12", name=name, **rid)
    if not isinstance(claims.get("verified_claims"), dict | list):
        raise idg_error("IDG-T12", name="verified_claims", **rid)
    if nonce is not None and not hmac.compare_digest(
        claims["nonce"].encode("utf-8"), nonce.encode("utf-8")
    ):
        raise idg_error("IDG-T13", **rid)
    framework, level, verified = _verified_claims(
        claims["verified_claims"], issuer, now, policy, rid
    )
    return VerifiedIdentity(
        iss=issuer.iss,
        sub=claims["sub"],
        jti=claims["jti"],
        kid=trusted.kid,
        exp=exp,
        framework=framework,
        level=level,
        claims=verified,
    )


def _verified_claims(
    value: Any, issuer: TrustedIssuer, now: int, policy: TokenPolicy, rid: dict[str, Any]
) -> tuple[str, str, dict[str, Any]]:
    """Checks 14-17: framework accepted, level high enough, recent, required claims present."""
    elements = value if isinstance(value, list) else [value]
    for element in elements:
        if not isinstance(element, dict):
            continue
        verification = element.get("verification")
        if not isinstance(verification, dict):
            continue
        framework = framework_name(verification.get("trust_framework"))
        if framework is None or framework not in issuer.frameworks:
            continue
        levels = FRAMEWORK_LEVELS[framework]
        minimum = issuer.frameworks[framework]
        level = verification.get("assurance_level")
        if level not in levels or levels.index(level) < levels.index(minimum):
            raise idg_error("IDG-V02", lvl=level, min=minimum, **rid)
        when = _parse_time(verification.get("time"))
        max_age = policy.max_verification_age_days * 86_400
        if when is None or when < now - max_age:
            raise idg_error("IDG-V03", time=verification.get("time", "no time given"), **rid)
        claims = element.get("claims")
        claims = claims if isinstance(claims, dict) else {}
        for name in policy.required_claims:
            if not isinstance(claims.get(name), str) or not claims[name].strip():
                raise idg_error("IDG-V04", claim=name, **rid)
        return framework, str(level), claims
    raise idg_error("IDG-V01", **rid)


def _parse_time(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def normalise_name(name: str, *, yo_as_ye: bool = True) -> str:
    """A name for comparison: NFKC, case-folded, single spaces, optionally ё = е."""  # noqa: RUF002
    text = " ".join(unicodedata.normalize("NFKC", name).casefold().split())
    return text.replace("ё", "е") if yo_as_ye else text  # noqa: RUF001  (Cyrillic on purpose)


def owner_matches(requested: str, claims: Mapping[str, Any], *, yo_as_ye: bool = True) -> bool:
    """Check 18: the requested owner name equals the verified name (given/middle/family order)."""
    given, family = str(claims.get("given_name", "")), str(claims.get("family_name", ""))
    middle = str(claims.get("middle_name", ""))
    variants = {
        f"{given} {family}",
        f"{family} {given}",
        f"{given} {middle} {family}",
        f"{family} {given} {middle}",
    }
    wanted = normalise_name(requested, yo_as_ye=yo_as_ye)
    return any(
        hmac.compare_digest(wanted.encode(), normalise_name(v, yo_as_ye=yo_as_ye).encode())
        for v in variants
    )
