"""DKIM signing for real: mailprov's keys and OpenDKIM config, the Debian opendkim, a Postfix
milter client, knot serving the published keys, and dkimpy verifying what arrives."""

from __future__ import annotations

import contextlib
import os
import shutil
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import dkim
import dns.message
import dns.query
import dns.rdatatype
import pytest
from aiosmtpd.controller import Controller

from mailprov.services.signer import postfix_milters
from mailprov.settings import load_settings
from mailprov.store.migrate import upgrade
from tests.conftest import require_or_skip
from tests.integration.dns.conftest import SiteCli
from tests.integration.dns.minipostfix import MiniPostfix
from tests.integration.knot import Knot, free_port

pytestmark = [pytest.mark.requires_dns_server, pytest.mark.requires_postfix]


@dataclass
class Sink:
    """An aiosmtpd server that keeps every message it receives."""

    port: int
    messages: list[bytes] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Keep the message."""
        with self.arrived:
            self.messages.append(bytes(envelope.original_content or envelope.content))
            self.arrived.notify_all()
        return "250 2.0.0 kept"

    def wait_for(self, marker: str, timeout: float = 20.0) -> bytes:
        """The first message holding ``marker``."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                for message in self.messages:
                    if marker.encode() in message:
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no message with {marker} arrived")
                self.arrived.wait(left)


@dataclass
class SigningStack:
    """The site, its CLI, and the running knot, opendkim, Postfix and sink."""

    site: Path
    mp: SiteCli
    knot: Knot
    sink: Sink
    postfix: MiniPostfix
    signers: list[subprocess.Popen[bytes]]
    serial: int = 5000

    def publish(self) -> None:
        """Load the domain's records, as `dns records --standalone` prints them, into knot."""
        result: Any = self.mp("dns", "records", "example.test", "--standalone", "--no-tlsa")
        assert result.exit_code == 0, result.output
        text = result.stdout
        self.serial += 1
        text = text.replace(" IN SOA ", " IN SOA ", 1)
        # A new serial for each load, so knot serves the new zone.
        head, _, rest = text.partition("( ")
        old_serial, _, tail = rest.partition(" ")
        self.knot.load_zone("example.test", head + f"( {int(old_serial) + self.serial} " + tail)

    def send(self) -> str:
        """Send a message from example.test through Postfix; return its marker."""
        marker = uuid.uuid4().hex
        msg = EmailMessage()
        msg["From"] = "alice@example.test"
        msg["To"] = "bob@receiver.test"
        msg["Subject"] = f"dkim test {marker}"
        msg["Message-ID"] = f"<{marker}@example.test>"
        msg.set_content(f"signed body {marker}\n")
        with smtplib.SMTP(
            "127.0.0.1", self.postfix.port, local_hostname="client.test", timeout=20
        ) as smtp:
            smtp.send_message(msg)
        return marker


def _dnsfunc(knot: Knot) -> Any:

    def lookup(name: bytes | str, timeout: float = 5) -> bytes | None:
        qname = name.decode() if isinstance(name, bytes) else name
        answer = dns.query.udp(
            dns.message.make_query(qname, dns.rdatatype.TXT),
            "127.0.0.1",
            timeout=timeout,
            port=knot.port,
        )
        for rrset in answer.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                return b"".join(next(iter(rrset)).strings)
        return None

    return lookup


def _signatures(raw: bytes, knot: Knot) -> list[tuple[str, str, bool]]:
    """(algorithm, selector, verified) for each DKIM-Signature, checked by dkimpy against knot."""

    checker = dkim.DKIM(raw)
    count = raw.lower().count(b"\ndkim-signature:") + raw.lower().startswith(b"dkim-signature:")
    out = []
    for idx in range(count):
        ok = checker.verify(idx=idx, dnsfunc=_dnsfunc(knot))
        out.append(
            (
                checker.signature_fields[b"a"].decode(),
                checker.signature_fields[b"s"].decode(),
                bool(ok),
            )
        )
    return out


def _start_opendkim(config: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        ["opendkim", "-f", "-x", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 10

    while True:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2),
        ):
            return process
        if process.poll() is not None:
            raise RuntimeError(
                f"opendkim exited: {process.stderr.read() if process.stderr else ''}"
            )
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError("opendkim did not listen")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stderr:
        process.stderr.close()


def _safe_base() -> Path:
    """A folder for the site whose parents nobody else may write to.

    OpenDKIM's RequireSafeKeys refuses a key whose path passes through a
    world-writable folder such as /tmp, and runs as user opendkim, which cannot
    enter pytest's 0700 temporary folders.
    """
    for base in (Path("/run"), Path("/var/lib")):
        if base.is_dir() and os.access(base, os.W_OK) and not base.stat().st_mode & 0o002:
            return base
    require_or_skip("no root-owned, non-world-writable folder to put DKIM keys in (run as root)")
    raise AssertionError  # unreachable


