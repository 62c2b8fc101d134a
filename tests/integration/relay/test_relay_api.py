"""The HTTP JSON API with a real client (urllib): search, read, delete, wait, faults, OpenAPI."""

from __future__ import annotations

import json
import smtplib
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from mailprov.testing import RelayRunner
from tests.integration.relay.relay_helpers import client


def call(relay: RelayRunner, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    """Status and decoded body (JSON when it is JSON)."""
    assert relay.api_url is not None
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 (http on loopback only)
        relay.api_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310 (loopback)
            raw, status, kind = (
                response.read(),
                response.status,
                response.headers.get_content_type(),
            )
    except urllib.error.HTTPError as err:
        raw, status, kind = err.read(), err.code, err.headers.get_content_type()
    return status, json.loads(raw) if kind == "application/json" else raw


def send(relay: RelayRunner, to: list[str], subject: str, extra: str = "") -> None:
    with client(relay) as c:
        c.sendmail(
            "api@client.test", to, f"Subject: {subject}\r\n{extra}\r\nhello api\r\n".encode()
        )


@pytest.fixture
def relay(capture: RelayRunner) -> RelayRunner:
    """The module's capture relay, emptied, without faults."""
    capture.purge()
    capture.clear_faults(seed=0)
    return capture


def test_list_search_and_read(relay: RelayRunner) -> None:
    """Messages are listed per mailbox, searched by subject/sender/header, and read whole."""
    send(relay, ["a@example.test", "b@example.test"], "first", "X-Case: 7\r\n")
    send(relay, ["b@example.test"], "second")
    status, boxes = call(relay, "/mailboxes")
    assert status == 200
    assert {b["mailbox"]: b["messages"] for b in boxes["mailboxes"]} == {
        "a@example.test": 1,
        "b@example.test": 2,
    }
    _, found = call(relay, "/messages?mailbox=b@example.test")
    assert [m["subject"] for m in found["messages"]] == ["second", "first"]
    _, found = call(relay, "/messages?subject=SEC&from=api@client")
    assert [m["subject"] for m in found["messages"]] == ["second"]
    _, found = call(relay, "/messages?header=X-Case:7")
    assert [m["subject"] for m in found["messages"]] == ["first"]
    msg_id = found["messages"][0]["id"]
    status, one = call(relay, f"/messages/{msg_id}")
    assert status == 200
    assert ["X-Case", "7"] in one["headers"]
    assert one["parts"][0]["text"].strip() == "hello api"
    status, raw = call(relay, f"/messages/{msg_id}/raw")
    assert (status, raw.startswith(b"Subject: first\r\n")) == (200, True)


def test_delete_and_purge(relay: RelayRunner) -> None:
    """DELETE removes one message (then 404), and purging a mailbox removes its messages."""
    send(relay, ["d@example.test"], "one")
    send(relay, ["e@example.test"], "two")
    _, found = call(relay, "/messages?to=d@example.test")
    msg_id = found["messages"][0]["id"]
    assert call(relay, f"/messages/{msg_id}", "DELETE") == (200, {"changed": True, "deleted": 1})
    status, body = call(relay, f"/messages/{msg_id}")
    assert (status, body["error"]["code"]) == (404, "not-found")
    assert call(relay, "/messages?mailbox=e@example.test", "DELETE")[1]["deleted"] == 1
    assert call(relay, "/messages")[1]["count"] == 0


def test_wait_long_polls_until_the_message_arrives(relay: RelayRunner) -> None:
    """GET /wait returns as soon as a matching message is stored, not after the timeout."""
    timer = threading.Timer(0.5, send, (relay, ["late@example.test"], "late one"))
    timer.start()
    started = time.monotonic()
    status, body = call(relay, "/wait?to=late@example.test&subject=late&timeout=15")
    timer.join()
    assert (status, body["subject"]) == (200, "late one")
    assert time.monotonic() - started < 10


def test_wait_times_out_with_408(relay: RelayRunner) -> None:
    """GET /wait answers 408 when nothing matches within the timeout."""
    status, body = call(relay, "/wait?to=never@example.test&timeout=0.3")
    assert (status, body["error"]["code"]) == (408, "wait-timed-out")


@pytest.mark.parametrize(
    "query",
    [
        "/messages?limit=0",
        "/messages?limit=x",
        "/messages?since=yesterday",
        "/messages?header=nocolon",
        "/messages?colour=red",
        "/wait?timeout=-1",
        "/wait?timeout=soon",
    ],
)
def test_bad_parameters_get_400_with_a_message(relay: RelayRunner, query: str) -> None:
    """Bad query parameters are refused with 400 and a message saying what was wrong."""
    status, body = call(relay, query)
    assert status == 400
    assert body["error"]["message"]


def test_openapi_document_lists_every_route(relay: RelayRunner) -> None:
    """The served OpenAPI document describes the routes the API has."""
    status, doc = call(relay, "/openapi.json")
    assert (status, doc["openapi"]) == (200, "3.1.0")
    assert {
        "/api/v1/messages",
        "/api/v1/wait",
        "/api/v1/faults",
        "/api/v1/messages/{id}/raw",
    } <= set(doc["paths"])


def test_faults_set_over_the_api_act_on_smtp(relay: RelayRunner) -> None:
    """A fault rule added over the API refuses matching recipients until it is removed."""
    status, body = call(
        relay, "/faults", "POST", {"rule": "rcpt:bounce-*@example.test=550 5.1.1 no such user"}
    )
    assert (status, body["fault"]["code"]) == (201, 550)
    with client(relay) as c:
        refused = c.sendmail(
            "x@client.test",
            ["bounce-1@example.test", "ok@example.test"],
            b"Subject: f\r\n\r\nx\r\n",
        )
    assert refused == {"bounce-1@example.test": (550, b"5.1.1 no such user")}
    assert call(relay, "/faults")[1]["faults"][0]["fired"] == 1
    assert call(relay, "/faults", "POST", {"rule": "rcpt:nope"})[0] == 400
    assert call(relay, "/faults", "DELETE")[1]["deleted"] == 1
    send(relay, ["bounce-2@example.test"], "after")
    assert relay.messages(to="bounce-2@example.test")


def test_probabilistic_faults_repeat_with_the_same_seed(relay: RelayRunner) -> None:
    """A p=0.5 DATA fault fires on the same messages in two runs with the same seed."""

    def run() -> list[int]:
        relay.clear_faults(seed=42)
        relay.fault("data:*=451 4.3.0 try later@p=0.5")
        codes = []
        for _ in range(12):
            with client(relay) as c:
                c.ehlo()
                c.mail("x@client.test")
                c.rcpt("p@example.test")
                codes.append(c.data(b"Subject: p\r\n\r\nx\r\n")[0])
        return codes

    relay.purge()
    first, second = run(), run()
    assert first == second
    assert set(first) == {250, 451}
    assert relay.store.count() == first.count(250) * 2  # acknowledged: stored; refused: not


def test_drop_and_delay_faults(relay: RelayRunner) -> None:
    """A drop rule cuts the connection without a reply; a delay rule only slows the reply."""
    relay.fault("mail:dropme@client.test=drop")
    relay.fault("rcpt:slow@example.test=delay@delay=0.4")
    with client(relay) as c, pytest.raises(smtplib.SMTPServerDisconnected):
        c.sendmail("dropme@client.test", ["x@example.test"], b"Subject: d\r\n\r\nx\r\n")
    started = time.monotonic()
    send(relay, ["slow@example.test"], "slow")
    assert time.monotonic() - started >= 0.4
    assert [m.subject for m in relay.messages()] == ["slow"]
