"""Waiting without stalling intake (issue 14, item 7): waits woken by arrivals, paging with totals.

A pending ``GET /api/v1/wait`` used to re-run its search every 20 ms on the SMTP
event loop. Now it subscribes and is handed the message when it is stored (by
the same process, or, with several workers, read from the index by seq). The
throughput side is measured in bench/relay_inbox.py; here the behaviour is checked.
"""

from __future__ import annotations

import json
import smtplib
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from mailprov.relay.storage import MessageStore, Retention
from mailprov.testing import RelayRunner
from tests.conftest import invoke
from tests.integration.relay.relay_helpers import client, eventually
from tests.integration.relay.test_relay_api import call
from tests.integration.relay.test_relay_cli import Served


def send(relay: RelayRunner, to: str, subject: str) -> None:
    with client(relay) as c:
        c.sendmail("w@client.test", [to], f"Subject: {subject}\r\n\r\nx\r\n".encode())


def test_a_pending_wait_subscribes_and_is_woken_by_the_message(make_relay: Any) -> None:
    """While a wait is pending it is a subscription (no polling); the message itself ends it."""
    relay = make_relay()
    assert relay.server is not None and relay.server.arrivals is not None
    hub = relay.server.arrivals
    answers: list[tuple[int, Any, float]] = []

    def wait() -> None:
        status, body = call(relay, "/wait?to=woken@example.test&subject=code&timeout=20")
        answers.append((status, body, time.monotonic()))

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert eventually(lambda: hub.subscribers == 1)
    send(relay, "woken@example.test", "no match here")
    send(relay, "other@example.test", "your code")
    time.sleep(0.3)
    assert answers == []  # neither matched: still waiting
    sent = time.monotonic()
    send(relay, "woken@example.test", "your code 1234")
    waiter.join(10)
    ((status, body, at),) = answers
    assert (status, body["subject"]) == (200, "your code 1234")
    assert at - sent < 2
    assert hub.subscribers == 0


def test_a_wait_returns_the_oldest_match_already_stored(capture: RelayRunner) -> None:
    """A message that is already stored counts: the oldest matching one is returned at once."""
    send(capture, "early@example.test", "first")
    send(capture, "early@example.test", "second")
    started = time.monotonic()
    status, body = call(capture, "/wait?to=early@example.test&timeout=10")
    assert (status, body["subject"]) == (200, "first")
    assert time.monotonic() - started < 2


def test_waits_see_messages_every_worker_stored(tmp_path: Path) -> None:
    """With 2 worker processes, pending waits are woken by messages either process stored."""
    served = Served(tmp_path, "--workers", "2", "--log-level", "warning")
    try:
        api = served.ready["api"]
        results: dict[int, Any] = {}

        def wait(n: int) -> None:
            url = f"{api}/wait?to=w{n}@example.test&timeout=20"
            with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (loopback)
                results[n] = json.loads(response.read())

        waiters = [threading.Thread(target=wait, args=(n,)) for n in range(8)]
        for thread in waiters:
            thread.start()
        time.sleep(0.5)
        for n in range(8):  # a connection each: SO_REUSEPORT spreads them over the workers
            with smtplib.SMTP("127.0.0.1", served.port, timeout=10) as c:
                c.sendmail("s@client.test", [f"w{n}@example.test"], b"Subject: go\r\n\r\nx\r\n")
        for thread in waiters:
            thread.join(30)
        assert sorted(results) == list(range(8))
        assert {results[n]["to"][0] for n in range(8)} == {f"w{n}@example.test" for n in range(8)}
    finally:
        assert served.stop() == 0


def test_the_fixture_waits_for_the_oldest_match(capture: RelayRunner) -> None:
    """wait_for returns the oldest matching message, also among many, and one sent later."""
    with client(capture) as c:
        for n in range(40):
            c.sendmail(
                "f@client.test", ["many@example.test"], f"Subject: n{n}\r\n\r\nx\r\n".encode()
            )
    assert capture.wait_for(to="many@example.test", timeout=5).subject == "n0"
    timer = threading.Timer(0.3, send, (capture, "later@example.test", "later"))
    timer.start()
    assert capture.wait_for(to="later@example.test", subject="LATER", timeout=10).subject == "later"
    timer.join()


def store_with(tmp_path: Path, count: int) -> Path:
    """A storage folder holding ``count`` messages for page@example.test (s0 oldest)."""
    store = MessageStore(tmp_path / "store", Retention(0, 0, 0)).open()
    for n in range(count):
        store.add(
            f"Subject: s{n}\r\n\r\nx\r\n".encode(), sender="a@x.test", recipients=["page@x.test"]
        )
    store.close()
    return tmp_path / "store"


def test_relay_messages_pages_with_a_total(tmp_path: Path) -> None:
    """relay messages shows a page and the total; --before pages on; --all lists every message."""
    store_with(tmp_path, 7)

    def listed(*args: str) -> dict[str, Any]:
        result = invoke("relay", "messages", "--storage", "store", *args, cwd=tmp_path, json=True)
        assert result.exit_code == 0, result.output
        return result.data  # type: ignore[no-any-return]

    first = listed("--limit", "3")
    assert [m["subject"] for m in first["messages"]] == ["s6", "s5", "s4"]
    assert (first["total"], first["total_exact"], first["count"]) == (7, True, 3)
    second = listed("--limit", "3", "--before", str(first["next_before"]))
    assert [m["subject"] for m in second["messages"]] == ["s3", "s2", "s1"]
    assert second["total"] == 7
    last = listed("--limit", "3", "--before", str(second["next_before"]))
    assert ([m["subject"] for m in last["messages"]], last["next_before"]) == (["s0"], None)
    every = listed("--limit", "2", "--all")
    assert [m["subject"] for m in every["messages"]] == [f"s{n}" for n in reversed(range(7))]
    human = invoke("relay", "messages", "--storage", "store", "--limit", "3", cwd=tmp_path)
    assert "3 of 7 message(s); next page: --before" in human.stderr
    refused = invoke("relay", "messages", "--storage", "store", "--limit", "20000", cwd=tmp_path)
    assert refused.exit_code == 2


def test_the_api_pages_with_a_total(capture: RelayRunner) -> None:
    """GET /messages gives total and next_before; before= fetches the next page."""
    with client(capture) as c:
        for n in range(5):
            c.sendmail(
                "p@client.test", ["pages@example.test"], f"Subject: p{n}\r\n\r\nx\r\n".encode()
            )
    _, first = call(capture, "/messages?mailbox=pages@example.test&limit=2")
    assert ([m["subject"] for m in first["messages"]], first["total"]) == (["p4", "p3"], 5)
    _, second = call(
        capture, f"/messages?mailbox=pages@example.test&limit=2&before={first['next_before']}"
    )
    assert [m["subject"] for m in second["messages"]] == ["p2", "p1"]
    _, found = call(capture, "/messages?subject=p3&mailbox=pages@example.test")
    assert (found["total"], found["total_exact"], found["next_before"]) == (1, True, None)
