"""[web] tls = true: mailprov serve speaks HTTPS itself, with the site's certificate.

A real server on 127.0.0.1 with a certificate from the test CA (``[tls] cert_file``);
a real HTTPS client that trusts only that CA.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mailprov.rules import hashing
from mailprov.services import accounts
from mailprov.services.accounts import Actor, NewPassword
from mailprov.settings import load_settings
from mailprov.store import open_store
from mailprov.store.migrate import upgrade
from tests.conftest import CertAuthority, free_port
from tests.web.serving import serving

ADDRESS = "tls-owner@example.test"
PASSWORD = "Over-Https-Passw0rd!"


@pytest.fixture(scope="module", name="https_site")
def fixture_https_site(
    tmp_path_factory: pytest.TempPathFactory, test_ca: CertAuthority
) -> Iterator[tuple[str, Path]]:
    """A site with [web] tls = true served on a free port: (base URL, certificate chain)."""
    folder = tmp_path_factory.mktemp("https")
    made = test_ca.issue(folder / "tls", "mail.example.test", "127.0.0.1")
    url = f"sqlite:///{folder / 'mailprov.sqlite'}"
    (folder / "mailprov.toml").write_text(
        f'[site]\nhostname = "mail.example.test"\n[store]\nurl = "{url}"\n'
        f'[tls]\ncert_file = "{made.cert_file}"\nkey_file = "{made.key_file}"\n'
        '[passwords]\nscheme = "SHA512-CRYPT"\n'
        f'[web]\nlisten = "127.0.0.1:{free_port()}"\ntls = true\n'
    )
    upgrade(url)
    settings = load_settings(config_file=folder / "mailprov.toml", env={})
    store = open_store(url)
    actor = Actor("test", int(time.time()))
    accounts.add_domain(store, "example.test", actor=actor)
    prepared = NewPassword(hashing.hash_password(PASSWORD, "SHA512-CRYPT"), None)
    accounts.add_mailbox(store, ADDRESS, prepared, actor=actor)
    try:
        with serving(settings, store, listen=settings.web.listen) as base:
            yield base, Path(made.cert_file)
    finally:
        store.close()


def test_serves_https_with_the_site_certificate(
    https_site: tuple[str, Path], test_ca: CertAuthority
) -> None:
    """The handshake verifies against the test CA and presents [tls] cert_file's certificate."""
    base, chain = https_site
    assert base.startswith("https://127.0.0.1:")
    port = int(base.rsplit(":", 1)[1])
    context = test_ca.client_context()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="mail.example.test") as tls,
    ):
        served = tls.getpeercert(binary_form=True)
        assert tls.version() in {"TLSv1.2", "TLSv1.3"}
    site_cert = x509.load_pem_x509_certificates(chain.read_bytes())[0]
    assert served == site_cert.public_bytes(Encoding.DER)


def test_hsts_and_a_secure_cookie(https_site: tuple[str, Path], test_ca: CertAuthority) -> None:
    """Every answer carries HSTS; the session cookie is Secure (and HttpOnly, SameSite=Strict)."""
    base, _ = https_site
    with httpx.Client(base_url=base, verify=test_ca.client_context(), timeout=30) as client:
        document = client.get("/api/v1/openapi.json")
        signed = client.post("/api/v1/session", json={"address": ADDRESS, "password": PASSWORD})
    assert document.status_code == 200
    assert document.headers["strict-transport-security"] == "max-age=31536000"
    assert signed.status_code == 201, signed.text
    assert signed.headers["strict-transport-security"] == "max-age=31536000"
    cookie = signed.headers["set-cookie"].lower()
    assert "; secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie


def test_plain_http_gets_no_answer(https_site: tuple[str, Path]) -> None:
    """Plain HTTP on the TLS port is not served (no HTTP answer comes back)."""
    base, _ = https_site
    with pytest.raises((httpx.TransportError, ssl.SSLError)):
        httpx.get(base.replace("https://", "http://") + "/api/v1/openapi.json", timeout=5)
