"""The one maker of self-signed certificates (tests, first runs, the relay's STARTTLS),
and the one maker of server-side TLS contexts (the relay, ``mailprov serve``).

Production points ``[tls]`` at real certificates (e.g. Let's Encrypt's
``fullchain.pem``/``privkey.pem``). The key is EC P-256, written 0600 through
:mod:`mailprov.system.secrets`; the certificate names the host, ``localhost``
and the given IP addresses.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailprov.errors import ConfigInvalid, FileExists, InvalidValue
from mailprov.rules.addresses import normalise_domain
from mailprov.system.files import atomic_write
from mailprov.system.secrets import replace_secret, write_secret

DAYS = 365


@dataclass(frozen=True)
class SelfSigned:
    """Where the certificate and key were written."""

    cert_file: Path
    key_file: Path
    names: list[str]
    not_after: str
    created: bool = True


def self_signed(
    host: str,
    out: Path,
    *,
    ips: list[str],
    now: int,
    days: int = DAYS,
    replace: bool = False,
    keep_existing: bool = False,
) -> SelfSigned:
    """Write ``out/cert.pem`` and a new ``out/key.pem`` (0600) for ``host``, localhost and ``ips``.

    Args:
        replace: make a fresh pair even if one is there (the relay does at each start).
        keep_existing: if ``out/key.pem`` and ``out/cert.pem`` exist, leave them and report
            ``created=False`` (idempotent first runs).

    Raises:
        InvalidValue: a bad host name or IP address, or ``days`` out of 1-3650.
        FileExists: ``out/key.pem`` exists and neither flag is given (keys are never
            silently overwritten).
    """
    name = normalise_domain(host)
    try:
        addresses = [ipaddress.ip_address(ip) for ip in ips]
    except ValueError as exc:
        raise InvalidValue(f"not an IP address: {exc}") from None
    if not 1 <= days <= 3650:
        raise InvalidValue(f"--days must be 1-3650, not {days}")
    key_file, cert_file = out / "key.pem", out / "cert.pem"
    dns_names = [name] + ([] if name == "localhost" else ["localhost"])
    names = dns_names + [str(a) for a in addresses]
    if key_file.exists() and not replace:
        if keep_existing and cert_file.exists():
            cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
            return SelfSigned(cert_file, key_file, names, _stamp(cert), created=False)
        raise FileExists(
            f"{key_file} already exists; keys are only written to a new file",
            hint="choose another --out folder, or pass --keep-existing to keep that pair",
        )
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = dt.datetime.fromtimestamp(now, dt.UTC) - dt.timedelta(minutes=5)
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
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    out.mkdir(parents=True, exist_ok=True)
    (replace_secret if replace else write_secret)(key_file, key_pem)
    atomic_write(cert_file, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return SelfSigned(cert_file, key_file, names, _stamp(cert))


def _stamp(cert: x509.Certificate) -> str:
    return cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def server_context(cert_file: Path, key_file: Path, *, hint: str) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 or newer) from a certificate chain and its key.

    Raises:
        ConfigInvalid: the files cannot be read or do not match; ``hint`` says which
            settings to fix.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigInvalid(
            f"the TLS certificate {cert_file} / key {key_file} cannot be used: {exc}", hint=hint
        ) from None
    return context
