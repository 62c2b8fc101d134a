"""Bad input through the real Postfix + rspamd + Dovecot: malformed messages are scored and
delivered (with a verdict that matches the thresholds) or refused at SMTP time, never
lost, and rspamd keeps running and answering.

Every case carries a token of its own in its body; "not lost" means that each message
Postfix accepted is found by that token in the mailbox, and each one it did not accept
was refused to the sender (who keeps it). The sender domain, badinput.test, has no zone
(other modules serve sender.test with DMARC p=reject, which would refuse these for that)."""

from __future__ import annotations

import smtplib
import time
import uuid
from collections.abc import Callable

import pytest

from mailprov.mailstack import alive
from tests.integration.render.test_render_stack import fresh, imap_read
from tests.integration.stack import MailStack

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def _nested(depth: int) -> bytes:
    head = b""
    for level in range(depth):
        head += f'Content-Type: multipart/mixed; boundary="n{level}"\r\n\r\n--n{level}\r\n'.encode()
    return head + b"Content-Type: text/plain\r\n\r\ninnermost\r\n"


#: name -> (headers, body) builders; ``{to}`` and the token are filled in per case.
CASES: dict[str, Callable[[str, str], bytes]] = {
    "no closing boundary, bad base64": lambda to, tok: (
        f"From: a@badinput.test\r\nTo: {to}\r\nSubject: {tok}\r\nMIME-Version: 1.0\r\n".encode()
        + b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
        + f"Content-Type: text/plain\r\n\r\n{tok}\r\n--b1\r\n".encode()
        + b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"
    ),
    "8-bit bytes in From, Subject and a header name's value": lambda to, tok: (
        b"From: Caf\xe9 \xff <a@badinput.test>\r\n"
        + f"To: {to}\r\n".encode()
        + b"Subject: r\xe9sum\xe9 \xc3\x28 \x80\x81\r\n"
        + b"X-Junk: \xfe\xfe\xfe\r\n\r\n"
        + f"{tok}\r\n".encode()
    ),
    "a 200 kB header (beyond Postfix's header_size_limit)": lambda to, tok: (
        f"From: a@badinput.test\r\nTo: {to}\r\nSubject: {tok}\r\n".encode()
        + b"X-Huge: "
        + b"a" * 200_000
        + b"\r\n\r\n"
        + f"{tok}\r\n".encode()
    ),
    "5000 headers": lambda to, tok: (
        f"From: a@badinput.test\r\nTo: {to}\r\nSubject: {tok}\r\n".encode()
        + b"".join(f"X-Many-{i}: v{i}\r\n".encode() for i in range(5000))
        + f"\r\n{tok}\r\n".encode()
    ),
    "no header at all": lambda to, tok: f"\r\n{tok}\r\n".encode(),
    "MIME nested 300 deep": lambda to, tok: (
        f"From: a@badinput.test\r\nTo: {to}\r\nSubject: {tok}\r\nMIME-Version: 1.0\r\n".encode()
        + _nested(300)
        + f"{tok}\r\n".encode()
    ),
    "bogus charset, NUL bytes and a 100 kB line": lambda to, tok: (
        f"From: a@badinput.test\r\nTo: {to}\r\nSubject: {tok}\r\nMIME-Version: 1.0\r\n".encode()
        + b"Content-Type: text/plain; charset=x-no-such-charset\r\n"
        + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        + f"{tok}\r\n".encode()
        + b"nul\x00bytes=\r\n=ZZ=\r\n"
        + b"b" * 100_000
        + b"\r\n"
    ),
}


def _found(stack: MailStack, user: str, token: str) -> bytes | None:
    """The delivered file holding ``token``, read from the Maildir itself (Dovecot's own
    MIME parser, and so IMAP SEARCH, gives up on some of these messages)."""
    local, _, domain = user.partition("@")
    maildir = stack.root / "mail" / domain / local / "Maildir"
    for sub in ("new", "cur"):
        for path in sorted((maildir / sub).glob("*")) if (maildir / sub).is_dir() else []:
            raw = path.read_bytes()
            if token.encode() in raw:
                return raw
    return None


