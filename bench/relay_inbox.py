"""The relay with 100,000 messages stored: page and search latency, and intake under pending waits.

(1) p50/p95 over 20 requests (one keep-alive connection) of the web inbox's
first page and of searches by recipient and by subject, through the inbox and
through the API (goal: p95 <= 20 ms);
(2) SMTP intake (`smtp-source -c -s 20 -l 1024`) into the big mailbox with 10
pending ``GET /api/v1/wait`` on it that never match, against the same run with
none (goal: ratio >= 0.9), alternating, in the same run.

    .venv/bin/python bench/relay_inbox.py
    .venv/bin/python bench/relay_inbox.py --messages 100000 --intake 5000 --rounds 3
    .venv/bin/python bench/relay_inbox.py --code /path/to/other/checkout   # the same, older code

The store is filled through MessageStore (in batches: minutes faster than SMTP),
90 % of it in one mailbox (bulk@example.test), the rest over 500 small ones.
Everything runs on 127.0.0.1 with free ports in a temporary folder; the relay
is stopped by its PID.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BULK = "bulk@example.test"

BUILD = f"""
import random, sys, time
from pathlib import Path
from mailprov.relay.storage import MessageStore, Retention
store = MessageStore(Path(sys.argv[1]), Retention(0, 0, 0)).open()
count = int(sys.argv[2])
rnd = random.Random(7)
batch = []
for i in range(count):
    to = "{BULK}" if i % 10 else f"user{{i % 500}}@example.test"
    raw = (f"From: App <app{{i % 7}}@sender.test>\\r\\nTo: {{to}}\\r\\n"
           f"Subject: Order {{i}} confirmation {{rnd.randrange(10**6)}}\\r\\n"
           f"Message-ID: <{{i}}@bench.test>\\r\\n\\r\\nHello, your order {{i}} is on its way.\\r\\n")
    batch.append(store.prepare(raw.encode(), sender=f"app{{i % 7}}@sender.test", recipients=[to]))
    if len(batch) == 1000:
        store.store(batch)
        batch = []
if batch:
    store.store(batch)
store.close()
"""


def environment(code: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(code), "MAILPROV_CONFIG": ""}


def build_store(code: Path, folder: Path, count: int) -> float:
    started = time.perf_counter()
    subprocess.run(
        [PY, "-c", BUILD, str(folder), str(count)],
        check=True,
        env=environment(code),
        cwd=folder.parent,
    )
    return time.perf_counter() - started


class Relay:
    """``mailprov relay serve`` on the store (capture, API on, TLS off)."""

    def __init__(self, code: Path, tmp: Path) -> None:
        config = tmp / "mailprov.toml"
        config.write_text(
            '[relay]\nmax_messages = 0\nmax_bytes = "0"\nmax_age_hours = 0\n'
            'tls = "off"\nstorage_dir = "store"\n'
        )
        self.proc = subprocess.Popen(
            [
                PY,
                "-m",
                "mailprov",
                "--config",
                str(config),
                "--json",
                "relay",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--api-listen",
                "127.0.0.1:0",
                "--log-level",
                "warning",
            ],
            stdout=subprocess.PIPE,
            cwd=tmp,
            env=environment(code),
        )
        assert self.proc.stdout is not None
        text = b""
        while not text.endswith(b"\n}\n"):
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the relay did not start")
            text += line
        ready = json.loads(text)
        self.smtp = int(ready["smtp"].rsplit(":", 1)[1])
        self.api = int(ready["api"].split(":")[2].split("/")[0])

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def latency(port: int, path: str, n: int = 20) -> tuple[float, float, int]:
    """p50 and p95 in ms of ``n`` GETs of ``path`` (one warm-up first), and the last status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times = []
    status = 0
    for i in range(n + 1):
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        status = response.status
        if i:
            times.append((time.perf_counter() - started) * 1000)
    conn.close()
    times.sort()
    return statistics.median(times), times[max(0, round(0.95 * n) - 1)], status


