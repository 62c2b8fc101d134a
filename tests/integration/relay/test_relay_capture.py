"""Capture mode with real clients: mailboxes per recipient, limits, smuggling, bad input."""

from __future__ import annotations

import smtplib
import socket
import subprocess

import pytest

from mailprov.testing import RelayRunner
from tests.integration.relay.relay_helpers import client, eventually, need

MSG = b"From: a@client.test\r\nTo: x@example.test\r\nSubject: %s\r\n\r\nbody line\r\n"


def send(relay: RelayRunner, rcpts: list[str], subject: str = "hello", **kw: object) -> dict:
    with client(relay) as c:
        return c.sendmail("a@client.test", rcpts, MSG % subject.encode(), **kw)  # type: ignore[arg-type]


def read_reply(sock: socket.socket) -> bytes:
    """One complete (possibly multi-line) SMTP reply, or what came before the connection closed."""
    data = b""
    while True:
        lines = data.split(b"\r\n")
        if len(lines) > 1 and len(lines[-2]) >= 4 and lines[-2][3:4] == b" ":
            return data
        try:
            chunk = sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            chunk = b""
        if not chunk:
            return data
        data += chunk


def raw_session(relay: RelayRunner, lines: list[bytes]) -> list[bytes]:
    """Send raw protocol lines, reading one reply after each: the greeting and the replies."""
    with socket.create_connection((relay.host, relay.port), timeout=5) as sock:
        replies = [read_reply(sock)]
        for line in lines:
            sock.sendall(line)
            replies.append(read_reply(sock))
    return replies


def test_one_message_to_three_recipients_is_in_three_mailboxes(capture: RelayRunner) -> None:
    """One message to three recipients is stored once and visible in each recipient's mailbox."""
    capture.purge()
    send(capture, ["ann@example.test", "bob@example.test", "cy@other.test"], "three")
    for box in ("ann@example.test", "bob@example.test", "cy@other.test"):
        found = capture.messages(to=box)
        assert [m.subject for m in found] == ["three"]
    assert capture.store.count() == 1
    assert capture.messages(to="nobody@example.test") == []


def test_stored_bytes_are_exactly_what_was_sent(capture: RelayRunner) -> None:
    """The raw message read back equals the DATA the client sent (dot-unstuffed)."""
    capture.purge()
    body = b"Subject: exact\r\n\r\n..leading dot\r\nline two\r\n"
    with client(capture) as c:
        c.sendmail("a@client.test", ["exact@example.test"], body)
    got = capture.wait_for(to="exact@example.test", timeout=5)
    assert (
        got.raw
        == b"Subject: exact\r\n\r\n..leading dot\r\nline two\r\n".replace(b"\r\n..", b"\r\n.", 1)
        or got.raw == body
    )
    assert b"line two" in got.raw


