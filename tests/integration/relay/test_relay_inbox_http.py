"""The web inbox over plain HTTP (http.client): its headers, its gate, bad input, the event stream.

The browser's side of the same pages is in test_relay_inbox_browser.py; here the
answers themselves are checked: which CSP each kind of response carries, that
hostile or broken mail renders as a page (escaped, cut, with its defects), and
that the token and Host rules of the API hold for the inbox too.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import smtplib
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from mailprov.testing import RelayRunner
from tests.integration.relay.relay_helpers import client

TOKEN = "inbox-" + "0123456789abcdef" * 2


def get(
    relay: RelayRunner, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """Status, headers and body of one request to the relay's HTTP listener."""
    assert relay.server is not None and relay.server.api_port is not None
    conn = http.client.HTTPConnection("127.0.0.1", relay.server.api_port, timeout=20)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def send(relay: RelayRunner, to: str, data: bytes) -> str:
    """Send one message; return its relay id."""
    with client(relay) as c:
        c.sendmail("app@client.test", [to], data)
    return relay.wait_for(to=to, timeout=5).id


def address() -> str:
    return f"inbox-{uuid.uuid4().hex[:10]}@example.test"


def test_pages_carry_a_strict_policy(capture: RelayRunner) -> None:
    """The list and message pages allow only the inbox's own script and style, and no framing."""
    to = address()
    msg_id = send(capture, to, b"Subject: csp\r\n\r\nhello\r\n")
    for path in ("/inbox/", f"/inbox/messages/{msg_id}"):
        status, headers, body = get(capture, path)
        assert status == 200
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "default-src 'none'" in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert b"<script>" not in body  # no inline script at all
        assert b'<script src="/inbox/static/inbox.js" defer></script>' in body


def test_the_html_part_is_sandboxed_and_blocks_remote_content(capture: RelayRunner) -> None:
    """The HTML part comes with CSP sandbox, no script, and remote content only when asked."""
    msg_id = send(
        capture,
        address(),
        b"Subject: h\r\nContent-Type: text/html\r\n\r\n<p>hi <img src=http://127.0.0.1:9/x></p>\r\n",
    )
    status, headers, body = get(capture, f"/inbox/messages/{msg_id}/html")
    assert (status, body.strip()) == (200, b"<p>hi <img src=http://127.0.0.1:9/x></p>")
    csp = headers["Content-Security-Policy"].split("; ")
    assert {"sandbox", "script-src 'none'", "img-src data:", "connect-src 'none'"} <= set(csp)
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Referrer-Policy"] == "no-referrer"
    _, headers, _ = get(capture, f"/inbox/messages/{msg_id}/html?remote=1")
    remote = headers["Content-Security-Policy"].split("; ")
    assert {"sandbox", "script-src 'none'", "img-src data: http: https:"} <= set(remote)
    _, _, page = get(capture, f"/inbox/messages/{msg_id}")
    assert re.search(rb"<iframe [^>]*\bsandbox src=", page)
    assert b"allow-" not in page


def test_downloads_are_attachments_that_never_render(capture: RelayRunner) -> None:
    """A part claiming text/html and the raw source are downloads with nosniff and a sandbox."""
    html = base64.b64encode(b"<script>alert(1)</script>").decode()
    data = (
        "Subject: att\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        '--B\r\nContent-Type: text/html\r\nContent-Disposition: attachment; filename="x\\"y.html"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{html}\r\n--B--\r\n"
    ).encode()
    msg_id = send(capture, address(), data)
    status, headers, body = get(capture, f"/inbox/messages/{msg_id}/parts/2")
    assert (status, body) == (200, b"<script>alert(1)</script>")
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"].startswith('attachment; filename="x_y.html"')
    assert "sandbox" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, body = get(capture, f"/inbox/messages/{msg_id}/raw")
    assert (status, headers["Content-Type"]) == (200, "message/rfc822")
    assert headers["Content-Disposition"].startswith(f'attachment; filename="{msg_id}.eml"')
    assert body.startswith(b"Subject: att\r\n")
    assert get(capture, f"/inbox/messages/{msg_id}/parts/9")[0] == 404
    assert get(capture, f"/inbox/messages/{msg_id}/parts/..%2F1")[0] == 400


