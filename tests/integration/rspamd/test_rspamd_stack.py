"""rspamd as Postfix's milter on the real stack: SPF, DKIM and DMARC of inbound mail checked
against records the private knot serves, the sender's DMARC policy honoured at SMTP time,
and the documented behaviour while rspamd is down.

rspamd resolves through knot only ([rspamd] nameservers); "the internet" is 127.0.0.2,
which the sender domain's SPF record names, and 127.0.0.3, which it does not.
"""

from __future__ import annotations

import base64
import email
import os
import smtplib
import time
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailprov.system import rspamd
from tests.integration.knot import Knot
from tests.integration.render.test_render_stack import PW, fresh, imap_read, submit
from tests.integration.rspamd.test_spam_settings import landed
from tests.integration.stack import MailStack, alive

SENDER = "sender.test"
SELECTOR = b"t1"


@pytest.fixture(scope="module", name="sender_key")
def fixture_sender_key(knot: Knot) -> bytes:
    """An RSA key of sender.test, whose zone (SPF: 127.0.0.2 only, DMARC p=reject, the
    DKIM key) knot serves; the private key in PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    p = base64.b64encode(public).decode()
    dkim_txt = " ".join(f'"{p[i : i + 200]}"' for i in range(0, len(p), 200))
    zone = "\n".join(
        [
            f"$ORIGIN {SENDER}.",
            "$TTL 60",
            f"@ IN SOA ns.{SENDER}. admin.{SENDER}. 1 60 60 600 60",
            f"@ IN NS ns.{SENDER}.",
            "ns IN A 127.0.0.1",
            # A sending host as the world sees one: its name resolves, the domain has an MX.
            "@ IN MX 10 mx",
            "mx IN A 127.0.0.2",
            '@ IN TXT "v=spf1 ip4:127.0.0.2 -all"',
            '_dmarc IN TXT "v=DMARC1; p=reject"',
            f'{SELECTOR.decode()}._domainkey IN TXT ( "v=DKIM1; k=rsa; p=" {dkim_txt} )',
            "",
        ]
    )
    knot.load_zone(SENDER, zone)
    # ...and its address has a PTR back to that name.
    reverse = "0.0.127.in-addr.arpa"
    knot.load_zone(
        reverse,
        f"$ORIGIN {reverse}.\n$TTL 60\n@ IN SOA ns.{SENDER}. admin.{SENDER}. 1 60 60 600 60\n"
        f"@ IN NS ns.{SENDER}.\n2 IN PTR mx.{SENDER}.\n",
    )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _message(
    to: str, subject: str, *, sign_with: bytes | None = None, domain: str = SENDER
) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"ceo@{domain}"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate()
    msg["Message-ID"] = make_msgid(domain=SENDER)
    msg.set_content("Quarterly numbers attached in the next message.\n")
    raw = msg.as_bytes().replace(b"\n", b"\r\n")
    if sign_with is not None:
        raw = (
            dkim.sign(
                raw,
                SELECTOR,
                SENDER.encode(),
                sign_with,
                include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
            )
            + raw
        )
    return raw


def _send(stack: MailStack, to: str, raw: bytes, source: str, domain: str = SENDER) -> None:
    """Send ``raw`` to port 25 from ``source`` as ceo@``domain`` (raises on refusal)."""
    with smtplib.SMTP(
        stack.host,
        stack.ports["smtp"],
        local_hostname=f"mx.{SENDER}",
        source_address=(source, 0),
        timeout=30,
    ) as c:
        c.sendmail(f"ceo@{domain}", [to], raw)


def test_signed_message_from_an_spf_listed_host_passes_dkim_spf_and_dmarc(
    rspamd_stack: MailStack, sender_key: bytes
) -> None:
    """A message DKIM-signed by sender.test, from the host its SPF names, is delivered with
    dkim=pass, spf=pass and dmarc=pass in rspamd's Authentication-Results."""
    to = fresh(rspamd_stack, "ar")
    subject = f"t-{uuid.uuid4().hex[:10]}"
    _send(rspamd_stack, to, _message(to, subject, sign_with=sender_key), "127.0.0.2")
    got = email.message_from_bytes(imap_read(rspamd_stack, to, subject))
    results = " ".join(got.get_all("Authentication-Results") or [])
    # rspamd's own header, under our authserv-id ([site] hostname).
    assert results.startswith(f"mail.{rspamd_stack.domain};"), results
    for verdict in ("dkim=pass", "spf=pass", "dmarc=pass"):
        assert verdict in results, results
    assert "header.d=sender.test" in results
    # X-Spam-Status: No, score=S, below [rspamd] add_header_score (6.0, the default).
    status = str(got["X-Spam-Status"])
    assert status.startswith("No, score="), status
    assert float(status.partition("score=")[2].split()[0]) < 6.0, status


def test_forged_from_of_a_p_reject_domain_is_refused_at_smtp_time(
    rspamd_stack: MailStack, sender_key: bytes
) -> None:
    """An unsigned message with From: sender.test from a host its SPF does not name fails
    DMARC, and the domain's p=reject is honoured: refused with 5xx at the end of DATA."""
    del sender_key  # the zone must be served
    to = fresh(rspamd_stack, "forged")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        _send(rspamd_stack, to, _message(to, "forged"), "127.0.0.3")
    assert refused.value.smtp_code == 554, refused.value
    assert b"5.7.1" in refused.value.smtp_error, refused.value


