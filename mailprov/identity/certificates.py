"""Certificates plus proof of possession (proof B of ../shared/IDENTITY.md).

The gate side (:func:`verify_certificate`) runs checks C01, C04 and C07-C13:
file sniffing, the leaf's key algorithm, validity dates, the chain (cryptography's
``x509.verification`` client verifier with an EKU policy), our own CRL check for
every non-root certificate in the chain (fail closed: no fresh, validly signed
CRL means no), and the signature over the gate-issued challenge. The client side
(:func:`load_p12`, :func:`sign_challenge`) opens a ``.p12`` in memory only.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailprov.errors import idg_error
from mailprov.model import Secret

if TYPE_CHECKING:
    from cryptography import x509

MAX_FILE = 64 * 1024
MAX_KDF_ITERATIONS = 1_000_000
PASSWORD_MIN, PASSWORD_MAX = 8, 64
RSA_MIN_BITS = 2048
CHALLENGE_PREFIX = "mailprov-challenge-v1"

#: GOST R 34.10 public-key OIDs (2001, 2012-256, 2012-512): named in the refusal.
GOST_OIDS = {
    "1.2.643.2.2.19": "GOST R 34.10-2001",
    "1.2.643.7.1.1.1.1": "GOST R 34.10-2012 (256 bit)",
    "1.2.643.7.1.1.1.2": "GOST R 34.10-2012 (512 bit)",
}
EKU_CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"
EKU_EMAIL_PROTECTION = "1.3.6.1.5.5.7.3.4"


@dataclass(frozen=True)
class TrustAnchor:
    """A configured CA certificate and the CRL files that cover what it issues."""

    certificate: x509.Certificate
    crl_files: tuple[Path, ...]


@dataclass(frozen=True)
class CertificateIdentity:
    """What a verified certificate proves (no personal data beyond the subject's name)."""

    spki_sha256: str
    serial: int
    common_name: str

    @property
    def account(self) -> str:
        """The gate's account key for this key holder."""
        return f"spki:{self.spki_sha256}"


# -- reading files ------------------------------------------------------------------


def _der_length(data: bytes, pos: int) -> tuple[int, int]:
    """Length of the DER element whose length octets start at ``pos``: (length, content start)."""
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if count == 0 or count > 4 or pos + 1 + count > len(data):
        raise ValueError("bad DER length")
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def sniff(data: bytes, *, request_id: str | None = None) -> str:
    """Check C01: ``pem``, ``der`` (a certificate) or ``pkcs12``; at most 64 KiB."""
    if len(data) > MAX_FILE or not data:
        raise idg_error("IDG-C01", request_id=request_id)
    if b"-----BEGIN " in data[:1024]:
        return "pem"
    try:
        if data[0] == 0x30:
            _, start = _der_length(data, 1)
            if data[start : start + 3] == b"\x02\x01\x03":
                return "pkcs12"
            if data[start] == 0x30:
                return "der"
    except (ValueError, IndexError):
        pass
    raise idg_error("IDG-C01", request_id=request_id)


def load_certificates(data: bytes, *, request_id: str | None = None) -> list[x509.Certificate]:
    """The certificate(s) of a ``.cer``/``.pem``/``.der`` file: leaf first (C01, C04)."""
    from cryptography import x509  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    kind = sniff(data, request_id=request_id)
    if kind == "pkcs12":
        raise idg_error(
            "IDG-C04",
            request_id=request_id,
            hint="the gate takes the certificate only; sign with 'identity sign-challenge'",
        )
    try:
        certs = (
            x509.load_pem_x509_certificates(data)
            if kind == "pem"
            else [x509.load_der_x509_certificate(data)]
        )
    except ValueError:
        raise idg_error("IDG-C04", request_id=request_id) from None
    return certs


def _walk_iterations(data: bytes, depth: int = 0) -> list[int]:
    """Iteration counts in a PKCS#12 file: the INTEGER after a salt OCTET STRING.

    PBKDF2-params, pkcs-12PbeParams and MacData all put ``iterations`` right after
    the salt. OCTET STRINGs that hold DER (the authenticated safe) are walked too.
    """
    found: list[int] = []
    pos, children = 0, []
    while pos < len(data):
        tag = data[pos]
        length, start = _der_length(data, pos + 1)
        end = start + length
        if end > len(data):
            raise ValueError("truncated DER")
        children.append((tag, data[start:end]))
        pos = end
    for i, (tag, content) in enumerate(children):
        if tag == 0x02 and i > 0 and children[i - 1][0] == 0x04 and 0 < len(content) <= 9:
            found.append(int.from_bytes(content, "big", signed=False))
        if depth < 32 and (tag & 0x20 or tag == 0x04) and content:
            try:
                found.extend(_walk_iterations(content, depth + 1))
            except (ValueError, IndexError):
                if tag & 0x20:
                    raise
    return found


def pkcs12_iterations(data: bytes) -> int:
    """The largest key-derivation iteration count in a PKCS#12 file (0 if none is found)."""
    return max(_walk_iterations(data), default=0)


def load_p12(data: bytes, password: Secret) -> tuple[Any, x509.Certificate, list[x509.Certificate]]:
    """Open a ``.p12``/``.pfx`` in memory (client side): checks C01-C06 in order.

    Returns:
        (private key, certificate, additional certificates). The key never leaves memory.
    """
    from cryptography.hazmat.primitives.serialization import pkcs12  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    if sniff(data) != "pkcs12":
        raise idg_error("IDG-C04", hint="give a .p12/.pfx container")
    clear = password.reveal()
    if not PASSWORD_MIN <= len(clear) <= PASSWORD_MAX:
        raise idg_error("IDG-C02")
    try:
        iterations = pkcs12_iterations(data)
    except (ValueError, IndexError):
        raise idg_error("IDG-C04") from None
    if iterations > MAX_KDF_ITERATIONS:
        raise idg_error("IDG-C03")
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, clear.encode("utf-8"))
    except ValueError as exc:
        if "Could not deserialize" in str(exc):
            raise idg_error("IDG-C04") from None
        raise idg_error("IDG-C05") from None
    if key is None or cert is None or key.public_key() != cert.public_key():
        raise idg_error("IDG-C06")
    return key, cert, list(extra)


