"""Every row of IDENTITY.md table (B): certificates, CRLs and .p12 files built with the openssl CLI
and cryptography; each failure's code, the request left open (rejected for C15), no mailbox."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CertAuthority
from tests.integration.identity.conftest import Gate, Pki, openssl

UTC = dt.UTC
CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"
SERVER_AUTH = "1.3.6.1.5.5.7.3.1"


def ec_key() -> Any:
    """A P-256 key."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def leaf(
    pki: Pki,
    key: Any,
    *,
    cn: str = "Anna Smirnova",
    days: tuple[int, int] = (-1, 365),
    ekus: tuple[str, ...] = (CLIENT_AUTH,),
    signer: tuple[Any, Any] | None = None,
) -> Any:
    """A client certificate for ``key`` issued by the test CA (or ``signer``: (cert, key))."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID, ObjectIdentifier

    ca_cert, ca_key = signer or (pki.ca_cert, pki.ca_key)
    now = dt.datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days[0]))
        .not_valid_after(now + dt.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ObjectIdentifier(o) for o in ekus]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name("anna@recovery.example")]), critical=False
        )
    )
    return builder.sign(ca_key, hashes.SHA256())


def crl(
    pki: Pki, revoked: tuple[Any, ...] = (), *, next_days: int = 7, signer: Any = None
) -> bytes:
    """A PEM CRL of the test CA (signed by ``signer`` if given) listing ``revoked``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding

    now = dt.datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.ca_cert.subject)
        .last_update(now - dt.timedelta(days=1))
        .next_update(now + dt.timedelta(days=next_days))
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now - dt.timedelta(hours=1))
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
    return builder.sign(signer or pki.ca_key, hashes.SHA256()).public_bytes(Encoding.PEM)


def pem(cert: Any) -> bytes:
    """The certificate as PEM."""
    from cryptography.hazmat.primitives.serialization import Encoding

    return bytes(cert.public_bytes(Encoding.PEM))


def sign(key: Any, challenge: str) -> bytes:
    """ECDSA-SHA256 over the challenge (done by the test, not by mailprov)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, rsa.RSAPrivateKey):
        from cryptography.hazmat.primitives.asymmetric import padding

        return bytes(
            key.sign(
                challenge.encode(), padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()
            )
        )
    return bytes(key.sign(challenge.encode(), ec.ECDSA(hashes.SHA256())))


@dataclass
class CertSite:
    """A gate site that trusts the test CA with a CRL file (rewritable)."""

    gate: Gate
    pki: Pki
    crl_file: Path

    def verify(self, req: dict[str, Any], cert_bytes: bytes, signature: bytes) -> tuple[int, Any]:
        """`request verify ID --certificate F --signature S`."""
        cert_file = self.gate.folder / "cert.pem"
        sig_file = self.gate.folder / "sig.b64"
        cert_file.write_bytes(cert_bytes)
        sig_file.write_text(base64.b64encode(signature).decode())
        return self.gate.cli.json(
            "request",
            "verify",
            req["id"],
            "--certificate",
            str(cert_file),
            "--signature",
            str(sig_file),
        )


@pytest.fixture(name="site")
def fixture_site(gate: Gate, pki: Pki) -> CertSite:
    """The gate trusting the openssl-made CA, with a current CRL."""
    crl_file = gate.folder / "ca.crl"
    crl_file.write_bytes(crl(pki))
    status, data = gate.cli.json(
        "identity", "trust", "add-ca", "--ca", str(pki.ca_file), "--crl", str(crl_file)
    )
    assert status == 0, data
    return CertSite(gate, pki, crl_file)


def assert_refused(
    site: CertSite, req: dict[str, Any], result: tuple[int, Any], idg: str, state: str = "open"
) -> None:
    """The expected code, naming the request; state as the table says; nothing provisioned."""
    status, data = result
    assert data["error"]["idg"] == idg, data
    assert data["error"]["request_id"] == req["id"]
    assert status == data["error"]["exit_status"]
    assert site.gate.state(req["id"]) == state
    assert site.gate.mailboxes() == []


def test_good_certificate_then_code(site: CertSite) -> None:
    """A valid, unrevoked certificate with a good signature verifies; a code is mailed."""
    key = ec_key()
    req = site.gate.open(name="Anna Smirnova")
    status, data = site.verify(req, pem(leaf(site.pki, key)), sign(key, req["challenge"]))
    assert status == 0, data
    assert data["request"]["evidence"]["spki_sha256"]
    assert site.gate.code_for("anna@recovery.example")


def test_c01_too_large_or_unknown(site: CertSite) -> None:
    """IDG-C01: a file over 64 KiB, or one that is neither PEM, DER nor PKCS#12."""
    req = site.gate.open()
    assert_refused(
        site,
        req,
        site.verify(req, b"-----BEGIN CERTIFICATE-----\n" + b"A" * 70_000, b"x"),
        "IDG-C01",
    )
    assert_refused(site, req, site.verify(req, b"hello, I am a certificate", b"x"), "IDG-C01")