def test_swaks_message_is_captured_with_its_headers(capture: RelayRunner) -> None:
    """A message sent by swaks is captured with its envelope, subject and header."""
    capture.purge()
    swaks = need("swaks")
    out = subprocess.run(
        [
            swaks,
            "--server",
            f"{capture.host}:{capture.port}",
            "--from",
            "s@client.test",
            "--to",
            "swaks@example.test",
            "--header",
            "Subject: via swaks",
            "--header",
            "X-Test-Id: 42",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stdout
    got = capture.wait_for(to="swaks@example.test", timeout=5)
    assert (got.sender, got.subject) == ("s@client.test", "via swaks")
    assert got.message["X-Test-Id"] == "42"
    assert capture.messages(header=("X-Test-Id", "42"))[0].id == got.id


def test_smtp_source_load_is_stored_completely(capture: RelayRunner) -> None:
    """Every message smtp-source gets a 250 for is stored (stored == sent)."""
    capture.purge()
    tool = need("smtp-source")
    subprocess.run(
        [
            tool,
            "-s",
            "5",
            "-l",
            "512",
            "-m",
            "200",
            "-t",
            "load@example.test",
            f"{capture.host}:{capture.port}",
        ],
        check=True,
        timeout=60,
        stdout=subprocess.DEVNULL,
    )
    assert capture.store.count("load@example.test") == 200


def test_oversize_message_is_refused_and_not_stored(make_relay) -> None:
    """Over the SIZE limit: 552 at MAIL (with SIZE=) or after DATA; nothing is stored."""
    relay = make_relay(size_limit=2000)
    big = b"Subject: big\r\n\r\n" + b"x" * 70 + (b"\r\n" + b"x" * 70) * 60
    with client(relay) as c, pytest.raises(smtplib.SMTPSenderRefused) as err:
        c.sendmail("a@client.test", ["big@example.test"], big)
    assert err.value.smtp_code == 552
    with client(relay) as c:
        c.helo()  # plain HELO: no SIZE parameter, so the limit bites after DATA
        c.mail("a@client.test")
        c.rcpt("big@example.test")
        assert c.data(big)[0] == 552
    assert relay.store.count() == 0


def test_too_many_recipients_get_452(make_relay) -> None:
    """Recipients beyond max_recipients are refused with 452; the others get the message."""
    relay = make_relay(max_recipients=2)
    with client(relay) as c:
        c.ehlo()
        c.mail("a@client.test")
        assert c.rcpt("r1@example.test")[0] == 250
        assert c.rcpt("r2@example.test")[0] == 250
        code, text = c.rcpt("r3@example.test")
        assert (code, b"too many" in text) == (452, True)
        assert c.data(b"Subject: two\r\n\r\nx\r\n")[0] == 250
    assert sorted(m["mailbox"] for m in relay.store.mailboxes()) == [
        "r1@example.test",
        "r2@example.test",
    ]


def test_non_ascii_address_needs_smtputf8(capture: RelayRunner) -> None:
    """A non-ASCII recipient is refused without SMTPUTF8 and accepted with it."""
    capture.purge()
    with client(capture) as c:
        c.ehlo()
        assert c.has_extn("smtputf8")
        c.command_encoding = "utf-8"
        c.mail("a@client.test")
        assert c.rcpt("jürgen@example.test")[0] == 553
        c.rset()
        c.mail("a@client.test", ["SMTPUTF8"])
        assert c.rcpt("jürgen@example.test")[0] == 250
        assert c.data("Subject: ü\r\n\r\nx\r\n".encode())[0] == 250
    assert capture.messages(to="jürgen@example.test")


def test_bare_lf_smuggling_is_refused_and_disconnected(capture: RelayRunner) -> None:
    """A message with a bare <LF> (smuggling attempt) gets 521 and nothing is stored."""
    capture.purge()
    replies = raw_session(
        capture,
        [
            b"EHLO c.test\r\n",
            b"MAIL FROM:<a@client.test>\r\n",
            b"RCPT TO:<v@example.test>\r\n",
            b"DATA\r\n",
            b"Subject: s\r\n\r\nx\n.\nMAIL FROM:<evil@client.test>\nRCPT TO:<v@example.test>\n"
            b"DATA\nSubject: smuggled\n\r\n.\r\n",
        ],
    )
    assert replies[-1].startswith(b"521 5.5.2")
    assert capture.store.count() == 0


def test_client_vanishing_mid_data_leaves_nothing(capture: RelayRunner) -> None:
    """A client that disconnects in the middle of DATA leaves no message behind."""
    capture.purge()
    with socket.create_connection((capture.host, capture.port), timeout=5) as sock:
        read_reply(sock)
        for line in (
            b"EHLO c.test\r\n",
            b"MAIL FROM:<a@client.test>\r\n",
            b"RCPT TO:<half@example.test>\r\n",
            b"DATA\r\n",
        ):
            sock.sendall(line)
            read_reply(sock)
        sock.sendall(b"Subject: half\r\n\r\nsome but not all")
    send(capture, ["after@example.test"], "after")
    assert [m.subject for m in capture.messages()] == ["after"]


def test_malformed_commands_get_5xx(capture: RelayRunner) -> None:
    """Malformed commands are answered with 5xx syntax errors, and DATA without RCPT with 503."""
    replies = raw_session(
        capture,
        [
            b"EHLO c.test\r\n",
            b"MAIL\r\n",
            b"RCPT TO:<x@example.test>\r\n",
            b"DATA\r\n",
            b"BOGUS\r\n",
        ],
    )
    assert replies[2][:3] == b"501"
    assert replies[3][:3] == b"503"
    assert replies[4][:3] == b"503"
    assert replies[5][:3] == b"500"


def test_unwritable_storage_answers_4xx_and_recovers(make_relay) -> None:
    """When the segment cannot be written, the client gets 451; later mail is stored again."""
    relay = make_relay()
    send(relay, ["first@example.test"], "first")
    store = relay.server.ctx.store  # the server's own store object
    segment_fd = store._segment_fd
    import os

    read_only = os.open(store.segment_path(store._segment), os.O_RDONLY)
    saved = os.dup(segment_fd)
    os.dup2(read_only, segment_fd)
    try:
        with client(relay) as c, pytest.raises(smtplib.SMTPDataError) as err:
            c.sendmail("a@client.test", ["lost@example.test"], MSG % b"lost")
        assert err.value.smtp_code == 451
    finally:
        os.dup2(saved, segment_fd)
        os.close(saved)
        os.close(read_only)
    send(relay, ["later@example.test"], "later")
    assert [m.subject for m in relay.messages()] == ["first", "later"]
    assert eventually(lambda: relay.store.raw(relay.messages(to="later@example.test")[0].id))