@pytest.fixture(scope="module", name="stack")
def fixture_stack(knot: Knot) -> Iterator[SigningStack]:
    """Keys made, published and activated by mailprov; opendkim, Postfix and a sink running."""
    for tool in ("opendkim", "postfix"):
        if shutil.which(tool) is None:
            require_or_skip(f"{tool} not installed (scripts/install-test-deps.sh)")

    # The signer runs as user opendkim: the site must be reachable by it (pytest's tmp is 0700).
    site = Path(tempfile.mkdtemp(prefix="mailprov-dkim-test-", dir=_safe_base()))
    os.chmod(site, 0o755)
    (site / "run").mkdir()
    shutil.chown(site / "run", "opendkim", "opendkim")
    rsa_port, ed_port = free_port(), free_port()
    url = f"sqlite:///{site / 'mailprov.sqlite'}"
    (site / "mailprov.toml").write_text(
        f'[store]\nurl = "{url}"\n[site]\nhostname = "mail.example.test"\n'
        f'[dns]\ncheck_nameserver = "{knot.address}"\ncheck_timeout = 0.5\ncheck_retries = 0\n'
        '[dkim]\nkey_dir = "dkim"\nopendkim_dir = "opendkim"\npid_file = "run/opendkim.pid"\n'
        'ed25519_pid_file = "run/opendkim-ed25519.pid"\n'
        'algorithms = ["rsa-2048", "ed25519"]\n'
        f"milter_port = {rsa_port}\ned25519_milter_port = {ed_port}\n"
    )
    upgrade(url)
    mp = SiteCli(site)
    assert mp("domain", "add", "example.test").exit_code == 0  # type: ignore[attr-defined]
    _, rotated = mp.json("dkim", "rotate", "example.test")
    sink = Sink(free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    stack = SigningStack(site, mp, knot, sink, None, [])  # type: ignore[arg-type]
    stack.publish()
    for key in rotated["keys"]:  # type: ignore[union-attr]
        status, doc = mp.json("dkim", "activate", "example.test", key["selector"])
        assert status == 0, doc

    milters = postfix_milters(load_settings(config_file=site / "mailprov.toml", env={}))
    try:
        for conf, port in (("opendkim.conf", rsa_port), ("opendkim-ed25519.conf", ed_port)):
            stack.signers.append(_start_opendkim(site / "opendkim" / conf, port))
        stack.postfix = MiniPostfix.start(
            site / "pf", port=free_port(), sink_port=sink.port, milters=", ".join(milters)
        )
        yield stack
    finally:
        for process in stack.signers:  # OpenDKIM takes ~4 s to exit: let both wind down at once
            process.terminate()
        if stack.postfix is not None:
            stack.postfix.stop()
        for process in stack.signers:
            _stop(process)
        controller.stop()
        shutil.rmtree(site, ignore_errors=True)


def _active(stack: SigningStack) -> dict[str, str]:
    _, doc = stack.mp.json("dkim", "list", "example.test")
    return {k["algorithm"]: k["selector"] for k in doc["keys"] if k["signing"]}  # type: ignore[union-attr,index]


def test_mail_is_dual_signed_and_verifies(stack: SigningStack) -> None:
    """Mail through Postfix + OpenDKIM carries RSA and Ed25519 signatures that dkimpy verifies."""
    marker = stack.send()
    raw = stack.sink.wait_for(marker)
    found = _signatures(raw, stack.knot)
    active = _active(stack)
    assert sorted(found) == sorted(
        [
            ("rsa-sha256", active["rsa-2048"], True),
            ("ed25519-sha256", active["ed25519"], True),
        ]
    )


def test_rotation_switches_the_signing_selector(stack: SigningStack) -> None:
    """After rotate + publish + activate, new mail is signed with the new selectors and verifies."""
    before = _active(stack)
    _, rotated = stack.mp.json("dkim", "rotate", "example.test")
    new = {k["algorithm"]: k["selector"] for k in rotated["keys"]}  # type: ignore[union-attr,index]
    assert set(new.values()).isdisjoint(before.values())
    status, refused = stack.mp.json("dkim", "activate", "example.test", new["rsa-2048"])
    assert status == 71
    assert refused["error"]["code"] == "dkim-not-published"  # type: ignore[index]
    stack.publish()
    for selector in new.values():
        status, doc = stack.mp.json("dkim", "activate", "example.test", selector)
        assert status == 0, doc
        assert doc["signer"]["reloaded"] is True  # type: ignore[index]
    time.sleep(0.5)  # opendkim re-reads its tables on SIGUSR1 between messages
    raw = stack.sink.wait_for(stack.send())
    assert sorted(_signatures(raw, stack.knot)) == sorted(
        [
            ("rsa-sha256", new["rsa-2048"], True),
            ("ed25519-sha256", new["ed25519"], True),
        ]
    )
    status, early = stack.mp.json("dkim", "retire", "example.test", before["rsa-2048"])
    assert status == 22
    assert "in transit" in early["error"]["message"]  # type: ignore[index]
