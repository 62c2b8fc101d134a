"""Mailpit's own clients, unchanged, against the relay's Mailpit-compatible API (base URL /mailpit).

``mailpit-api-client`` (PyPI) runs in this process; the npm ``mailpit-api`` client runs
in Node from ``tests/integration/relay/mailpit_node`` (installed into ``build/npm-mailpit``).
Both list, read and delete messages that the test sent over SMTP.
"""

from __future__ import annotations

import json
import shutil
import smtplib
import subprocess
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailprov.testing import RelayRunner
from tests.conftest import require_or_skip

ROOT = Path(__file__).resolve().parents[3]
NODE_SOURCE = Path(__file__).with_name("mailpit_node")
NPM_VERSION = "2.1.0"


def base_url(relay: RelayRunner) -> str:
    """Where a Mailpit client is pointed: the API listener plus /mailpit."""
    assert relay.api_url is not None
    return relay.api_url.removesuffix("/api/v1") + "/mailpit"


def rich_message(to: str, marker: str) -> EmailMessage:
    """A message with the headers mailpit-api-client's Headers model requires, HTML and a file."""
    msg = EmailMessage()
    msg["From"] = "Sender Smith <sender@example.com>"
    msg["To"] = f"Ann <{to}>"
    msg["Subject"] = "Your code"
    msg["Date"] = "Wed, 27 Jul 2022 15:44:41 +1200"
    msg["Message-ID"] = "<20220727034441.7za34h6ljuzfpmj6@localhost.localhost>"
    msg["Delivered-To"] = to
    msg["X-Rig-Marker"] = marker
    msg.set_content("Your code is 123456\n")
    msg.add_alternative(
        '<p>Your code is <b>123456</b></p><a href="https://a.test/x">go</a>', subtype="html"
    )
    msg.add_attachment(b"attached text\n", maintype="text", subtype="plain", filename="notes.txt")
    return msg


def send_two(relay: RelayRunner, marker: str) -> None:
    """The rich message to ann@ (and a Bcc), a plain one to bob@."""
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as c:
        c.send_message(
            rich_message("ann@example.test", marker),
            to_addrs=["ann@example.test", "cc@example.test"],
        )
        c.sendmail(
            "app@rig.test",
            ["bob@example.test"],
            b"From: app@rig.test\r\nTo: bob@example.test\r\nSubject: for bob\r\n\r\nhello bob\r\n",
        )


def test_mailpit_api_client_lists_reads_and_deletes(make_relay: Callable[..., RelayRunner]) -> None:
    """PyPI's mailpit-api-client lists, reads (message, headers, attachment) and deletes."""
    from mailpit.client.api import API

    relay = make_relay()
    send_two(relay, "pypi")
    client = API(base_url(relay), timeout=10)

    listed = client.get_messages()
    assert (2, 2, 0) == (listed.total, listed.count, listed.start)
    assert ["Your code", "for bob"] == [m.subject for m in listed.messages][::-1]
    ann = next(m for m in listed.messages if m.subject == "Your code")
    assert (1, "sender@example.com") == (ann.attachments, ann.from_.address)

    message = client.get_message(ann.id)
    assert "20220727034441.7za34h6ljuzfpmj6@localhost.localhost" == message.message_id
    assert [("Ann", "ann@example.test")] == [(c.name, c.address) for c in message.to]
    assert ["cc@example.test"] == [c.address for c in message.bcc]
    assert "Your code is 123456" in message.text
    assert "<b>123456</b>" in message.html
    assert "2022-07-27T15:44:41+12:00" == message.date.isoformat()
    assert [("notes.txt", "text/plain", 14)] == [
        (a.file_name, a.content_type, a.size) for a in message.attachments
    ]

    headers = client.get_message_headers(ann.id)
    assert ["ann@example.test"] == headers.delivered_to
    assert ["Sender Smith <sender@example.com>"] == headers.from_
    assert ["pypi"] == headers.additional["X-Rig-Marker"]
    assert "attached text\n" == client.get_message_attachment(
        ann.id, message.attachments[0].part_id
    )

    client.delete_messages([ann.id])  # sent as a form (ids=...), not JSON: only that one goes
    assert ["for bob"] == [m.subject for m in client.get_messages().messages]
    client.delete_messages([])  # an empty list deletes everything, as in Mailpit
    assert 0 == client.get_messages().total
    assert [] == relay.messages()


@pytest.fixture(scope="session", name="mailpit_node")
def fixture_mailpit_node() -> Path:
    """The npm mailpit-api client installed (once) into build/npm-mailpit; returns the script."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        require_or_skip(
            "node and npm are not installed (scripts/install-test-deps.sh installs them)"
        )
    assert npm is not None
    target = ROOT / "build" / "npm-mailpit"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "client.mjs"):
        shutil.copyfile(NODE_SOURCE / name, target / name)
    installed = target / "node_modules" / "mailpit-api" / "package.json"
    if not installed.is_file() or json.loads(installed.read_text())["version"] != NPM_VERSION:
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            cwd=target,
            check=True,
            timeout=300,
        )
    return target / "client.mjs"


def run_node(script: Path, *args: str) -> dict[str, object]:
    """Run the Node script and parse the one JSON document it prints."""
    result = subprocess.run(
        ["node", str(script), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert 0 == result.returncode, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_npm_mailpit_api_client_lists_reads_and_deletes(
    make_relay: Callable[..., RelayRunner], mailpit_node: Path
) -> None:
    """npm's mailpit-api lists, searches, reads (summary, headers, source, part, text), waits, deletes."""
    relay = make_relay()
    send_two(relay, "npm")
    out = run_node(mailpit_node, base_url(relay))
    assert {"total": 2, "subjects": ["Your code", "for bob"]} == out["listed"]
    assert 1 == out["search"]["count"]  # type: ignore[index]
    message = out["message"]
    assert {
        "subject": "Your code",
        "from": "sender@example.com",
        "to": ["ann@example.test"],
        "attachments": [["notes.txt", "2", "text/plain"]],
    } == {k: v for k, v in message.items() if k not in {"text", "html"}}  # type: ignore[union-attr]
    assert "Your code is 123456" in message["text"]  # type: ignore[index]
    assert "for bob" == out["latest"]
    assert ["Your code"] == out["headers"]
    assert True is out["source_has_marker"]
    assert "attached text\n" == out["attachment"]
    assert "Your code is 123456" in str(out["view_text"])
    assert "for bob" == out["waited"]
    assert ("ok", 1) == (out["delete_one"], out["after_delete_one"])
    assert ("ok", []) == (out["delete_search"], out["after_delete_search"])
    assert ("ok", 0) == (out["delete_all"], out["after_delete_all"])
    assert "404" in str(out["tags"]) and "not-in-mailpit-subset" in str(out["tags"])
    assert [] == relay.messages()


def test_npm_client_authenticates_with_the_token_as_basic_password(
    make_relay: Callable[..., RelayRunner], mailpit_node: Path, tmp_path: Path
) -> None:
    """With relay.api_token_file set, the npm client's own auth option (Basic) carries the token."""
    token_file = tmp_path / "token"
    token_file.write_text("mailpit-token-0123456789abcdef\n")
    token_file.chmod(0o600)
    relay = make_relay(api_token_file=token_file)
    send_two(relay, "npm")
    refused = subprocess.run(
        ["node", str(mailpit_node), base_url(relay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 != refused.returncode and "401" in refused.stderr
    assert 2 == len(relay.messages())
    out = run_node(mailpit_node, base_url(relay), "mailpit-token-0123456789abcdef")
    assert 0 == out["after_delete_all"]