BAD_INPUT = {
    "non-utf8-headers": (
        b"Subject: caf\xe9 \xff\xfe\r\nFrom: J\xf6rg <j@x.test>\r\nX-Bin: \x80\x81\r\n\r\nbody\r\n"
    ),
    "broken-mime": (
        b"Subject: broken\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=NOPE\r\n"
        b"\r\n--OTHER\r\nContent-Type: text/plain; charset=no-such-charset\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"
    ),
    "script-subject": b"Subject: <script>alert(1)</script>\r\n\r\n<b>not html</b>\r\n",
    "encoded-words": b"Subject: =?utf-8?b?4pyTIHdlbGNvbWU=?= =?bogus?q?x?=\r\n\r\nhi\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD_INPUT))
def test_bad_input_renders_as_an_escaped_page(capture: RelayRunner, name: str) -> None:
    """Broken MIME, 8-bit headers and markup in headers give a 200 page with all of it escaped."""
    msg_id = send(capture, address(), BAD_INPUT[name])
    status, headers, body = get(capture, f"/inbox/messages/{msg_id}")
    assert (status, headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    text = body.decode("utf-8")  # valid UTF-8 whatever the message held
    assert "<script>alert" not in text
    if name == "script-subject":
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "&lt;b&gt;not html&lt;/b&gt;" in text
    if name == "non-utf8-headers":
        assert "caf\ufffd" in text
    if name == "broken-mime":
        assert 'id="defects"' in text
    if name == "encoded-words":
        assert "✓ welcome" in text
    status, _, api = get(capture, f"/api/v1/messages/{msg_id}")
    assert status == 200
    assert json.loads(api)["id"] == msg_id
    mailbox = capture.store.get(msg_id).recipients[0]
    status, _, listing = get(capture, "/inbox/?mailbox=" + mailbox)
    assert status == 200
    assert f'data-id="{msg_id}"'.encode() in listing


def test_a_huge_message_is_cut_on_the_page_and_whole_in_the_download(
    make_relay: Any,
) -> None:
    """A 3 MB message shows the first 512 KB of text and 256 KB of source; .eml has it all."""
    relay = make_relay(size_limit=8 << 20)
    body = ("0123456789abcdef" * 60 + "\r\n") * 3200
    data = f"Subject: huge\r\nContent-Type: text/plain\r\n\r\n{body}".encode()
    msg_id = send(relay, "huge@example.test", data)
    started = time.monotonic()
    status, _, page = get(relay, f"/inbox/messages/{msg_id}")
    assert status == 200
    assert time.monotonic() - started < 10
    assert b"Cut at 512 KB" in page
    assert b"Cut at 256 KB" in page
    assert len(page) < 2 << 20
    assert len(get(relay, f"/inbox/messages/{msg_id}/raw")[2]) == len(data)


def test_bad_parameters_get_an_escaped_error_page(capture: RelayRunner) -> None:
    """An unknown or malformed parameter is a 400 page naming it, escaped."""
    status, headers, body = get(capture, "/inbox/?%3Cscript%3E=1")
    assert (status, headers["Content-Type"]) == (400, "text/html; charset=utf-8")
    assert b"&#39;&lt;script&gt;&#39;" in body
    assert get(capture, "/inbox/?before=soon")[0] == 400
    assert get(capture, "/inbox/messages/nope")[0] == 404


def test_the_gate_guards_the_inbox(capture: RelayRunner) -> None:
    """A foreign Host gets 421, a foreign Origin 403, a write without JSON 415."""
    assert get(capture, "/inbox/", headers={"Host": "rebound.example"})[0] == 421
    origin = {"Origin": "http://evil.example"}
    assert get(capture, "/inbox/events", headers=origin)[0] == 403
    msg_id = send(capture, address(), b"Subject: keep\r\n\r\nx\r\n")
    status, _, _ = get(capture, f"/inbox/messages/{msg_id}", method="DELETE")
    assert status == 415
    assert capture.store.get(msg_id).id == msg_id


def test_a_token_is_asked_for_with_basic_and_accepted_both_ways(
    make_relay: Any, tmp_path: Path
) -> None:
    """With a token, pages answer 401 with a Basic challenge; Basic or Bearer with the token pass."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    relay = make_relay(api_token_file=token_file)
    status, headers, _ = get(relay, "/inbox/")
    assert (status, headers["WWW-Authenticate"].split()[0]) == (401, "Basic")
    status, headers, _ = get(relay, "/api/v1/messages")
    assert (status, headers["WWW-Authenticate"].split()[0]) == (401, "Bearer")
    basic = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
    assert get(relay, "/inbox/", headers={"Authorization": f"Basic {basic}"})[0] == 200
    # mailprov's own API keeps to Bearer: scripts send that, and a browser never needs it.
    assert get(relay, "/api/v1/messages", headers={"Authorization": f"Basic {basic}"})[0] == 401
    assert get(relay, "/inbox/", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    wrong = base64.b64encode(b"anyone:wrong-token-0123456789").decode()
    assert get(relay, "/inbox/", headers={"Authorization": f"Basic {wrong}"})[0] == 401
    assert get(relay, "/inbox/", headers={"Authorization": "Basic !!!"})[0] == 401


def read_events(response: http.client.HTTPResponse, count: int) -> list[dict[str, Any]]:
    """The next ``count`` 'message' events of an event stream."""
    found: list[dict[str, Any]] = []
    kind = ""
    while len(found) < count:
        line = response.readline().decode().rstrip("\r\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind == "message":
            found.append(json.loads(line[6:]))
    return found


def test_the_event_stream_sends_matching_arrivals_and_ends_when_the_relay_stops(
    make_relay: Any,
) -> None:
    """/inbox/events sends each new message of its mailbox as it arrives; stop() ends the stream."""
    relay = make_relay()
    assert relay.server is not None and relay.server.api_port is not None
    conn = http.client.HTTPConnection("127.0.0.1", relay.server.api_port, timeout=10)
    try:
        conn.request("GET", "/inbox/events?mailbox=live@example.test&after=0")
        response = conn.getresponse()
        assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert response.readline() == b"retry: 3000\n"
        with smtplib.SMTP(relay.host, relay.port, timeout=10) as c:
            c.sendmail("a@client.test", ["other@example.test"], b"Subject: not this\r\n\r\nx\r\n")
            c.sendmail("a@client.test", ["live@example.test"], b"Subject: <this one>\r\n\r\nx\r\n")
        (event,) = read_events(response, 1)
        assert (event["subject"], event["to"]) == ("<this one>", ["live@example.test"])
        assert event["url"] == f"/inbox/messages/{event['id']}"
        assert relay.server.arrivals is not None
        assert relay.server.arrivals.subscribers == 1
        started = time.monotonic()
        relay.stop()
        assert time.monotonic() - started < 10
        assert response.read().strip() == b""  # the stream ended: read() returned
    finally:
        conn.close()


def test_a_reconnecting_stream_goes_on_from_its_last_event(capture: RelayRunner) -> None:
    """Events carry their seq as id; with Last-Event-ID the stream resends only newer messages."""
    to = address()
    send(capture, to, b"Subject: one\r\n\r\nx\r\n")
    send(capture, to, b"Subject: two\r\n\r\nx\r\n")
    assert capture.server is not None and capture.server.api_port is not None
    conn = http.client.HTTPConnection("127.0.0.1", capture.server.api_port, timeout=10)
    try:
        conn.request("GET", f"/inbox/events?mailbox={to}&after=0")
        first = read_events(conn.getresponse(), 2)
    finally:
        conn.close()
    assert [e["subject"] for e in first] == ["one", "two"]
    conn = http.client.HTTPConnection("127.0.0.1", capture.server.api_port, timeout=10)
    try:
        headers = {"Last-Event-ID": str(first[0]["seq"])}
        conn.request("GET", f"/inbox/events?mailbox={to}&after=0", headers=headers)
        response = conn.getresponse()
        assert [e["subject"] for e in read_events(response, 1)] == ["two"]
        send(capture, to, b"Subject: three\r\n\r\nx\r\n")
        assert [e["subject"] for e in read_events(response, 1)] == ["three"]
    finally:
        conn.close()