def intake(port: int, messages: int, sessions: int) -> float:
    """msg/s of smtp-source into the big mailbox."""
    started = time.perf_counter()
    subprocess.run(
        [
            "smtp-source",
            "-c",
            "-s",
            str(sessions),
            "-l",
            "1024",
            "-m",
            str(messages),
            "-t",
            BULK,
            f"127.0.0.1:{port}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return messages / (time.perf_counter() - started)


def pending_waits(port: int, count: int) -> list[socket.socket]:
    """``count`` waits on the big mailbox for a subject that never comes (left pending)."""
    socks = []
    for n in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(
            f"GET /api/v1/wait?to={BULK}&subject=never-{n}&timeout=300 HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n\r\n".encode()
        )
        socks.append(sock)
    time.sleep(1.0)  # let each run its first search and settle into waiting
    return socks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000, help="messages stored first")
    parser.add_argument("--intake", type=int, default=5_000, help="messages per intake run")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--waits", type=int, default=10)
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose relay runs")
    args = parser.parse_args()
    print(
        f"code {args.code}; {args.messages:,} stored; {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="relayinbox-") as tmp_name:
        tmp = Path(tmp_name)
        built = build_store(args.code, tmp / "store", args.messages)
        print(f"store built in {built:.1f} s")
        relay = Relay(args.code, tmp)
        try:
            print(f"\n(1) latency over 20 requests, {args.messages:,} messages stored")
            print(f"{'request':62s} {'p50 ms':>8s} {'p95 ms':>8s}  status")
            checks = [
                ("inbox: first page, all mail", "/inbox/"),
                ("inbox: first page of the big mailbox", f"/inbox/?mailbox={BULK}"),
                (
                    "inbox: search by recipient (a small mailbox)",
                    "/inbox/?mailbox=user123@example.test",
                ),
                ("inbox: search by subject, one match", "/inbox/?subject=order+77777+"),
                (
                    "inbox: search by subject in the big mailbox",
                    f"/inbox/?mailbox={BULK}&subject=order+5",
                ),
                (
                    "API: first page of the big mailbox (limit 50)",
                    f"/api/v1/messages?mailbox={BULK}&limit=50",
                ),
                (
                    "API: search by recipient (a small mailbox)",
                    "/api/v1/messages?mailbox=user123@example.test&limit=50",
                ),
                (
                    "API: search by subject, one match",
                    "/api/v1/messages?subject=order+77777+&limit=50",
                ),
                (
                    "API: search by subject, many matches",
                    "/api/v1/messages?subject=confirmation&limit=50",
                ),
                (
                    "API: search by subject in the big mailbox",
                    f"/api/v1/messages?mailbox={BULK}&subject=order+5&limit=50",
                ),
            ]
            worst = 0.0
            for label, path in checks:
                p50, p95, status = latency(relay.api, path)
                worst = max(worst, p95)
                print(f"{label:62s} {p50:8.2f} {p95:8.2f}  {status}")
            print(f"worst p95 {worst:.2f} ms (goal <= 20) -> {'OK' if worst <= 20 else 'MISSED'}")

            print(
                f"\n(2) intake, smtp-source -c -s {args.sessions} -l 1024 -m {args.intake} to {BULK}"
            )
            ratios = []
            for round_no in range(1, args.rounds + 1):
                none = intake(relay.smtp, args.intake, args.sessions)
                socks = pending_waits(relay.api, args.waits)
                try:
                    waiting = intake(relay.smtp, args.intake, args.sessions)
                finally:
                    for sock in socks:
                        sock.close()
                ratios.append(waiting / none)
                print(
                    f"round {round_no}: no waits {none:7.0f} msg/s   {args.waits} waits "
                    f"{waiting:7.0f} msg/s   ratio {waiting / none:.2f}",
                    flush=True,
                )
            median = statistics.median(ratios)
            print(
                f"median ratio {median:.2f} (goal >= 0.9) -> {'OK' if median >= 0.9 else 'MISSED'}"
            )
            print(f"relay RSS at the end: {relay.rss_mib():.1f} MiB (API on, TLS off)")
        finally:
            relay.stop()


if __name__ == "__main__":
    main()