def challenge_message(challenge: str) -> bytes:
    """The bytes that are signed: the challenge string as the gate printed it."""
    return challenge.strip().encode("ascii")


def sign_challenge(key: Any, challenge: str) -> bytes:
    """Sign the challenge: RSA-PSS/SHA-256, ECDSA with the curve's hash, or Ed25519."""
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415  (lazy: a heavy import only this path needs)
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    message = challenge_message(challenge)
    if isinstance(key, rsa.RSAPrivateKey):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
        return key.sign(message, pss, hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(message, ec.ECDSA(_ec_hash(key.curve)))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    raise idg_error("IDG-C07", alg=type(key).__name__)


def _ec_hash(curve: Any) -> Any:
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    return hashes.SHA384() if curve.key_size >= 384 else hashes.SHA256()


# -- the gate's checks ----------------------------------------------------------------


def spki_sha256(cert: x509.Certificate) -> str:
    """SHA-256 over the DER SubjectPublicKeyInfo: the same for every certificate of one key."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def check_key_algorithm(cert: x509.Certificate, *, request_id: str | None = None) -> None:
    """Check C07: RSA >= 2048, P-256/P-384, Ed25519; GOST and anything else refused by name."""
    from cryptography.exceptions import UnsupportedAlgorithm  # noqa: PLC0415  (lazy: a heavy import only this path needs)
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    oid = cert.public_key_algorithm_oid.dotted_string
    if oid in GOST_OIDS:
        raise idg_error("IDG-C07", alg=GOST_OIDS[oid], request_id=request_id)
    try:
        key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError):
        raise idg_error("IDG-C07", alg=f"OID {oid}", request_id=request_id) from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < RSA_MIN_BITS:
            raise idg_error("IDG-C07", alg=f"RSA-{key.key_size}", request_id=request_id)
        return
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1"):
            raise idg_error("IDG-C07", alg=f"EC {key.curve.name}", request_id=request_id)
        return
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise idg_error(
            "IDG-C07", alg=type(key).__name__.removesuffix("PublicKey"), request_id=request_id
        )


def _date(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[TrustAnchor],
    *,
    now: int,
    ekus: Sequence[str],
    max_depth: int,
    request_id: str | None,
) -> list[x509.Certificate]:
    """Check C10: the client verifier with our EKU policy; returns the chain, leaf first."""
    from cryptography import x509  # noqa: PLC0415  (lazy: a heavy import only this path needs)
    from cryptography.x509.verification import (  # noqa: PLC0415  (lazy: a heavy import only this path needs)
        Criticality,
        ExtensionPolicy,
        PolicyBuilder,
        Store,
        VerificationError,
    )

    allowed = {EKU_CLIENT_AUTH, EKU_EMAIL_PROTECTION, *ekus}

    def eku_ok(_policy: Any, _cert: Any, value: Any) -> None:
        if value is None or not {o.dotted_string for o in value} & allowed:
            msg = "no accepted extended key usage"
            raise ValueError(msg)

    ee_policy = ExtensionPolicy.webpki_defaults_ee().require_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, eku_ok
    )
    if not anchors:
        raise idg_error("IDG-C10", request_id=request_id, hint="no CA is trusted yet")
    try:
        verifier = (
            PolicyBuilder()
            .store(Store([a.certificate for a in anchors]))
            .time(datetime.fromtimestamp(now, UTC))
            .max_chain_depth(max_depth)
            .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy)
            .build_client_verifier()
        )
        verified = verifier.verify(leaf, list(intermediates))
    except (VerificationError, ValueError) as exc:
        raise idg_error("IDG-C10", request_id=request_id) from exc
    return list(verified.chain)


def _load_crls(anchors: Sequence[TrustAnchor]) -> list[x509.CertificateRevocationList]:
    from cryptography import x509  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    crls = []
    for anchor in anchors:
        for path in anchor.crl_files:
            try:
                data = path.read_bytes()
            except OSError:
                continue  # a missing CRL file is caught below: fail closed
            try:
                crls.append(
                    x509.load_pem_x509_crl(data)
                    if b"-----BEGIN" in data
                    else x509.load_der_x509_crl(data)
                )
            except ValueError:
                continue
    return crls


def _check_revocation(
    chain: Sequence[x509.Certificate],
    anchors: Sequence[TrustAnchor],
    *,
    now: int,
    request_id: str | None,
) -> None:
    """Checks C11 and C12 for every non-root certificate of the chain."""
    from cryptography import x509  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    crls = _load_crls(anchors)
    moment = datetime.fromtimestamp(now, UTC)
    for cert, issuer in itertools.pairwise(chain):
        usable = [
            crl
            for crl in crls
            if crl.issuer == cert.issuer
            and crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
            and crl.last_update_utc <= moment
            and crl.next_update_utc is not None
            and crl.next_update_utc > moment
        ]
        if not usable:
            raise idg_error("IDG-C11", request_id=request_id)
        for crl in usable:
            revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if revoked is not None:
                reason = "unspecified"
                try:
                    ext = revoked.extensions.get_extension_for_class(x509.CRLReason)
                    reason = ext.value.reason.value
                except x509.ExtensionNotFound:
                    pass
                raise idg_error(
                    "IDG-C12",
                    date=_date(revoked.revocation_date_utc),
                    reason=reason,
                    request_id=request_id,
                )


def verify_possession(cert: x509.Certificate, challenge: str, signature: bytes) -> bool:
    """Check C13's signature part: the leaf's key signed the challenge."""
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415  (lazy: a heavy import only this path needs)
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415  (lazy: a heavy import only this path needs)
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    key = cert.public_key()
    message = challenge_message(challenge)
    try:
        if isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            key.verify(signature, message, pss, hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(_ec_hash(key.curve)))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def _common_name(cert: x509.Certificate) -> str:
    from cryptography.x509.oid import NameOID  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def verify_certificate(
    data: bytes,
    *,
    signature: bytes,
    challenge: str,
    challenge_valid: bool,
    anchors: Sequence[TrustAnchor],
    now: int,
    ekus: Sequence[str] = (),
    max_depth: int = 4,
    request_id: str | None = None,
) -> CertificateIdentity:
    """Run checks C01, C04, C07-C13 of IDENTITY.md table (B) in order.

    Args:
        data: the certificate file (leaf first, optionally followed by intermediates).
        signature: the signature over ``challenge`` made with the leaf's key.
        challenge: the challenge the gate issued for this request.
        challenge_valid: False if that challenge expired or was used (C13).
        anchors: configured CAs with their CRL files.
        now: Unix seconds.
        ekus: extra accepted EKU OIDs (clientAuth and emailProtection always are).
        max_depth: the longest accepted chain.
        request_id: named in every error.
    """
    certs = load_certificates(data, request_id=request_id)
    leaf, intermediates = certs[0], certs[1:]
    check_key_algorithm(leaf, request_id=request_id)
    moment = datetime.fromtimestamp(now, UTC)
    if moment < leaf.not_valid_before_utc:
        raise idg_error("IDG-C08", date=_date(leaf.not_valid_before_utc), request_id=request_id)
    if moment > leaf.not_valid_after_utc:
        raise idg_error("IDG-C09", date=_date(leaf.not_valid_after_utc), request_id=request_id)
    chain = _chain(
        leaf, intermediates, anchors, now=now, ekus=ekus, max_depth=max_depth, request_id=request_id
    )
    _check_revocation(chain, anchors, now=now, request_id=request_id)
    if not challenge_valid or not verify_possession(leaf, challenge, signature):
        raise idg_error("IDG-C13", request_id=request_id)
    return CertificateIdentity(spki_sha256(leaf), leaf.serial_number, _common_name(leaf))
