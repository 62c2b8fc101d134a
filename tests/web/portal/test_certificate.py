"""The certificate route in a real browser: a fresh challenge, signed on the person's own
machine (here by the test), the certificate and the signature sent as files; a .p12 (which
would carry the private key) is refused with a page that says to send the certificate only."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import Any

from mailprov.testing import RelayRunner
from tests.integration.identity.test_certificate_rows import ec_key, leaf, pem, sign
from tests.web.test_requests import Trust


def test_certificate_and_signature_files_prove_identity(
    visit: Any, trust: Trust, mail_relay: RelayRunner, tmp_path: Path
) -> None:
    """Challenge → signature made outside the portal → files uploaded → the verified name from
    the certificate on the code step; a .p12 upload is refused first."""
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

    person = visit("en")
    page = person.page
    recovery = f"cert-{secrets.token_hex(4)}@home.example"
    person.open("/apply")
    page.fill("#local", f"cert-{secrets.token_hex(4)}")
    page.fill("#recovery", recovery)
    page.check("#accept_terms")
    person.submit("button[value=apply]")

    page.click("#certificate-route summary")
    person.submit("form[action='/application/challenge'] button")
    assert page.locator("#certificate-route").get_attribute("open") is not None
    challenge = person.text("pre.challenge")
    key = ec_key()
    cert = leaf(trust.ca, key, cn="Cert Holder")  # type: ignore[arg-type]
    signature = tmp_path / "challenge.sig"
    signature.write_text(base64.b64encode(sign(key, challenge)).decode())
    container = tmp_path / "mine.p12"
    container.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"holder", key, cert, None, BestAvailableEncryption(b"container-pw")
        )
    )
    page.set_input_files("#certificate_file", str(container))
    page.set_input_files("#signature_file", str(signature))
    person.submit("form[action='/application/certificate'] button")
    problem = person.text("#problem")
    assert "not a .p12 container" in problem
    assert "IDG-C04" in problem

    certificate = tmp_path / "mine.pem"
    certificate.write_bytes(pem(cert))
    page.click("#certificate-route summary")
    page.set_input_files("#certificate_file", str(certificate))
    page.set_input_files("#signature_file", str(signature))
    person.submit("form[action='/application/certificate'] button")
    assert "Identity verified; waiting for the code" in person.text()
    assert "Cert Holder" in person.text(".facts >> nth=1")
    code = mail_relay.wait_for(to=recovery, subject="Confirmation code").code(r"is (\d{6})\.")
    page.fill("#code", code)
    person.submit("form[action='/application/confirm'] button")
    assert page.url.endswith("/application/credentials")
    person.assert_clean(code)
