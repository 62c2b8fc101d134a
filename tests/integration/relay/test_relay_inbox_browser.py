"""The web inbox in a real browser: Debian's Chromium, driven by Playwright (issue 14, item 1).

Hostile mail is sent with smtplib to a real relay; the page is opened as a
person would. A small HTTP server on 127.0.0.1 (the "lure") records every
request that mail makes the browser send, so "nothing remote loads" and "no
script ran" are checked from outside the page, not by asking it.
"""

from __future__ import annotations

import base64
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mailprov.testing import RelayRunner
from tests.conftest import require_or_skip
from tests.integration.relay.relay_helpers import client, eventually

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
TOKEN = "browser-" + "0123456789abcdef" * 2


@dataclass
class Lure:
    """An HTTP server on 127.0.0.1 that answers everything and remembers each path asked for."""

    url: str
    paths: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def lure() -> Iterator[Lure]:
    """The lure, running for the module (tests look only at the paths their mail names)."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(PNG)

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Lure(f"http://127.0.0.1:{server.server_address[1]}", seen)
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright: one browser for all of this module.

    Module-scoped, not session-scoped: Playwright's sync API keeps an asyncio loop
    running in the main thread while it is open, and later tests that call
    ``asyncio.run()`` there (the LMTP and IMAP checks) would fail.
    """
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        require_or_skip("chromium is not installed (scripts/install-test-deps.sh installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_or_skip("playwright is not installed (it is in the tests dependency group)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True)
        yield browser
        browser.close()


def base_url(relay: RelayRunner) -> str:
    assert relay.server is not None
    return f"http://127.0.0.1:{relay.server.api_port}"


@pytest.fixture
def page(chromium: Any, capture: RelayRunner) -> Iterator[Any]:
    """A fresh browser tab (own cookies and cache) on the capture relay; dialogs are accepted."""
    context = chromium.new_context(base_url=base_url(capture))
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.on("dialog", lambda dialog: dialog.accept())
    yield tab
    context.close()


