"""A self-signed certificate and key for tests and first runs (production uses real ones)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from mailprov.errors import InvalidValue
from mailprov.system.files import atomic_write, create_secret_file

DAYS = 365


@dataclass(frozen=True)
class SelfSigned:
    """Where the certificate and key were written."""

    cert_file: Path
    key_file: Path
    names: list[str]
    not_after: str


def self_signed(host: str, out: Path, *, ips: list[str], now: int, days: int = DAYS) -> SelfSigned:
    """Write ``out/cert.pem`` and a new ``out/key.pem`` (0600) for ``host``, localhost and ``ips``.

    Raises:
        InvalidValue: a bad host name or IP address.
        FileExists: ``out/key.pem`` exists (keys are only ever written to new files).
    """
    from cryptography import x509  # noqa: PLC0415  (lazy: slow import)
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    from mailprov.rules.addresses import normalise_domain  # noqa: PLC0415

    name = normalise_domain(host)
    try:
        addresses = [ipaddress.ip_address(ip) for ip in ips]
    except ValueError as exc:
        raise InvalidValue(f"not an IP address: {exc}") from None
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = dt.datetime.fromtimestamp(now, dt.UTC) - dt.timedelta(minutes=5)
    dns_names = [name] + ([] if name == "localhost" else ["localhost"])
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    alt += [x509.IPAddress(a) for a in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True)
    key_file, cert_file = out / "key.pem", out / "cert.pem"
    fd = create_secret_file(key_file)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    atomic_write(cert_file, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return SelfSigned(
        cert_file,
        key_file,
        dns_names + [str(a) for a in addresses],
        cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