def _wait_found(stack: MailStack, user: str, token: str, case: str) -> bytes:
    deadline = time.monotonic() + 30
    while (raw := _found(stack, user, token)) is None:
        if time.monotonic() > deadline:
            msg = f"{case!r} ({token}) accepted but never delivered\n{stack.log()[-3000:]}"
            raise AssertionError(msg)
        time.sleep(0.3)
    return raw


def _send(stack: MailStack, to: str, raw: bytes) -> int | None:
    """Send ``raw`` to port 25; None when accepted, else the SMTP refusal's code."""
    with smtplib.SMTP(
        stack.host, stack.ports["smtp"], local_hostname="mx.badinput.test", timeout=60
    ) as client:
        try:
            client.sendmail("a@badinput.test", [to], raw)
        except smtplib.SMTPResponseException as exc:
            return exc.smtp_code
    return None


def _verdict(raw: bytes) -> tuple[str, float]:
    """X-Spam-Status: (Yes|No, score) of a delivered message (Maildir files end lines in LF)."""
    head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    lines = [ln for ln in head.split(b"\n") if ln.startswith(b"X-Spam-Status:")]
    assert len(lines) == 1, head[-3000:]
    text = lines[0].decode("ascii", "replace").removeprefix("X-Spam-Status:").strip()
    verdict, _, rest = text.partition(", score=")
    assert verdict in ("Yes", "No"), text
    return verdict, float(rest.split()[0])


def test_malformed_messages_are_delivered_scored_or_refused_never_lost(
    rspamd_stack: MailStack,
) -> None:
    """Each malformed message is accepted and delivered with a verdict that matches its
    score (Yes from add_header_score 6.0) or refused with a 5xx; rspamd's process is the
    same one afterwards and still scores a plain message."""
    stack = rspamd_stack
    pid = stack.pids["rspamd"]
    to = fresh(stack, "bad")
    # Spam stays in INBOX for this owner: what is tested is delivery, not filing.
    status, doc = stack.cli.json("mailbox", "set", to, "--no-spam-to-junk")
    assert status == 0, doc
    outcomes = {}
    for name, build in CASES.items():
        token = f"tok{uuid.uuid4().hex[:12]}"
        refused = _send(stack, to, build(to, token))
        if refused is not None:
            assert 500 <= refused < 600, (name, refused)  # refused: the sender keeps it
            outcomes[name] = f"refused {refused}"
            continue
        verdict, score = _verdict(_wait_found(stack, to, token, name))
        assert (verdict == "Yes") == (score >= 6.0), (name, verdict, score)
        outcomes[name] = f"delivered {verdict} {score}"
        assert alive(pid), (name, stack.log()[-3000:])
    assert stack.pids["rspamd"] == pid and alive(pid)
    # Every case got an answer (none hung or vanished), and rspamd still scores normal mail.
    assert set(outcomes) == set(CASES), outcomes
    subject = f"after-{uuid.uuid4().hex[:8]}"
    with smtplib.SMTP(stack.host, stack.ports["smtp"], timeout=30) as client:
        client.sendmail(
            "a@badinput.test",
            [to],
            f"From: a@badinput.test\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nfine\r\n".encode(),
        )
    assert b"X-Spam-Status: " in imap_read(stack, to, subject)


def test_gtube_is_refused_at_smtp_time(rspamd_stack: MailStack) -> None:
    """GTUBE scores above reject_score: 554 5.7.1 at the end of DATA, nothing delivered."""
    to = fresh(rspamd_stack, "gtube")
    token = f"tok{uuid.uuid4().hex[:12]}"
    raw = (
        f"From: a@badinput.test\r\nTo: {to}\r\nSubject: {token}\r\n\r\n{token}\r\n".encode()
        + GTUBE
        + b"\r\n"
    )
    with (
        smtplib.SMTP(rspamd_stack.host, rspamd_stack.ports["smtp"], timeout=30) as client,
        pytest.raises(smtplib.SMTPDataError) as refused,
    ):
        client.sendmail("a@badinput.test", [to], raw)
    assert refused.value.smtp_code == 554, refused.value
    assert b"5.7.1" in refused.value.smtp_error
    time.sleep(1)
    assert _found(rspamd_stack, to, token) is None