def address(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@example.test"


def send(relay: RelayRunner, to: str, data: bytes, sender: str = "app@client.test") -> str:
    """Send one message over SMTP; return the relay's id for it."""
    with client(relay) as c:
        c.sendmail(sender, [to], data)
    return relay.wait_for(to=to, timeout=5).id


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def hostile(lure: str, tag: str) -> bytes:
    """HTML mail that tries everything: scripts, handlers, remote loads, a form, an overlay."""
    html = f"""<html><head>
<meta http-equiv="refresh" content="0;url={lure}/{tag}/refresh">
<link rel="stylesheet" href="{lure}/{tag}/link.css">
<style>@import url({lure}/{tag}/import.css);
body {{ background: url({lure}/{tag}/background.png); }}
@font-face {{ font-family: x; src: url({lure}/{tag}/font.woff); }}</style>
</head><body>
<p id="hello" style="font-family: x">Hello from the HTML part</p>
<script>document.body.dataset.ran = "inline"; fetch("{lure}/{tag}/fetch");
parent.document.title = "pwned";</script>
<script src="{lure}/{tag}/script.js"></script>
<img id="remote" src="{lure}/{tag}/pixel.png" alt="remote">
<img id="inline" src="cid:logo@relay.test" alt="inline" onerror="document.body.dataset.ran='onerror'">
<a id="js" href="javascript:document.body.dataset.ran='link';fetch('{lure}/{tag}/js-link')">a link</a>
<form action="{lure}/{tag}/form" method="post"><input name="q" value="1"><button id="go">Go</button></form>
<iframe src="{lure}/{tag}/frame"></iframe>
<div id="overlay" style="position:fixed;top:0;left:0;width:100vw;height:100vh;z-index:2147483647;
background:rgba(255,0,0,.5)">overlay</div>
</body></html>"""
    return crlf(
        "Subject: Hostile <b>mail</b>\nMIME-Version: 1.0\n"
        "Content-Type: multipart/related; boundary=B\n\n"
        f"--B\nContent-Type: text/html; charset=utf-8\n\n{html}\n"
        "--B\nContent-Type: image/png\nContent-ID: <logo@relay.test>\n"
        f"Content-Transfer-Encoding: base64\n\n{base64.b64encode(PNG).decode()}\n--B--\n"
    )


def test_hostile_html_runs_no_script_and_loads_nothing_until_allowed(
    page: Any, capture: RelayRunner, lure: Lure
) -> None:
    """Scripts, handlers, forms, javascript: links and remote loads do nothing; remote loads
    happen only after 'Load remote content'; the part's CSS cannot cover the inbox."""
    tag = uuid.uuid4().hex[:8]
    msg_id = send(capture, address("hostile"), hostile(lure.url, tag))
    page.goto(f"/inbox/messages/{msg_id}")
    part = page.frame_locator("#html-part")
    assert part.locator("#hello").inner_text() == "Hello from the HTML part"
    frame = next(f for f in page.frames if f.url.endswith(f"/inbox/messages/{msg_id}/html"))
    assert frame.evaluate("document.getElementById('inline').naturalWidth") == 1  # cid: shown
    part.locator("#js").click(force=True)  # force: the mail's own overlay covers its own links
    part.locator("#go").click(force=True)
    page.wait_for_timeout(1000)
    assert frame.evaluate("document.body.dataset.ran") is None
    assert page.title().startswith("Hostile <b>mail</b>")
    assert [p for p in lure.paths if p.startswith(f"/{tag}/")] == []
    # The overlay stays inside the frame: the inbox's own button is what the pointer hits.
    page.locator("#delete").click(trial=True)
    hit = page.evaluate(
        "(() => { const r = document.getElementById('delete').getBoundingClientRect();"
        " return document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2).id; })()"
    )
    assert hit == "delete"
    page.click("#load-remote")
    assert eventually(lambda: f"/{tag}/pixel.png" in lure.paths)
    page.wait_for_timeout(500)
    loaded = {p.removeprefix(f"/{tag}/") for p in lure.paths if p.startswith(f"/{tag}/")}
    assert {"pixel.png", "link.css", "import.css", "background.png"} <= loaded
    assert loaded.isdisjoint({"script.js", "fetch", "js-link", "form", "refresh", "frame"})
    frame = next(f for f in page.frames if "/html?remote=1" in f.url)
    assert frame.evaluate("document.body.dataset.ran") is None
    assert capture.store.get(msg_id).id == msg_id  # nothing deleted by all that clicking


def test_a_message_sent_while_the_list_is_open_appears(page: Any, capture: RelayRunner) -> None:
    """The list is live: a message sent after the page loaded shows up without a reload."""
    to = address("live")
    send(capture, to, b"Subject: already here\r\n\r\nx\r\n")
    page.goto(f"/inbox/?mailbox={to}")
    page.wait_for_selector("#messages[data-connected='1']")
    assert page.locator("#messages tbody tr").count() == 1
    send(capture, address("elsewhere"), b"Subject: not for this list\r\n\r\nx\r\n")
    send(capture, to, b"Subject: <i>fresh</i> arrival\r\n\r\nx\r\n")
    row = page.locator("#messages tbody tr").first
    row.get_by_text("<i>fresh</i> arrival").wait_for()
    assert page.locator("#messages tbody tr").count() == 2
    assert page.locator("#total").inner_text() == "2"
    assert page.locator("#messages i").count() == 0  # the subject is text, not markup
    row.get_by_role("link").click()
    assert page.locator("#subject").inner_text() == "<i>fresh</i> arrival"


def test_search_by_mailbox_sender_subject_and_text(page: Any, capture: RelayRunner) -> None:
    """The search form narrows the list by mailbox, sender, subject and body text."""
    to = address("search")
    send(capture, to, b"Subject: Your code\r\n\r\nYour code is 834126\r\n", "auth@app.test")
    send(capture, to, b"Subject: Weekly news\r\n\r\nnothing new\r\n", "news@app.test")
    send(capture, address("other"), b"Subject: Your code\r\n\r\nYour code is 1\r\n")
    page.goto("/inbox/")
    page.fill("input[name=mailbox]", to)
    page.fill("input[name=subject]", "code")
    page.click("button[type=submit]")
    assert page.locator("#messages tbody tr").all_inner_texts()[0].count("Your code") == 1
    assert page.locator("#messages tbody tr").count() == 1
    page.goto(f"/inbox/?mailbox={to}&from=news@")
    assert page.locator("#messages tbody td a").all_inner_texts() == ["Weekly news"]
    page.goto(f"/inbox/?mailbox={to}&text=834126")
    assert page.locator("#messages tbody td a").all_inner_texts() == ["Your code"]
    assert page.locator("input[name=text]").input_value() == "834126"


def test_delete_one_then_all_of_a_mailbox(page: Any, capture: RelayRunner) -> None:
    """The delete buttons remove one message, then every message of the mailbox shown."""
    to = address("delete")
    first = send(capture, to, b"Subject: one\r\n\r\nx\r\n")
    send(capture, to, b"Subject: two\r\n\r\nx\r\n")
    send(capture, to, b"Subject: three\r\n\r\nx\r\n")
    keep = send(capture, address("keep"), b"Subject: keep\r\n\r\nx\r\n")
    page.goto(f"/inbox/messages/{first}")
    with page.expect_navigation():
        page.click("#delete")
    assert [m.subject for m in capture.messages(to=to)] == ["two", "three"]
    page.goto(f"/inbox/?mailbox={to}")
    with page.expect_navigation():
        page.get_by_role("button", name="Delete all in this mailbox").click()
    assert capture.messages(to=to) == []
    assert capture.store.get(keep).id == keep
    assert page.locator("#messages tbody tr").count() == 0


def test_text_links_headers_and_attachments(page: Any, capture: RelayRunner) -> None:
    """The text part, its links (only web links clickable), headers and a download are shown."""
    data = crlf(
        "Subject: Welcome\nFrom: App <app@client.test>\nX-Trace: 42\nMIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=M\n\n"
        "--M\nContent-Type: multipart/alternative; boundary=A\n\n"
        "--A\nContent-Type: text/plain; charset=utf-8\n\n"
        "Confirm at https://app.example.test/confirm?t=abc today.\n"
        "--A\nContent-Type: text/html; charset=utf-8\n\n"
        '<a href="https://app.example.test/confirm?t=abc">Confirm</a> '
        "<a href=\"javascript:alert('x')\">evil</a>\n"
        "--A--\n"
        '--M\nContent-Type: application/pdf\nContent-Disposition: attachment; filename="Rechnung Nr. 5.pdf"\n'
        f"Content-Transfer-Encoding: base64\n\n{base64.b64encode(b'%PDF-1.4 fake').decode()}\n"
        "--M--\n"
    )
    msg_id = send(capture, address("parts"), data)
    page.goto(f"/inbox/messages/{msg_id}")
    assert "Confirm at https://app.example.test/confirm?t=abc" in page.inner_text("pre.text")
    web = page.locator("#links a")
    assert web.all_inner_texts() == ["https://app.example.test/confirm?t=abc"]
    assert web.first.get_attribute("rel") == "noopener noreferrer nofollow"
    assert page.locator("#links code.unsafe").inner_text() == "javascript:alert('x')"
    assert "X-Trace" in page.inner_text("#headers")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Rechnung Nr. 5.pdf").click()
    download = download_info.value
    assert download.suggested_filename == "Rechnung Nr. 5.pdf"
    assert Path(download.path()).read_bytes() == b"%PDF-1.4 fake"


def test_with_a_token_the_browser_asks_and_everything_works(
    chromium: Any, make_relay: Any, tmp_path: Path
) -> None:
    """With relay.api_token_file, the page needs the token (as the Basic password); with it, the
    list, its live updates, the fault rules and delete all work."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    relay = make_relay(api_token_file=token_file)
    relay.fault("rcpt:bounce-*@example.test=550 5.1.1 no such user")
    from playwright.sync_api import Error as BrowserError

    anonymous = chromium.new_context(base_url=base_url(relay))
    try:  # headless, the browser cannot prompt: the Basic challenge ends the navigation
        with pytest.raises(BrowserError, match="ERR_INVALID_AUTH_CREDENTIALS"):
            anonymous.new_page().goto("/inbox/")
    finally:
        anonymous.close()
    context = chromium.new_context(
        base_url=base_url(relay), http_credentials={"username": "me", "password": TOKEN}
    )
    context.set_default_timeout(10_000)
    try:
        tab = context.new_page()
        tab.on("dialog", lambda dialog: dialog.accept())
        assert tab.goto("/inbox/").status == 200
        assert "rcpt:bounce-*@example.test=550 5.1.1 no such user" in tab.inner_text("#faults")
        tab.wait_for_selector("#messages[data-connected='1']")
        started = time.monotonic()
        send(relay, "token@example.test", b"Subject: behind the token\r\n\r\nx\r\n")
        tab.get_by_text("behind the token").wait_for()
        assert time.monotonic() - started < 10
        with tab.expect_navigation():
            tab.get_by_role("button", name="Delete all").click()
        assert relay.store.count() == 0
    finally:
        context.close()