def test_forged_from_of_a_p_quarantine_domain_is_delivered_marked_as_spam(
    rspamd_stack: MailStack, knot: Knot
) -> None:
    """The same forgery of a domain whose DMARC says p=quarantine is delivered, with
    dmarc=fail in Authentication-Results and X-Spam: Yes, into Junk (the owner's spam
    settings: the site's defaults)."""
    domain = "quarantine.test"
    knot.load_zone(
        domain,
        f"$ORIGIN {domain}.\n$TTL 60\n@ IN SOA ns admin 1 60 60 600 60\n@ IN NS ns\n"
        'ns IN A 127.0.0.1\n@ IN TXT "v=spf1 ip4:127.0.0.2 -all"\n'
        '_dmarc IN TXT "v=DMARC1; p=quarantine"\n',
    )
    to = fresh(rspamd_stack, "quar")
    subject = f"t-{uuid.uuid4().hex[:10]}"
    _send(rspamd_stack, to, _message(to, subject, domain=domain), "127.0.0.3", domain)
    folder, got = landed(rspamd_stack, to, subject)
    results = " ".join(got.get_all("Authentication-Results") or [])
    assert "dmarc=fail" in results, results
    assert "(policy=quarantine)" in results, results
    assert "spf=fail" in results, results
    assert got["X-Spam"] == "Yes", got.items()
    # ...and, scored above the site's default junk threshold, filed into Junk.
    assert folder == "Junk", got["X-Spam-Status"]


def test_arc_sealed_message_shows_arc_pass(rspamd_stack: MailStack, sender_key: bytes) -> None:
    """A message sealed by an intermediary (ARC, RFC 8617) whose key knot serves is
    delivered with arc=pass in Authentication-Results."""
    to = fresh(rspamd_stack, "arc")
    subject = f"t-{uuid.uuid4().hex[:10]}"
    raw = (
        f"Authentication-Results: lists.{SENDER}; dkim=pass header.d={SENDER}\r\n".encode()
        + _message(to, subject, sign_with=sender_key)
    )
    seal = dkim.arc_sign(
        raw,
        SELECTOR,
        SENDER.encode(),
        sender_key,
        f"lists.{SENDER}".encode(),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    _send(rspamd_stack, to, b"".join(seal) + raw, "127.0.0.2")
    got = email.message_from_bytes(imap_read(rspamd_stack, to, subject))
    results = " ".join(got.get_all("Authentication-Results") or [])
    assert "arc=pass" in results, results


def test_malformed_message_is_scored_not_crashed_on(
    rspamd_stack: MailStack, sender_key: bytes
) -> None:
    """Broken MIME (no closing boundary), 8-bit bytes in headers and a 20 kB header are
    scored and delivered; rspamd keeps running."""
    del sender_key
    to = fresh(rspamd_stack, "broken")
    subject = f"t-{uuid.uuid4().hex[:10]}"
    raw = (
        f"From: ceo@{SENDER}\r\nTo: {to}\r\nSubject: {subject}\r\n".encode()
        + b"X-Eight-Bit: caf\xe9 \xff\xfe\r\n"
        + b"X-Huge: "
        + b"a" * 20_000
        + b"\r\n"
        + b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        + b"--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b1\r\n"
        + b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b"!!!not base64!!!\r\n"
    )
    _send(rspamd_stack, to, raw, "127.0.0.2")
    _, got = landed(rspamd_stack, to, subject)  # into the inbox or Junk, by its score
    assert str(got["X-Spam-Status"]).startswith(("No, score=", "Yes, score=")), got.items()
    assert alive(rspamd_stack.pids["rspamd"])


def test_reload_signals_the_running_rspamd_only(
    rspamd_stack: MailStack, sender_key: bytes, tmp_path: Path
) -> None:
    """deploy's reload sends SIGHUP to the rspamd its config names, which keeps answering;
    a PID file naming another process signals nothing."""
    del sender_key  # the zone must be served
    conf = rspamd_stack.target / "rspamd" / "rspamd.conf"
    pid_file = rspamd.pid_file_of(conf)
    assert pid_file is not None
    assert rspamd.reload(pid_file)
    stale = tmp_path / "stale.pid"
    stale.write_text(f"{os.getpid()}\n")
    assert not rspamd.reload(stale)
    to = fresh(rspamd_stack, "hup")
    subject = f"t-{uuid.uuid4().hex[:10]}"
    deadline = time.monotonic() + 30
    while True:  # the workers restart after SIGHUP; the milter answers again shortly
        try:
            _send(rspamd_stack, to, _message(to, subject), "127.0.0.2")
            break
        except smtplib.SMTPResponseException:
            assert time.monotonic() < deadline, rspamd_stack.log()[-2000:]
            time.sleep(0.5)
    assert subject.encode() in imap_read(rspamd_stack, to, subject)
    assert alive(rspamd_stack.pids["rspamd"])


def test_while_rspamd_is_down_port_25_defers_and_submission_still_sends(
    rspamd_stack: MailStack, sender_key: bytes
) -> None:
    """rspamd stopped: port 25 answers 451 4.7.1 (milter default_action = tempfail), so the
    sender retries later; our own user on submission still sends (default_action = accept)."""
    to = fresh(rspamd_stack, "down")
    raw = _message(to, "while down", sign_with=sender_key)
    rspamd_stack.stop_filter()
    try:
        with pytest.raises(smtplib.SMTPResponseException) as deferred:
            _send(rspamd_stack, to, raw, "127.0.0.2")
        assert deferred.value.smtp_code == 451, deferred.value
        assert b"4.7.1" in deferred.value.smtp_error
        subject = f"t-{uuid.uuid4().hex[:10]}"
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = to, to, subject
        msg.set_content("sent while rspamd is down")
        submit(rspamd_stack, to, msg, PW)
        assert subject.encode() in imap_read(rspamd_stack, to, subject)
    finally:
        rspamd_stack.start_filter()
