"""Fixtures of the identity gate: a site whose codes go to the shipped ``mail_relay`` fixture
(mailprov.testing), test-built tokens (cryptography + hand-made JWS, independent of mailprov's
own issuer), a small PKI built with the openssl CLI, and a knot DNS server on loopback.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mailprov.testing import RelayRunner
from tests.conftest import Cli, require_or_skip
from tests.integration.knot import Knot

AUDIENCE = "urn:mailprov:test-site"
TOKEN_TYPE = "mailprov-idv+jwt"


# -- tokens built by the tests themselves ------------------------------------------------------


def b64url(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class IssuerKey:
    """A test issuer: an EC P-256 key (cryptography), its kid and iss."""

    iss: str
    kid: str
    key: Any = field(repr=False)

    @classmethod
    def new(cls, iss: str) -> IssuerKey:
        """A fresh key."""
        from cryptography.hazmat.primitives.asymmetric import ec

        return cls(iss, "k-" + secrets.token_hex(4), ec.generate_private_key(ec.SECP256R1()))

    def jwks(self) -> dict[str, Any]:
        """The public JWKS (built from the raw numbers)."""
        numbers = self.key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "EC",
                    "crv": "P-256",
                    "kid": self.kid,
                    "alg": "ES256",
                    "use": "sig",
                    "x": b64url(numbers.x.to_bytes(32, "big")),
                    "y": b64url(numbers.y.to_bytes(32, "big")),
                }
            ]
        }

    def sign(self, header: dict[str, Any], payload: dict[str, Any] | bytes) -> str:
        """A compact JWS signed with ES256 by hand (cryptography), whatever the header says."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(body)}"
        r, s = decode_dss_signature(
            self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def claims(self, nonce: str, now: int | None = None, **changes: Any) -> dict[str, Any]:
        """A valid payload for ``nonce``; ``changes`` override (None removes)."""
        now = int(time.time()) if now is None else now
        payload: dict[str, Any] = {
            "iss": self.iss,
            "sub": "subject-1",
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": secrets.token_urlsafe(16),
            "nonce": nonce,
            "acr": "loa-high",
            "verified_claims": {
                "verification": {
                    "trust_framework": "https://idp.example/trust_framework/nist_800_63A",
                    "assurance_level": "ial2",
                    "time": "2026-01-10T10:00Z",
                },
                "claims": {
                    "given_name": "Anna",
                    "family_name": "Smirnova",
                    "birthdate": "1990-02-03",
                },
            },
        }
        for key, value in changes.items():
            if value is None:
                payload.pop(key, None)
            else:
                payload[key] = value
        return payload

    def token(self, nonce: str, *, header: dict[str, Any] | None = None, **changes: Any) -> str:
        """A signed token for ``nonce`` with optional header/claim changes."""
        hdr = {"typ": TOKEN_TYPE, "alg": "ES256", "kid": self.kid, **(header or {})}
        return self.sign(hdr, self.claims(nonce, **changes))


# -- the site --------------------------------------------------------------------------------


@dataclass
class Gate:
    """A mailprov site sending its codes to the ``mail_relay``, with one trusted test issuer."""

    folder: Path
    config: Path
    store_url: str
    issuer: IssuerKey
    relay: RelayRunner

    @property
    def cli(self) -> Cli:
        """The CLI on this site (``gate.cli.json(...)``: exit status and parsed JSON)."""
        return Cli(self.folder / "state", config=self.config)

    def code_for(self, rcpt: str) -> str:
        """The code in the newest confirmation-code message to ``rcpt`` (waits briefly)."""
        self.relay.wait_for(to=rcpt, subject="confirmation code", timeout=5)
        newest = self.relay.messages(to=rcpt, subject="confirmation code")[-1]
        match = re.search(r"is (\d{6})\.", newest.text)
        assert match, newest.text
        return match.group(1)

    def mail_to(self, rcpt: str) -> list[str]:
        """Every message the relay received for ``rcpt`` (headers and body), oldest first."""
        return [m.raw.decode("utf-8", "replace") for m in self.relay.messages(to=rcpt)]

    def open(self, local: str = "anna", **opts: str) -> dict[str, Any]:
        """Open a personal request for LOCAL@example.test; returns the request JSON."""
        args = [
            "request",
            "open",
            f"{local}@example.test",
            "--kind",
            opts.get("kind", "personal"),
            "--recovery",
            opts.get("recovery", f"{local}@recovery.example"),
            "--accept-terms",
        ]
        if "name" in opts:
            args += ["--name", opts["name"]]
        status, data = self.cli.json(*args)
        assert status == 0, data
        return dict(data["request"])

    def verify_token(self, rid: str, token: str) -> tuple[int, Any]:
        """``request verify ID --token-stdin``."""
        return self.cli.json("request", "verify", rid, "--token-stdin", input=token)

    def state(self, rid: str) -> str:
        """The request's state."""
        return str(self.cli.json("request", "show", rid)[1]["request"]["state"])

    def mailboxes(self) -> list[str]:
        """Addresses of every mailbox."""
        return [m["address"] for m in self.cli.json("mailbox", "list")[1]["mailboxes"]]

    def audit_text(self) -> str:
        """The whole audit log as text."""
        return self.cli("audit", "list", json=True).stdout


def make_gate(folder: Path, store_url: str, relay: RelayRunner) -> Gate:
    """A site in ``folder`` on ``store_url`` whose ``[notify]`` smarthost is ``relay``: one
    trusted issuer, domain example.test."""
    from mailprov.store.migrate import upgrade

    upgrade(store_url)
    config = folder / "mailprov.toml"
    config.write_text(
        f'[store]\nurl = "{store_url}"\n\n[site]\nhostname = "mail.example.test"\n\n'
        f'[notify]\nsmarthost = "{relay.host}"\nport = {relay.port}\nsender = "gate@example.test"\n'
        f"timeout_seconds = 5\n"
    )
    issuer = IssuerKey.new("https://idp.example/" + secrets.token_hex(3))
    (folder / "jwks.json").write_text(json.dumps(issuer.jwks()))
    gate = Gate(folder, config, store_url, issuer, relay)
    assert gate.cli.json("domain", "add", "example.test")[0] == 0
    status, data = gate.cli.json(
        "identity",
        "trust",
        "add-issuer",
        "--iss",
        issuer.iss,
        "--jwks",
        str(folder / "jwks.json"),
        "--audience",
        AUDIENCE,
    )
    assert status == 0, data
    return gate


@pytest.fixture(name="gate")
def fixture_gate(tmp_path: Path, mail_relay: RelayRunner, monkeypatch: pytest.MonkeyPatch) -> Gate:
    """A fresh site on SQLite."""
    monkeypatch.chdir(tmp_path)
    return make_gate(tmp_path, f"sqlite:///{tmp_path / 'gate.sqlite'}", mail_relay)


@pytest.fixture(name="gate_any")
def fixture_gate_any(
    tmp_path: Path, mail_relay: RelayRunner, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> Gate:
    """A fresh site on each backend (SQLite and PostgreSQL)."""
    monkeypatch.chdir(tmp_path)
    return make_gate(tmp_path, store_url, mail_relay)


# -- PKI with the openssl CLI -------------------------------------------------------------------


def openssl(*args: str, cwd: Path, input: bytes | None = None) -> bytes:
    """Run the real openssl command line; fail the test on error."""
    done = subprocess.run(
        ["openssl", *args], cwd=cwd, input=input, capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


@dataclass
class Pki:
    """A CA made by openssl; leaves and CRLs are made on demand."""

    folder: Path
    ca_cert: Any
    ca_key: Any
    ca_file: Path


@pytest.fixture(scope="session", name="pki")
def fixture_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A root CA built with `openssl req -x509` (P-256, CA extensions)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if shutil.which("openssl") is None:
        require_or_skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("pki")
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=folder)
    openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "3650",
        "-subj",
        "/CN=mailprov test CA/O=Test",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-addext",
        "subjectKeyIdentifier=hash",
        cwd=folder,
    )
    ca_cert = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
    return Pki(folder, ca_cert, ca_key, folder / "ca.pem")


# -- DNS on loopback: zone corp.test on the shared knot server ----------------------------


@dataclass
class CorpZone:
    """Zone corp.test, served by the session's private knot (tests/integration/knot.py)."""

    server: Knot
    records: list[str] = field(default_factory=list)
    serial: int = 1

    @property
    def port(self) -> int:
        """The knot server's port on 127.0.0.1."""
        return self.server.port

    def publish(self, name: str, rtype: str, value: str) -> None:
        """Add a record to corp.test and wait until knot serves it."""
        self.records.append(f"{name} 60 IN {rtype} {value}")
        self.serial += 1
        self.load()

    def load(self) -> None:
        """(Re)load the zone with the records so far."""
        lines = [
            "$ORIGIN corp.test.",
            "$TTL 60",
            f"@ IN SOA ns.corp.test. admin.corp.test. {self.serial} 60 60 600 60",
            "@ IN NS ns.corp.test.",
            "ns IN A 127.0.0.1",
            *self.records,
        ]
        self.server.load_zone("corp.test", "\n".join(lines) + "\n")


@pytest.fixture(name="corp_zone")
def fixture_corp_zone(knot: Knot) -> CorpZone:
    """An empty corp.test zone on the shared knot server."""
    zone = CorpZone(knot)
    zone.load()
    return zone
