"""The TLS the real servers offer on every port, probed with OpenSSL and judged by testssl.sh.

587 and 465 once accepted anonymous (ADH/AECDH) suites, and every login port offered
CBC suites and let the client choose the order. The probes below try each
forbidden class of suite on each TLS port (STARTTLS ports included) and expect a refused
handshake; testssl.sh then rates the implicit-TLS ports. One SQLite stack is enough: the
TLS settings do not depend on the store.
"""

from __future__ import annotations

import imaplib
import json
import poplib
import shutil
import smtplib
import socket
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mailprov.render.tls_profile import LOGIN_CIPHERS
from tests.conftest import require_or_skip
from tests.integration.stack import MailStack

pytestmark = [
    pytest.mark.requires_postfix,
    pytest.mark.requires_dovecot,
    # The profile does not depend on the store: probe the SQLite stack only.
    pytest.mark.parametrize("mailstack", ["sqlite"], indirect=True),
]

#: Suite classes no port may negotiate, as OpenSSL cipher strings (SECLEVEL=0 lets the
#: client offer them at all).
FORBIDDEN = {
    "anonymous": "aNULL:@SECLEVEL=0",
    "unencrypted": "eNULL:@SECLEVEL=0",
    "static RSA": "kRSA:@SECLEVEL=0",
    "finite-field DHE": "kDHE:@SECLEVEL=0",
}
#: CBC suites with every key exchange OpenSSL still has.
CBC = "ECDHE+AES+SHA1:ECDHE+AES+SHA256:ECDHE+AES+SHA384:CAMELLIA:ARIA:AES128-SHA:@SECLEVEL=0"
#: (port name, how TLS starts). 25 is the one port that keeps CBC (opportunistic TLS).
TLS_PORTS = (
    "smtp",
    "submission",
    "submissions",
    "imap",
    "imaps",
    "pop3",
    "pop3s",
    "managesieve",
)
#: testssl.sh ids that only say the test certificate is self-signed.
CERTIFICATE_IDS = {"cert_chain_of_trust", "cert_trust", "cert_revocation", "cert_caIssuers"}


def _context(ciphers: str, *, tls: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the suite is under test here, not the certificate
    ctx.minimum_version = ctx.maximum_version = tls
    ctx.set_ciphers(ciphers)
    return ctx


def _handshake(stack: MailStack, port: str, ctx: ssl.SSLContext) -> str | None:
    """The suite the server chose, or None when the handshake failed."""
    host, number = stack.host, stack.ports[port]
    starters: dict[str, Callable[[], ssl.SSLSocket]] = {
        "smtp": lambda: _smtp_starttls(host, number, ctx),
        "submission": lambda: _smtp_starttls(host, number, ctx),
        "imap": lambda: _imap_starttls(host, number, ctx),
        "pop3": lambda: _pop3_starttls(host, number, ctx),
        "managesieve": lambda: _managesieve_starttls(host, number, ctx),
    }
    start = starters.get(port, lambda: ctx.wrap_socket(socket.create_connection((host, number), 5)))
    try:
        sock = start()
    except (ssl.SSLError, ConnectionError):
        return None
    try:
        return sock.cipher()[0]  # type: ignore[index]
    finally:
        sock.close()


def _smtp_starttls(host: str, port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    client = smtplib.SMTP(host, port, local_hostname="probe.test", timeout=5)
    client.starttls(context=ctx)
    return client.sock  # type: ignore[return-value]


def _imap_starttls(host: str, port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    client = imaplib.IMAP4(host, port, timeout=5)
    client.starttls(ssl_context=ctx)
    return client.sock  # type: ignore[return-value]


def _managesieve_starttls(host: str, port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    """RFC 5804: read the capabilities up to OK, send STARTTLS, expect OK, shake hands."""
    sock = socket.create_connection((host, port), 5)
    stream = sock.makefile("rb")
    while not stream.readline().startswith(b"OK"):
        pass
    sock.sendall(b"STARTTLS\r\n")
    if not stream.readline().startswith(b"OK"):
        sock.close()
        raise ConnectionError("STARTTLS refused")
    stream.close()
    return ctx.wrap_socket(sock)


def _pop3_starttls(host: str, port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    client = poplib.POP3(host, port, timeout=5)
    client.stls(context=ctx)
    return client.sock  # type: ignore[return-value]


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_forbidden_suites_are_refused_on_every_tls_port(mailstack: MailStack) -> None:
    """No TLS port negotiates anonymous, unencrypted, static-RSA or DHE suites, or TLS 1.1."""
    accepted = {
        (port, name): suite
        for port in TLS_PORTS
        for name, ciphers in FORBIDDEN.items()
        if (suite := _handshake(mailstack, port, _context(ciphers))) is not None
    }
    old = _context("ALL:@SECLEVEL=0", tls=ssl.TLSVersion.TLSv1_1)
    accepted |= {
        (port, "TLS 1.1"): suite
        for port in TLS_PORTS
        if (suite := _handshake(mailstack, port, old)) is not None
    }
    assert {} == accepted


def test_cbc_only_on_port_25(mailstack: MailStack) -> None:
    """CBC suites are refused on the login ports and kept, as a last resort, on port 25."""
    chosen = {port: _handshake(mailstack, port, _context(CBC)) for port in TLS_PORTS}
    assert chosen.pop("smtp") is not None
    assert dict.fromkeys(chosen) == chosen


def test_server_picks_its_own_first_suite(mailstack: MailStack) -> None:
    """Offered the list backwards, every port still negotiates the profile's first suite."""
    ours = LOGIN_CIPHERS.split(":")
    backwards = _context(":".join(reversed(ours)))
    chosen = {port: _handshake(mailstack, port, backwards) for port in TLS_PORTS}
    assert dict.fromkeys(TLS_PORTS, "ECDHE-ECDSA-AES128-GCM-SHA256") == chosen


def _testssl(tool: str, port: int, out: Path) -> list[dict[str, str]]:
    """testssl.sh's cipher-class and cipher-order checks (under a minute on two busy cores;
    ``--fast`` would miss anonymous suites: it tries them with the local openssl, which
    cannot offer them). The probes above cover protocols and key exchange on every port."""
    result = subprocess.run(
        [
            tool,
            "--quiet",
            "--color",
            "0",
            "--warnings",
            "off",
            "--nodns",
            "none",  # nothing but the loopback target is contacted
            "--std",
            "--server-preference",
            "--jsonfile",
            str(out),
            f"127.0.0.1:{port}",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert out.exists(), result.stdout[-2000:] + result.stderr[-2000:]
    findings: list[dict[str, str]] = json.loads(out.read_text())
    return findings


def test_testssl_finds_nothing_medium_or_worse(mailstack: MailStack, tmp_path: Path) -> None:
    """testssl.sh rates nothing MEDIUM or worse on 465 (it once rated anonymous suites there
    CRITICAL and the missing server order HIGH; the probes above cover the other ports)."""
    tool = shutil.which("testssl") or shutil.which("testssl.sh")
    if tool is None:
        require_or_skip("testssl.sh is not installed (make test-deps installs it)")
        return
    findings = _testssl(tool, mailstack.ports["submissions"], tmp_path / "465.json")
    assert {"cipherlist_aNULL", "cipher_order"} <= {f["id"] for f in findings}
    bad = {
        (f["id"], f["finding"])
        for f in findings
        if f.get("severity") in {"MEDIUM", "HIGH", "CRITICAL"} and f["id"] not in CERTIFICATE_IDS
    }
    assert set() == bad
