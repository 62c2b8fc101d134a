"""Trust configuration: identity token issuers (with their JWKS) and certificate authorities.

Issuers and CAs live in the store so that every host sharing it trusts the same
parties. A JWKS is checked when added (public keys only, kid/alg/use=sig, one
asymmetric algorithm per key) and copied in; ``add-issuer`` again replaces it.
A CA's CRL files are recorded by path and read at each verification, so a cron
job that refreshes them needs no mailprov command; a missing or stale CRL fails closed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from mailprov.errors import InvalidValue, NotFound, TrustInvalid
from mailprov.identity.certificates import TrustAnchor
from mailprov.identity.tokens import TrustedIssuer, TrustedKeys, parse_jwks
from mailprov.rules.assurance import DEFAULT_MIN_LEVEL, FRAMEWORK_LEVELS
from mailprov.store import audit
from mailprov.store.schema import trusted_cas, trusted_issuers, trusted_keys

if TYPE_CHECKING:
    from mailprov.identity.certificates import TrustAnchor
    from mailprov.services.accounts import Actor
    from mailprov.store import Store


@dataclass(frozen=True)
class IssuerInfo:
    """A trusted issuer as listed."""

    iss: str
    audience: str
    kids: tuple[str, ...]
    frameworks: dict[str, str]
    jwks_file: str

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "type": "issuer",
            "iss": self.iss,
            "audience": self.audience,
            "kids": list(self.kids),
            "frameworks": self.frameworks,
            "jwks_file": self.jwks_file,
        }


@dataclass(frozen=True)
class CaInfo:
    """A trusted CA as listed."""

    fingerprint: str
    subject: str
    crl_files: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "type": "ca",
            "fingerprint": self.fingerprint,
            "subject": self.subject,
            "crl_files": list(self.crl_files),
        }


def _frameworks(framework: str | None, min_level: str | None) -> dict[str, str]:
    if framework is None:
        if min_level is not None:
            raise InvalidValue("--min-level needs --framework")
        return dict(DEFAULT_MIN_LEVEL)
    if framework not in FRAMEWORK_LEVELS:
        raise InvalidValue(
            f"unknown trust framework '{framework}'", hint="ru_esia, eidas or nist_800_63A"
        )
    level = min_level or DEFAULT_MIN_LEVEL[framework]
    if level not in FRAMEWORK_LEVELS[framework]:
        raise InvalidValue(
            f"'{level}' is not a {framework} assurance level",
            hint="levels, lowest first: " + ", ".join(FRAMEWORK_LEVELS[framework]),
        )
    return {framework: level}


def add_issuer(
    store: Store,
    *,
    iss: str,
    jwks_file: Path,
    audience: str,
    actor: Actor,
    framework: str | None = None,
    min_level: str | None = None,
) -> tuple[IssuerInfo, bool]:
    """Trust ``iss`` with the keys of ``jwks_file``; returns (info, changed)."""
    if not iss or not audience:
        raise InvalidValue("--iss and --audience must not be empty")
    frameworks = _frameworks(framework, min_level)
    try:
        text = jwks_file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TrustInvalid(f"cannot read the JWKS file {jwks_file}: {exc}") from None
    keys = parse_jwks(text)
    row = {
        "iss": iss,
        "audience": audience,
        "jwks": text,
        "jwks_file": str(jwks_file.resolve()),
        "framework": framework,
        "min_level": frameworks.get(framework or "", None),
        "created_at": actor.now,
    }
    try:
        with store.begin() as conn:
            old = conn.execute(select(trusted_issuers).where(trusted_issuers.c.iss == iss)).first()
            if old is not None and all(old._mapping[k] == row[k] for k in row if k != "created_at"):
                return _issuer_info(old, [k for k, _, _ in keys]), False
            conn.execute(delete(trusted_issuers).where(trusted_issuers.c.iss == iss))
            conn.execute(delete(trusted_keys).where(trusted_keys.c.iss == iss))
            conn.execute(insert(trusted_issuers).values(**row))
            conn.execute(
                insert(trusted_keys), [{"kid": k, "iss": iss, "alg": a} for k, a, _ in keys]
            )
            audit.append(
                conn,
                at=actor.now,
                actor=actor.name,
                action="trust.add-issuer",
                target=iss,
                details={
                    "kids": [k for k, _, _ in keys],
                    "audience": audience,
                    "frameworks": frameworks,
                },
            )
    except IntegrityError:
        raise TrustInvalid(
            "a key id of this JWKS is already used by another issuer",
            hint="key ids must be unique across issuers; see 'mailprov identity trust list'",
        ) from None
    return IssuerInfo(
        iss, audience, tuple(k for k, _, _ in keys), frameworks, str(jwks_file.resolve())
    ), True


def _issuer_info(row: Any, kids: list[str]) -> IssuerInfo:
    return IssuerInfo(
        row.iss, row.audience, tuple(kids), _frameworks(row.framework, row.min_level), row.jwks_file
    )


def add_ca(
    store: Store, *, ca_file: Path, crl_files: list[Path], actor: Actor
) -> tuple[CaInfo, bool]:
    """Trust the CA certificate in ``ca_file``, with CRL files for what it issues."""
    from cryptography import x509  # noqa: PLC0415  (lazy: a heavy import only this path needs)
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    try:
        data = ca_file.read_bytes()
        cert = (
            x509.load_pem_x509_certificate(data)
            if b"-----BEGIN" in data
            else x509.load_der_x509_certificate(data)
        )
    except (OSError, ValueError) as exc:
        raise TrustInvalid(f"{ca_file} is not a readable CA certificate: {exc}") from None
    for path in crl_files:
        if not path.is_file():
            raise TrustInvalid(f"CRL file {path} does not exist")
    der = cert.public_bytes(Encoding.DER)
    fingerprint = hashlib.sha256(der).hexdigest()
    pem = cert.public_bytes(Encoding.PEM).decode("ascii")
    crls = "\n".join(str(p.resolve()) for p in crl_files)
    subject = cert.subject.rfc4514_string()
    with store.begin() as conn:
        old = conn.execute(
            select(trusted_cas).where(trusted_cas.c.fingerprint == fingerprint)
        ).first()
        if old is not None and old.crl_files == crls:
            return CaInfo(fingerprint, subject, tuple(crls.split("\n")) if crls else ()), False
        conn.execute(delete(trusted_cas).where(trusted_cas.c.fingerprint == fingerprint))
        conn.execute(
            insert(trusted_cas).values(
                fingerprint=fingerprint,
                subject=subject,
                pem=pem,
                crl_files=crls,
                created_at=actor.now,
            )
        )
        audit.append(
            conn,
            at=actor.now,
            actor=actor.name,
            action="trust.add-ca",
            target=fingerprint,
            details={"subject": subject, "crl_files": len(crl_files)},
        )
    return CaInfo(fingerprint, subject, tuple(crls.split("\n")) if crls else ()), True


def list_trust(store: Store) -> tuple[list[IssuerInfo], list[CaInfo]]:
    """Every trusted issuer and CA."""
    with store.read() as conn:
        issuers = conn.execute(select(trusted_issuers).order_by(trusted_issuers.c.iss)).all()
        kids: dict[str, list[str]] = {}
        for row in conn.execute(select(trusted_keys).order_by(trusted_keys.c.kid)):
            kids.setdefault(row.iss, []).append(row.kid)
        cas = conn.execute(select(trusted_cas).order_by(trusted_cas.c.subject)).all()
    return (
        [_issuer_info(r, kids.get(r.iss, [])) for r in issuers],
        [
            CaInfo(r.fingerprint, r.subject, tuple(p for p in r.crl_files.split("\n") if p))
            for r in cas
        ],
    )


def remove_trust(store: Store, name: str, *, actor: Actor) -> str:
    """Remove an issuer (by iss) or a CA (by fingerprint); returns which it was."""
    with store.begin() as conn:
        if (
            conn.execute(delete(trusted_keys).where(trusted_keys.c.iss == name)).rowcount
            or conn.execute(
                select(trusted_issuers.c.iss).where(trusted_issuers.c.iss == name)
            ).first()
        ):
            conn.execute(delete(trusted_issuers).where(trusted_issuers.c.iss == name))
            kind = "issuer"
        elif conn.execute(
            delete(trusted_cas).where(trusted_cas.c.fingerprint == name.lower())
        ).rowcount:
            kind = "ca"
        else:
            raise NotFound(
                f"no trusted issuer or CA named {name}", hint="see 'mailprov identity trust list'"
            )
        audit.append(
            conn, at=actor.now, actor=actor.name, action=f"trust.remove-{kind}", target=name
        )
    return kind


def load_keys(store: Store) -> TrustedKeys:
    """The trusted key set, built from the store."""
    with store.read() as conn:
        rows = conn.execute(select(trusted_issuers)).all()
    return TrustedKeys.build(
        [
            (TrustedIssuer(r.iss, r.audience, _frameworks(r.framework, r.min_level)), r.jwks)
            for r in rows
        ]
    )


def load_anchors(store: Store) -> list[TrustAnchor]:
    """The trusted CAs with their CRL file paths."""
    from cryptography import x509  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    with store.read() as conn:
        rows = conn.execute(select(trusted_cas)).all()
    return [
        TrustAnchor(
            x509.load_pem_x509_certificate(r.pem.encode("ascii")),
            tuple(Path(p) for p in r.crl_files.split("\n") if p),
        )
        for r in rows
    ]
