"""DKIM key pairs and their DNS TXT values (cryptography); no file I/O here.

RSA keys are 2048 bits (RFC 8301: at least 1024, 2048 recommended); Ed25519 keys
follow RFC 8463 (the TXT record carries the raw 32-byte public key). Private keys
are PKCS#8 PEM, which OpenDKIM 2.11 reads for both algorithms.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from mailprov.errors import DkimKeyUnusable, SelectorInvalid

ALGORITHMS = ("rsa-2048", "ed25519")
#: The letter a generated selector ends with, per algorithm.
ALGORITHM_SUFFIX = {"rsa-2048": "r", "ed25519": "e"}
_SELECTOR_RE = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


@dataclass(frozen=True)
class KeyPair:
    """A new DKIM key: the private PEM (a secret, only written to a 0600 file) and its record."""

    algorithm: str
    private_pem: bytes
    record: str

    def __repr__(self) -> str:
        return f"KeyPair(algorithm={self.algorithm!r}, private_pem=***, record={self.record!r})"


def check_algorithm(name: str) -> str:
    """The algorithm name if known.

    Raises:
        DkimKeyUnusable: naming the algorithms that are known.
    """
    if name not in ALGORITHMS:
        raise DkimKeyUnusable(
            f"unknown DKIM algorithm {name!r}", hint="use one of: " + ", ".join(ALGORITHMS)
        )
    return name


def check_selector(raw: str) -> str:
    """A selector as one DNS label: lower-case letters, digits and inner hyphens.

    Raises:
        SelectorInvalid: naming the selector and what is wrong.
    """
    selector = raw.lower()
    if not _SELECTOR_RE.fullmatch(selector):
        shown = raw.encode("unicode_escape").decode("ascii")[:70]
        raise SelectorInvalid(f"'{shown}' is not a valid DKIM selector")
    return selector


def generate(algorithm: str) -> KeyPair:
    """Make a new key pair for ``algorithm`` (``rsa-2048`` or ``ed25519``)."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415  (lazy: a heavy import only this path needs)
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    check_algorithm(algorithm)
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "rsa-2048":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return KeyPair(algorithm, pem, record_for(key))


def record_for(key: object) -> str:
    """The DKIM TXT value (``v=DKIM1; k=...; p=...``) for a private key object."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415  (lazy: a heavy import only this path needs)
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode("ascii")
    msg = f"not a DKIM key type: {type(key).__name__}"
    raise TypeError(msg)


def record_from_pem(pem: bytes, *, path: str, algorithm: str) -> str:
    """The TXT value for a private key file's content, checking it matches ``algorithm``.

    Raises:
        DkimKeyUnusable: the file is not a PEM private key of that algorithm (named by ``path``).
    """
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415  (lazy: a heavy import only this path needs)
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise DkimKeyUnusable(
            f"DKIM key file {path} is not an unencrypted PEM private key"
        ) from None
    expected = rsa.RSAPrivateKey if algorithm == "rsa-2048" else ed25519.Ed25519PrivateKey
    if not isinstance(key, expected):
        raise DkimKeyUnusable(f"DKIM key file {path} does not hold an {algorithm} key")
    return record_for(key)


def parse_tags(value: str) -> dict[str, str]:
    """A DKIM/DMARC-style tag list (``a=b; c=d``) as a dict; whitespace inside values dropped."""
    tags: dict[str, str] = {}
    for part in value.split(";"):
        name, sep, tag_value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = "".join(tag_value.split())
    return tags


def default_selector(prefix: str, algorithm: str, day: str) -> str:
    """A generated selector: prefix + day (YYYYMMDD) + the algorithm's letter."""
    return check_selector(f"{prefix}{day}{ALGORITHM_SUFFIX[check_algorithm(algorithm)]}")
