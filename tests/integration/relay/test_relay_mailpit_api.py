"""The Mailpit-compatible API's behaviour over HTTP: search language, ids, views, send, gate, 404s."""

from __future__ import annotations

import base64
import json
import smtplib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mailprov.testing import RelayRunner

TOKEN = "mailpit-token-0123456789abcdef"


def call(
    relay: RelayRunner,
    path: str,
    *,
    method: str = "GET",
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """Status, headers and body (JSON when it is JSON) of one request below /mailpit."""
    assert relay.server is not None
    url = f"http://127.0.0.1:{relay.server.api_port}/mailpit{path}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback URL)
            status, fields, body = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:  # closes its connection
            status, fields, body = exc.code, dict(exc.headers), exc.read()
    if fields.get("Content-Type", "").startswith("application/json"):
        return status, fields, json.loads(body)
    return status, fields, body


def send(relay: RelayRunner, sender: str, rcpts: list[str], raw: str) -> None:
    """Send one message over SMTP."""
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as c:
        c.sendmail(sender, rcpts, raw.replace("\n", "\r\n").encode())


@pytest.fixture(name="mailbox")
def fixture_mailbox(make_relay: Callable[..., RelayRunner]) -> RelayRunner:
    """A relay holding four messages that differ in each searchable way."""
    relay = make_relay()
    send(
        relay,
        "shop@store.test",
        ["ann@example.test"],
        "From: Shop <news@store.test>\nTo: ann@example.test\nSubject: Welcome, Ann\n"
        "X-Tags: signup, welcome\n\nhello ann\n",
    )
    send(
        relay,
        "app@rig.test",
        ["joann@example.test", "boss@corp.test"],
        "From: app@rig.test\nTo: joann@example.test\nCc: Boss <boss@corp.test>\n"
        "Reply-To: help@rig.test\nSubject: Your code\n\ncode 111111\n",
    )
    send(
        relay,
        "app@rig.test",
        ["bob@example.test"],
        "From: app@rig.test\nTo: bob@example.test\nSubject: Invoice\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\nsee file\n'
        '--b\nContent-Type: application/pdf\nContent-Disposition: attachment; filename="i.pdf"\n'
        "Content-Transfer-Encoding: base64\n\nJVBERi0=\n--b--\n",
    )
    send(
        relay,
        "app@rig.test",
        ["carl@example.test"],
        "From: app@rig.test\nTo: carl@example.test\nSubject: Your code\n\ncode 222222\n",
    )
    return relay


def subjects(relay: RelayRunner, query: str) -> tuple[int, list[str]]:
    """messages_count and the subjects (newest first) of one search."""
    status, _, body = call(relay, "/api/v1/search?" + urllib.parse.urlencode({"query": query}))
    assert 200 == status, body
    return body["messages_count"], [m["Subject"] for m in body["messages"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("to:ann@example.test", (1, ["Welcome, Ann"])),  # a full address is exact: not joann@
        ("to:ann@", (2, ["Your code", "Welcome, Ann"])),  # a part is a substring
        ("to:boss@corp.test", (1, ["Your code"])),  # envelope recipients, Cc'd ones too
        ("bcc:boss", (0, [])),  # named in Cc, so not a Bcc
        ("from:news@store.test", (1, ["Welcome, Ann"])),  # the From header, not only MAIL FROM
        ("from:shop@store.test", (1, ["Welcome, Ann"])),  # ... and MAIL FROM
        ("cc:Boss", (1, ["Your code"])),
        ("reply-to:help@rig.test", (1, ["Your code"])),
        ('subject:"your code"', (2, ["Your code", "Your code"])),
        ("subject:code -to:carl@example.test", (1, ["Your code"])),
        ("!subject:code", (2, ["Invoice", "Welcome, Ann"])),
        ("subject:% subject:_", (0, [])),  # LIKE's wildcards are matched literally
        ("tag:welcome", (1, ["Welcome, Ann"])),
        ("is:tagged", (1, ["Welcome, Ann"])),
        ("has:attachment", (1, ["Invoice"])),
        ("-has:attachments subject:invoice", (0, [])),
        ("invoice", (1, ["Invoice"])),
        ("larger:100K", (0, [])),
        ("smaller:100K to:bob@example.test", (1, ["Invoice"])),
        ("after:2000-01-01 before:2999-12-31 to:carl@example.test", (1, ["Your code"])),
        ("before:2000-01-01", (0, [])),
        ("addressed:help@rig.test", (1, ["Your code"])),
    ],
)
def test_search_language(mailbox: RelayRunner, query: str, expected: tuple[int, list[str]]) -> None:
    """Each Mailpit search filter selects what the mapping table says it does."""
    assert expected == subjects(mailbox, query)


def test_paging_counts_and_read_flags(mailbox: RelayRunner) -> None:
    """start/limit page newest first; opening a message marks it read; PUT sets flags by search."""
    status, _, page = call(mailbox, "/api/v1/messages?start=1&limit=2")
    assert (200, 4, 2, 1) == (status, page["total"], page["count"], page["start"])
    assert ["Invoice", "Your code"] == [m["Subject"] for m in page["messages"]]
    newest = call(mailbox, "/api/v1/messages")[2]["messages"][0]
    assert (False, 4) == (newest["Read"], call(mailbox, "/api/v1/messages")[2]["unread"])
    assert "Your code" == call(mailbox, "/api/v1/message/latest")[2]["Subject"]
    assert (1, ["Your code"]) == subjects(mailbox, "is:read")
    body = json.dumps({"Search": "to:bob@example.test", "Read": True}).encode()
    assert 200 == call(mailbox, "/api/v1/messages", method="PUT", data=body)[0]
    listed = call(mailbox, "/api/v1/search?query=is:unread")[2]
    assert (2, 2, 4) == (listed["messages_count"], listed["messages_unread"], listed["total"])


def test_views_part_and_bad_requests(mailbox: RelayRunner) -> None:
    """view/ID.html is sandboxed; parts come decoded; ids and parameters are checked."""
    invoice = call(mailbox, "/api/v1/search?query=subject:invoice")[2]["messages"][0]
    message = call(mailbox, f"/api/v1/message/{invoice['ID']}")[2]
    assert [("i.pdf", "2", 5)] == [
        (a["FileName"], a["PartID"], a["Size"]) for a in message["Attachments"]
    ]
    status, fields, data = call(mailbox, f"/api/v1/message/{invoice['ID']}/part/2")
    assert (200, "application/pdf", b"%PDF-") == (status, fields["Content-Type"], data)
    status, fields, _ = call(mailbox, "/view/latest.html")
    assert "sandbox" in fields["Content-Security-Policy"]
    status, _, data = call(mailbox, "//view/latest.txt")  # cypress-mailpit's double slash
    assert (200, b"code 222222\r\n") == (status, data)
    assert 404 == call(mailbox, "/api/v1/message/no-such-id")[0]
    assert 404 == call(mailbox, f"/api/v1/message/{invoice['ID']}/part/9")[0]
    status, _, body = call(mailbox, "/api/v1/messages?limit=0")
    assert (400, "invalid-value") == (status, body["error"]["code"])
    assert 400 == call(mailbox, "/api/v1/search?query=after:someday")[0]
    assert 400 == call(mailbox, "/api/v1/search")[0]


def test_unknown_endpoints_answer_404_naming_the_mapping(mailbox: RelayRunner) -> None:
    """Mailpit endpoints outside the subset (tags, chaos, checks) get a 404 that points to the docs."""
    for method, path in (
        ("GET", "/api/v1/tags"),
        ("PUT", "/api/v1/chaos"),
        ("GET", "/api/v1/message/latest/html-check"),
    ):
        status, _, body = call(
            mailbox, path, method=method, data=b"{}" if method == "PUT" else None
        )
        assert (404, "not-in-mailpit-subset") == (status, body["error"]["code"])
        assert "Mailpit-compatible API" in body["error"]["hint"]
    doc = call(mailbox, "/api/v1/openapi.json")[2]
    assert {"/api/v1/messages", "/api/v1/search", "/view/{ID}.html"} <= set(doc["paths"])


def test_send_stores_a_message_built_from_json(make_relay: Callable[..., RelayRunner]) -> None:
    """POST /api/v1/send (cypress-mailpit's mailpitSendMail) stores a message with all its parts."""
    relay = make_relay()
    request = {
        "From": {"Email": "from@example.com", "Name": "From"},
        "To": [{"Email": "jane@example.com", "Name": "Jane"}],
        "Bcc": ["bcc@example.com"],
        "Subject": "Hello Mailpit",
        "Text": "hello from mailpit",
        "HTML": "<p>hello from mailpit</p>",
        "Tags": ["t1"],
        "Attachments": [{"Content": base64.b64encode(b"abc").decode(), "Filename": "a.txt"}],
    }
    headers = {"Content-Type": "application/json"}
    status, _, body = call(
        relay, "/api/v1/send", method="POST", data=json.dumps(request).encode(), headers=headers
    )
    assert 200 == status, body
    (stored,) = relay.messages(to="bcc@example.com")
    assert (body["ID"], "Hello Mailpit", "from@example.com") == (
        stored.id,
        stored.subject,
        stored.sender,
    )
    message = call(relay, f"/api/v1/message/{body['ID']}")[2]
    assert (["t1"], ["a.txt"]) == (message["Tags"], [a["FileName"] for a in message["Attachments"]])
    status, _, body = call(
        relay, "/api/v1/send", method="POST", data=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert (415, "unsupported-media-type") == (status, body["error"]["code"])


def test_gate_host_and_token(make_relay: Callable[..., RelayRunner], tmp_path: Path) -> None:
    """The relay's gate guards /mailpit too: Host, token (Bearer or Basic); DELETE needs no JSON."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    relay = make_relay(api_token_file=token_file)
    status, _, body = call(relay, "/api/v1/messages", headers={"Host": "attacker.example"})
    assert (421, "host-refused") == (status, body["error"]["code"])
    assert 401 == call(relay, "/api/v1/messages")[0]
    basic = "Basic " + base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
    wrong = "Basic " + base64.b64encode(b"anyone:not-the-token").decode()
    assert 200 == call(relay, "/api/v1/messages", headers={"Authorization": basic})[0]
    assert 401 == call(relay, "/api/v1/messages", headers={"Authorization": wrong})[0]
    assert 200 == call(relay, "/api/v1/messages", headers={"Authorization": f"Bearer {TOKEN}"})[0]
    status, _, data = call(
        relay, "/api/v1/messages", method="DELETE", headers={"Authorization": basic}
    )
    assert (200, b"ok") == (status, data)
    assert relay.server is not None
    own = urllib.request.Request(
        f"http://127.0.0.1:{relay.server.api_port}/api/v1/messages",
        method="DELETE",
        headers={"Authorization": basic},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:  # mailprov's own API keeps Bearer + JSON
        urllib.request.urlopen(own, timeout=10)  # noqa: S310 (loopback URL)
    assert 401 == refused.value.code
    refused.value.close()


BROKEN = [
    # a multipart whose boundary never ends, with a part of broken base64
    b'Subject: broken\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="x"\r\n\r\n'
    b"--x\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="a.pdf"\r\n\r\n%%%not base64\r\n',
    # 8-bit bytes that are not UTF-8 in the headers and the body; an unknown charset
    b"Subject: caf\xe9 \xff\r\nFrom: \xe9t\xe9 <x@rig.test>\r\nContent-Type: text/plain; "
    b"charset=x-unknown\r\n\r\nbody \xe9\xff\r\n",
    # HTML only, with a script, a form and a remote image; no text part
    b"Subject: html only\r\nContent-Type: text/html\r\n\r\n<script>alert(1)</script>"
    b'<form action="https://evil.test"></form><img src="https://evil.test/p.png"><p>hi</p>\r\n',
]


def test_odd_messages_are_answered_not_crashed_on(make_relay: Callable[..., RelayRunner]) -> None:
    """Broken MIME, non-UTF-8 headers and HTML-only mail: every read answers 200 (never a 5xx)."""
    relay = make_relay()
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as c:
        for raw in BROKEN:
            c.sendmail("x@rig.test", ["odd@example.test"], raw)
    status, _, listed = call(relay, "/api/v1/messages")
    assert (200, 3) == (status, listed["total"])
    for entry in listed["messages"]:
        for path in ("", "/headers", "/raw"):
            assert 200 == call(relay, f"/api/v1/message/{entry['ID']}{path}")[0], (entry, path)
        for view in ("html", "txt"):
            assert 200 == call(relay, f"/view/{entry['ID']}.{view}")[0]
    html_only = next(m for m in listed["messages"] if m["Subject"] == "html only")
    message = call(relay, f"/api/v1/message/{html_only['ID']}")[2]
    assert "hi" in message["Text"] and "alert" not in message["Text"]  # text rendered from HTML


@pytest.mark.parametrize(
    "query",
    [
        '"',
        "-",
        "!",
        "to:",
        "after:",
        "larger:lots",
        'subject:"open',
        "\\",
        "%_%",
        "before:2024-13-45",
        "a" * 5000,
    ],
)
def test_odd_searches_get_an_answer(make_relay: Callable[..., RelayRunner], query: str) -> None:
    """Odd search text is a 200 or a 400 naming the problem, never a 5xx."""
    relay = make_relay()
    status, _, body = call(relay, "/api/v1/search?" + urllib.parse.urlencode({"query": query}))
    assert status in {200, 400}, body
    bad_tz = call(relay, "/api/v1/search?query=after:2024-01-01&tz=Mars/Phobos")
    assert 400 == bad_tz[0]
