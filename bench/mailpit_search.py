"""Search latency through the Mailpit-compatible API with 100,000 messages stored.

Fills a relay storage folder with N messages (straight through the store's batch
writer: building the data set over SMTP would take minutes and measure something
else), starts ``mailprov relay serve`` on it, and times the same searches through
the Mailpit-compatible API (``/mailpit/api/v1/search``) and through mailprov's own
API (``/api/v1/messages``, the baseline), alternating, on one keep-alive
connection each: p50 and p95 of 20 requests, and the ratio Mailpit/own of the p50s.

    .venv/bin/python bench/mailpit_search.py                 # 100,000 messages
    .venv/bin/python bench/mailpit_search.py --messages 10000 --requests 20

Only 127.0.0.1 is used; the relay gets free ports and a temporary folder, and is
stopped by its PID.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailprov.relay.storage import MessageStore, Retention  # noqa: E402

RECIPIENTS = 1000  # mailboxes the messages are spread over (100 messages each at 100k)
SUBJECTS = ("Welcome", "Your code", "Invoice", "Password reset", "Newsletter")


def fill(storage: Path, count: int) -> None:
    """Store ``count`` messages in batches of 1,000 (one transaction each)."""
    store = MessageStore(storage, Retention(0, 0, 0)).open(writer=True)
    now = time.time() - count
    batch = []
    for n in range(count):
        to = f"user{n % RECIPIENTS}@example.test"
        subject = f"{SUBJECTS[n % len(SUBJECTS)]} {n}"
        raw = (
            f"From: App <app@rig.test>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{n}@rig.test>\r\nDate: Mon, 30 Nov 2026 10:00:00 +0000\r\n\r\n"
            f"Hello, this is message {n}.\r\n"
        ).encode()
        batch.append(store.prepare(raw, sender="app@rig.test", recipients=[to], now=now + n))
        if len(batch) == 1000:
            store.store(batch)
            batch = []
    if batch:
        store.store(batch)
    store.close()


def start(storage: Path, tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``mailprov relay serve`` on the filled storage; (process, API port)."""
    config = tmp / "mailprov.toml"
    config.write_text(
        '[relay]\nmax_messages = 0\nmax_bytes = "0"\nmax_age_hours = 0\ntls = "off"\n'
        f'storage_dir = "{storage}"\napi_listen = "127.0.0.1:0"\n'
    )
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "mailprov", "--config", str(config), "--json"),
            *("relay", "serve", "--listen", "127.0.0.1:0", "--log-level", "warning"),
        ],
        stdout=subprocess.PIPE,
        cwd=tmp,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    text = b""
    while not text.endswith(b"\n}\n"):
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the relay did not start")
        text += line
    api = json.loads(text)["api"]
    return proc, int(api.split(":")[2].split("/")[0])


def timed(conn: http.client.HTTPConnection, path: str) -> tuple[float, dict[str, object]]:
    """One GET: milliseconds and the JSON answer."""
    start_ns = time.perf_counter_ns()
    conn.request("GET", path, headers={"Host": "127.0.0.1"})
    answer = conn.getresponse()
    body = answer.read()
    elapsed = (time.perf_counter_ns() - start_ns) / 1e6
    assert answer.status == 200, body[:300]
    return elapsed, json.loads(body)


def p95(values: list[float]) -> float:
    """The 95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    print(f"{args.messages} messages; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="mailpitbench-") as tmp_name:
        tmp = Path(tmp_name)
        began = time.perf_counter()
        fill(tmp / "store", args.messages)
        print(f"filled in {time.perf_counter() - began:.1f} s")
        proc, port = start(tmp / "store", tmp)
        try:
            mailpit = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            own = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            rare = args.messages - 7
            cases = [
                (
                    "recipient (100 of 100k)",
                    {"query": "to:user42@example.test"},
                    {"to": "user42@example.test", "limit": 50},
                ),
                (
                    "subject, rare",
                    {"query": f'subject:"Invoice {rare - rare % 5 + 2}"'},
                    {"subject": f"Invoice {rare - rare % 5 + 2}", "limit": 50},
                ),
                (
                    "subject, common (20k)",
                    {"query": "subject:invoice"},
                    {"subject": "invoice", "limit": 50},
                ),
                (
                    "recipient + subject",
                    {"query": "to:user42@example.test subject:invoice"},
                    {"to": "user42@example.test", "subject": "invoice", "limit": 50},
                ),
            ]
            for name, mp_params, own_params in cases:
                mp_path = "/mailpit/api/v1/search?" + urlencode(mp_params)
                own_path = "/api/v1/messages?" + urlencode(own_params)
                timed(mailpit, mp_path)  # warm both (page cache, statement cache)
                timed(own, own_path)
                mp_ms, own_ms = [], []
                for _ in range(args.requests):
                    ms, body = timed(mailpit, mp_path)
                    mp_ms.append(ms)
                    ms, _ = timed(own, own_path)
                    own_ms.append(ms)
                print(
                    f"{name:24} mailpit p50 {statistics.median(mp_ms):6.1f} ms p95 {p95(mp_ms):6.1f} ms"
                    f" | own p50 {statistics.median(own_ms):6.1f} ms p95 {p95(own_ms):6.1f} ms"
                    f" | ratio p50 {statistics.median(mp_ms) / statistics.median(own_ms):.2f}"
                    f" | matches {body['messages_count']}"
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


if __name__ == "__main__":
    main()
