"""Every numeric and time parameter of the HTTP API is checked (issue 10, item 11).

Odd values (overflowing integers, ``nan``, ``inf``, bad dates, invalid UTF-8)
get a 400 that names the parameter, never a 500; a Hypothesis test feeds odd
values to every query parameter and path id of a real relay.
"""

from __future__ import annotations

import http.client
import json
import math
import smtplib
from typing import Any
from urllib.parse import quote, quote_from_bytes, unquote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mailprov.relay.api import SEARCH_PARAMS
from mailprov.testing import RelayRunner

ODD = [
    "99999999999999999999999",
    "-99999999999999999999999",
    "9223372036854775808",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e400",
    "-1",
    "-0",
    "0x10",
    "1_0",
    "",
    " ",
    "\x00",
    "\uff11\uff12",  # full-width digits
    "²",
    "--5",
    "2024-13-01",
    "0001-01-01",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "1e308",
    ":",
    "%",
    "x" * 2000,
    "9" * 2000,  # beyond int()'s 4300 digits would need a URL longer than aiohttp reads
]


def request(relay: RelayRunner, method: str, target: str) -> tuple[int, Any]:
    """Status and JSON body of one request (http.client, Content-Type JSON for writes)."""
    assert relay.server is not None
    conn = http.client.HTTPConnection("127.0.0.1", relay.server.api_port, timeout=20)
    try:
        headers = {"Content-Type": "application/json"} if method != "GET" else {}
        conn.request(method, "/api/v1" + target, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        kind = response.getheader("Content-Type", "")
    finally:
        conn.close()
    return response.status, json.loads(raw) if kind.startswith("application/json") else raw


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("/messages?after=99999999999999999999999", "after"),
        ("/messages?after=-1", "after"),
        ("/messages?since=nan", "since"),
        ("/messages?until=inf", "until"),
        ("/messages?since=1e400", "since"),
        ("/messages?since=0001-01-01", "since"),
        ("/messages?limit=99999999999999999999999", "limit"),
        ("/wait?timeout=nan", "timeout"),
        ("/wait?timeout=inf", "timeout"),
        ("/wait?timeout=0&after=1e3", "after"),
    ],
)
def test_odd_numbers_get_400_naming_the_parameter(
    capture: RelayRunner, target: str, name: str
) -> None:
    """Overflowing, non-finite and out-of-range numbers are a 400 whose message names them."""
    status, body = request(capture, "GET", target)
    assert status == 400, body
    assert body["error"]["message"].startswith(name)


@pytest.mark.parametrize("seed", ["--5", "²", "99999999999999999999999", "nan"])
def test_odd_seeds_get_400(capture: RelayRunner, seed: str) -> None:
    """DELETE /faults?seed= refuses what is not a 64-bit whole number."""
    status, body = request(capture, "DELETE", "/faults?seed=" + quote(seed))
    assert status == 400, body
    assert "seed" in body["error"]["message"]


def test_good_times_still_select(capture: RelayRunner) -> None:
    """Valid Unix seconds and ISO 8601 values still work (a future 'since' finds nothing)."""
    capture.purge()
    with smtplib.SMTP(capture.host, capture.port, timeout=10) as smtp:
        smtp.sendmail("p@client.test", ["p@example.test"], b"Subject: t\r\n\r\nx\r\n")
    assert request(capture, "GET", "/messages?since=0")[1]["count"] == 1
    assert request(capture, "GET", "/messages?since=2999-01-01T00:00:00Z")[1]["count"] == 0
    assert request(capture, "GET", "/messages?after=9223372036854775807")[1]["count"] == 0


def _encoded() -> st.SearchStrategy[str]:
    """Percent-encoded odd values: the list above, any text, and any bytes (invalid UTF-8 too)."""
    return st.one_of(
        st.sampled_from(ODD).map(quote),
        st.text().map(lambda t: quote(t.encode("utf-8", "surrogatepass"))),
        st.binary(max_size=40).map(quote_from_bytes),
        st.integers().map(str),
        st.floats().map(repr).map(quote),
    )


def _waits(name: str, value: str) -> bool:
    """True if GET /wait would block on this timeout value (skipped: it is valid)."""
    if name != "timeout":
        return False
    try:
        number = float(value)
    except ValueError:
        return False
    return math.isfinite(number) and 0.05 < number <= 300


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.sampled_from(
        [
            ("GET", "/messages", SEARCH_PARAMS),
            ("GET", "/wait", (*SEARCH_PARAMS, "timeout")),
            ("DELETE", "/messages", ("mailbox",)),
            ("DELETE", "/faults", ("seed",)),
            ("GET", "/messages/{id}", ()),
            ("GET", "/messages/{id}/raw", ()),
            ("DELETE", "/messages/{id}", ()),
        ]
    ),
    picks=st.lists(st.tuples(st.integers(0, 100), _encoded()), min_size=1, max_size=3),
)
def test_odd_values_never_get_a_5xx(
    capture: RelayRunner, route: tuple[str, str, tuple[str, ...]], picks: list[tuple[int, str]]
) -> None:
    """Any value in any query parameter (or path id) gets an answer below 500; a 400 says why."""
    method, path, names = route
    if "{id}" in path:
        assume(picks[0][1] not in {"", ".", ".."})
        target = path.replace("{id}", picks[0][1].replace("/", "%2F"))
    else:
        pairs = [(names[i % len(names)], value) for i, value in picks]
        assume(not any(_waits(n, unquote(v)) for n, v in pairs))
        if path == "/wait" and "timeout" not in {n for n, _ in pairs}:
            pairs.append(("timeout", "0"))
        target = path + "?" + "&".join(f"{n}={v}" for n, v in pairs)
    status, body = request(capture, method, target)
    assert status < 500, (target, body)
    if status == 400:
        assert body["error"]["message"], target