def test_c04_corrupted_certificate(site: CertSite) -> None:
    """IDG-C04: garbage PEM and truncated DER are 'corrupted or not a certificate'."""
    from cryptography.hazmat.primitives.serialization import Encoding

    req = site.gate.open()
    assert_refused(
        site,
        req,
        site.verify(
            req, b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n", b"x"
        ),
        "IDG-C04",
    )
    der = leaf(site.pki, ec_key()).public_bytes(Encoding.DER)
    assert_refused(site, req, site.verify(req, der[: len(der) // 2], b"x"), "IDG-C04")


def test_c07_rsa_1024_made_by_openssl(site: CertSite) -> None:
    """IDG-C07: an RSA-1024 key (generated by openssl genrsa) is refused by name."""
    from cryptography.hazmat.primitives import serialization

    openssl("genrsa", "-out", "weak.key", "1024", cwd=site.gate.folder)
    key = serialization.load_pem_private_key((site.gate.folder / "weak.key").read_bytes(), None)
    req = site.gate.open()
    result = site.verify(req, pem(leaf(site.pki, key)), sign(key, req["challenge"]))
    assert_refused(site, req, result, "IDG-C07")
    assert "RSA-1024" in result[1]["error"]["message"]


def _der_tree(data: bytes) -> list[Any]:
    out, pos = [], 0
    while pos < len(data):
        tag, first = data[pos], data[pos + 1]
        if first < 0x80:
            length, start = first, pos + 2
        else:
            n = first & 0x7F
            length, start = int.from_bytes(data[pos + 2 : pos + 2 + n], "big"), pos + 2 + n
        content = data[start : start + length]
        out.append([tag, _der_tree(content) if tag & 0x20 else content])
        pos = start + length
    return out


def _der_bytes(tree: list[Any]) -> bytes:
    out = b""
    for tag, content in tree:
        body = _der_bytes(content) if isinstance(content, list) else content
        n = len(body)
        length = (
            bytes([n])
            if n < 0x80
            else bytes([0x80 | ((n.bit_length() + 7) // 8)])
            + n.to_bytes((n.bit_length() + 7) // 8, "big")
        )
        out += bytes([tag]) + length + body
    return out


def test_c07_gost_key(site: CertSite) -> None:
    """IDG-C07: a GOST R 34.10-2012 public key is refused with the ESIA bridge named."""
    from cryptography.hazmat.primitives.serialization import Encoding

    tree = _der_tree(leaf(site.pki, ec_key()).public_bytes(Encoding.DER))
    spki_alg = tree[0][1][0][1][6][1][0][1]  # Certificate > TBS > SPKI > AlgorithmIdentifier
    spki_alg[0][1] = bytes.fromhex("2a85030701010101")  # 1.2.643.7.1.1.1.1
    req = site.gate.open()
    result = site.verify(req, _der_bytes(tree), b"sig")
    assert_refused(site, req, result, "IDG-C07")
    assert "GOST R 34.10-2012" in result[1]["error"]["message"]
    assert "ESIA bridge" in result[1]["error"]["message"]


@pytest.mark.parametrize(("days", "idg"), [((1, 30), "IDG-C08"), ((-30, -1), "IDG-C09")])
def test_c08_c09_validity(site: CertSite, days: tuple[int, int], idg: str) -> None:
    """IDG-C08/C09: a certificate not yet valid, or expired, is refused with its date."""
    key = ec_key()
    req = site.gate.open()
    assert_refused(
        site,
        req,
        site.verify(req, pem(leaf(site.pki, key, days=days)), sign(key, req["challenge"])),
        idg,
    )


def test_c10_untrusted_ca_and_wrong_eku(site: CertSite, test_ca: CertAuthority) -> None:
    """IDG-C10: a certificate from another CA, or with only serverAuth, is not trusted."""
    rogue = test_ca.signer()  # the session's test CA: a real CA the gate does not trust
    key = ec_key()
    req = site.gate.open()
    assert_refused(
        site,
        req,
        site.verify(req, pem(leaf(site.pki, key, signer=rogue)), sign(key, req["challenge"])),
        "IDG-C10",
    )
    assert_refused(
        site,
        req,
        site.verify(
            req, pem(leaf(site.pki, key, ekus=(SERVER_AUTH,))), sign(key, req["challenge"])
        ),
        "IDG-C10",
    )


def test_c11_crl_missing_stale_badly_signed(site: CertSite) -> None:
    """IDG-C11: no CRL file, a stale CRL, or a CRL signed by another key: fail closed."""
    key = ec_key()
    cert = pem(leaf(site.pki, key))
    req = site.gate.open()
    site.crl_file.unlink()
    assert_refused(site, req, site.verify(req, cert, sign(key, req["challenge"])), "IDG-C11")
    site.crl_file.write_bytes(crl(site.pki, next_days=-1))
    assert_refused(site, req, site.verify(req, cert, sign(key, req["challenge"])), "IDG-C11")
    site.crl_file.write_bytes(crl(site.pki, signer=ec_key()))
    assert_refused(site, req, site.verify(req, cert, sign(key, req["challenge"])), "IDG-C11")


def test_c12_revoked(site: CertSite) -> None:
    """IDG-C12: a certificate listed in the CRL is refused with the date and reason."""
    key = ec_key()
    cert = leaf(site.pki, key)
    site.crl_file.write_bytes(crl(site.pki, (cert,)))
    req = site.gate.open()
    result = site.verify(req, pem(cert), sign(key, req["challenge"]))
    assert_refused(site, req, result, "IDG-C12")
    assert "keyCompromise" in result[1]["error"]["message"]


def test_c13_bad_signature_and_expired_challenge(site: CertSite, gate: Gate) -> None:
    """IDG-C13: a signature over something else, or a challenge older than 300 s, proves nothing."""
    from mailprov.errors import MailprovError
    from mailprov.services.accounts import Actor
    from mailprov.services.provisioning import verify_with_certificate
    from mailprov.settings import load_settings
    from mailprov.store import open_store

    key = ec_key()
    cert = pem(leaf(site.pki, key))
    req = site.gate.open()
    assert_refused(site, req, site.verify(req, cert, sign(key, "some other challenge")), "IDG-C13")
    assert_refused(site, req, site.verify(req, cert, sign(ec_key(), req["challenge"])), "IDG-C13")
    settings = load_settings(config_file=gate.config, env={})
    store = open_store(gate.store_url)
    try:
        with pytest.raises(MailprovError) as caught:
            verify_with_certificate(
                store,
                settings,
                req["id"],
                cert,
                sign(key, req["challenge"]),
                pepper=b"p" * 32,
                send=lambda m: "none",
                actor=Actor("t", int(time.time()) + 301),
            )
    finally:
        store.close()
    assert caught.value.details["idg"] == "IDG-C13"
    assert gate.state(req["id"]) == "open"


def test_c14_key_already_bound(site: CertSite) -> None:
    """IDG-C14: a re-issued certificate for a key bound to another mailbox is refused."""
    key = ec_key()
    first = site.gate.open("anna")
    assert site.verify(first, pem(leaf(site.pki, key)), sign(key, first["challenge"]))[0] == 0
    code = site.gate.code_for("anna@recovery.example")
    result = site.gate.cli(
        "request",
        "confirm",
        first["id"],
        "--code-stdin",
        "--password-file",
        str(site.gate.folder / "pw"),
        input=code,
        json=True,
    )
    assert result.exit_code == 0, result.stdout
    second = site.gate.open("boris")
    status, data = site.verify(
        second, pem(leaf(site.pki, key, cn="Boris")), sign(key, second["challenge"])
    )
    assert (status, data["error"]["idg"]) == (53, "IDG-C14")
    assert site.gate.state(second["id"]) == "open"
    assert site.gate.mailboxes() == ["anna@example.test"]


def test_c15_subject_mismatch(site: CertSite) -> None:
    """IDG-C15: a certificate subject that differs from the requested owner rejects the request."""
    key = ec_key()
    req = site.gate.open(name="Boris Petrov")
    assert_refused(
        site,
        req,
        site.verify(req, pem(leaf(site.pki, key)), sign(key, req["challenge"])),
        "IDG-C15",
        state="rejected",
    )


# -- the .p12 side: `mailprov identity sign-challenge` ------------------------------------------


@pytest.fixture(name="p12")
def fixture_p12(site: CertSite) -> Path:
    """A .p12 made by `openssl pkcs12 -export` from a CA-issued certificate and its key."""
    from cryptography.hazmat.primitives import serialization

    key = ec_key()
    folder = site.gate.folder
    (folder / "leaf.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (folder / "leaf.pem").write_bytes(pem(leaf(site.pki, key)))
    openssl(
        "pkcs12",
        "-export",
        "-inkey",
        "leaf.key",
        "-in",
        "leaf.pem",
        "-out",
        "leaf.p12",
        "-passout",
        "pass:Correct-Horse-9",
        "-iter",
        "65536",
        cwd=folder,
    )
    return folder / "leaf.p12"


def sign_p12(gate: Gate, p12: Path, challenge: str, password: str, *extra: str) -> tuple[int, Any]:
    """`identity sign-challenge --p12 F --challenge C --password-stdin`."""
    return gate.cli.json(
        "identity",
        "sign-challenge",
        "--p12",
        str(p12),
        "--challenge",
        challenge,
        "--password-stdin",
        *extra,
        input=password + "\n",
    )


def test_p12_happy_path_provisions(site: CertSite, p12: Path) -> None:
    """sign-challenge with an openssl .p12 → verify → code → confirm creates the mailbox."""
    req = site.gate.open(name="Anna Smirnova")
    cert_out = site.gate.folder / "mine.pem"
    status, data = sign_p12(
        site.gate, p12, req["challenge"], "Correct-Horse-9", "--cert-out", str(cert_out)
    )
    assert status == 0, data
    sig = site.gate.folder / "s.b64"
    sig.write_text(data["signature"])
    status, data = site.gate.cli.json(
        "request", "verify", req["id"], "--certificate", str(cert_out), "--signature", str(sig)
    )
    assert status == 0, data
    code = site.gate.code_for("anna@recovery.example")
    result = site.gate.cli(
        "request",
        "confirm",
        req["id"],
        "--code-stdin",
        "--password-file",
        str(site.gate.folder / "pw"),
        input=code,
        json=True,
    )
    assert json.loads(result.stdout)["request"]["state"] == "provisioned"
    assert site.gate.mailboxes() == ["anna@example.test"]


@pytest.mark.parametrize(
    ("password", "idg"),
    [("short", "IDG-C02"), ("x" * 65, "IDG-C02"), ("Wrong-Horse-99", "IDG-C05")],
)
def test_c02_c05_p12_password(site: CertSite, p12: Path, password: str, idg: str) -> None:
    """IDG-C02: a password outside 8-64 characters; IDG-C05: the wrong password."""
    status, data = sign_p12(site.gate, p12, "challenge", password)
    assert (status, data["error"]["idg"]) == (45, idg)


def test_c03_huge_iteration_count_refused_fast(site: CertSite, p12: Path) -> None:
    """IDG-C03: a .p12 claiming 8 million KDF rounds is refused before any key derivation."""
    data = p12.read_bytes()
    assert data.count(b"\x02\x03\x01\x00\x00") >= 1
    hostile = site.gate.folder / "hostile.p12"
    hostile.write_bytes(data.replace(b"\x02\x03\x01\x00\x00", b"\x02\x03\x7f\xff\xff"))
    started = time.monotonic()
    status, result = sign_p12(site.gate, hostile, "challenge", "Correct-Horse-9")
    assert (status, result["error"]["idg"]) == (46, "IDG-C03")
    assert time.monotonic() - started < 1.0


def test_c04_corrupted_p12(site: CertSite, p12: Path) -> None:
    """IDG-C04: a truncated .p12 is 'corrupted or not a certificate'."""
    broken = site.gate.folder / "broken.p12"
    broken.write_bytes(p12.read_bytes()[:200])
    status, data = sign_p12(site.gate, broken, "challenge", "Correct-Horse-9")
    assert (status, data["error"]["idg"]) == (44, "IDG-C04")


def test_c06_p12_without_key(site: CertSite, p12: Path) -> None:
    """IDG-C06: a .p12 exported with -nokeys has no key to sign with."""
    folder = site.gate.folder
    openssl(
        "pkcs12",
        "-export",
        "-nokeys",
        "-in",
        "leaf.pem",
        "-out",
        "nokey.p12",
        "-passout",
        "pass:Correct-Horse-9",
        cwd=folder,
    )
    status, data = sign_p12(site.gate, folder / "nokey.p12", "challenge", "Correct-Horse-9")
    assert (status, data["error"]["idg"]) == (46, "IDG-C06")


def test_c07_dsa_key_from_openssl(site: CertSite) -> None:
    """IDG-C07: a DSA key (openssl genpkey) is not an accepted algorithm."""
    from cryptography.hazmat.primitives import serialization

    folder = site.gate.folder
    openssl(
        "genpkey",
        "-genparam",
        "-algorithm",
        "DSA",
        "-pkeyopt",
        "dsa_paramgen_bits:2048",
        "-out",
        "dsa.param",
        cwd=folder,
    )
    openssl("genpkey", "-paramfile", "dsa.param", "-out", "dsa.key", cwd=folder)
    key = serialization.load_pem_private_key((folder / "dsa.key").read_bytes(), None)
    req = site.gate.open()
    result = site.verify(req, pem(leaf(site.pki, key)), b"sig")
    assert_refused(site, req, result, "IDG-C07")
    assert "(DSA)" in result[1]["error"]["message"]


def test_c06_p12_key_without_its_certificate(site: CertSite) -> None:
    """IDG-C06: a .p12 with a key and only a foreign certificate (as an extra) is refused."""
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

    other_cert = leaf(site.pki, ec_key())
    data = pkcs12.serialize_key_and_certificates(
        b"x", ec_key(), None, [other_cert], BestAvailableEncryption(b"Correct-Horse-9")
    )
    path = site.gate.folder / "mismatch.p12"
    path.write_bytes(data)
    status, result = sign_p12(site.gate, path, "challenge", "Correct-Horse-9")
    assert (status, result["error"]["idg"]) == (46, "IDG-C06")
