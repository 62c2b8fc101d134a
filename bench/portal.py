"""Portal benchmark: time to first byte of the apply page and of the account page, against a
static file served by the same aiohttp process (the same run, the same connection kind).

Run: .venv/bin/python bench/portal.py [--requests 200]

A real ``mailprov serve`` (its aiohttp application, SQLite store) runs in a thread on
127.0.0.1; one client socket per target keeps its connection alive and sends the requests
round-robin (apply, account, static, apply, ...), so the three see the same machine load.
The time to first byte is from the request's last byte sent to the answer's first byte
received. Goal: each page's p50 and p95 within 3x the static file's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def start_site(folder: Path) -> tuple[str, Any]:
    """A site with one domain and one mailbox, and its server; returns (host:port, stop)."""
    from mailprov.rules import hashing
    from mailprov.services import accounts
    from mailprov.services.accounts import Actor
    from mailprov.settings import load_settings
    from mailprov.store import open_store
    from mailprov.store.migrate import upgrade
    from mailprov.web.server import make_services, serve

    url = f"sqlite:///{folder / 'mailprov.sqlite'}"
    upgrade(url)
    config = folder / "mailprov.toml"
    config.write_text(
        f'[store]\nurl = "{url}"\n[identity]\npepper_file = "{folder / "pepper"}"\n'
        '[passwords]\nscheme = "SHA512-CRYPT"\n[web]\nlisten = "127.0.0.1:0"\n'
    )
    settings = load_settings(config_file=str(config), flags={})
    store = open_store(url)
    actor = Actor("bench", int(time.time()))
    accounts.add_domain(store, "example.test", actor=actor)
    prepared = accounts.NewPassword(hashing.hash_password(PASSWORD, "SHA512-CRYPT"), None)
    accounts.add_mailbox(store, ADDRESS, prepared, actor=actor)
    services = make_services(settings, store)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()
    where: list[str] = []

    def at(url: str) -> None:
        where.append(url.removeprefix("http://"))
        ready.set()

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(serve(services, listen="127.0.0.1:0", ready=at, stop=stop))

    threading.Thread(target=main, daemon=True).start()
    ready.wait(30)
    return where[0], lambda: loop.call_soon_threadsafe(stop.set)


ADDRESS = "bench@example.test"
PASSWORD = "Bench-" + secrets.token_hex(6) + "!a1"


class Client:
    """One kept-alive HTTP/1.1 connection that times the first byte of each answer."""

    def __init__(self, host: str, cookie: str = "") -> None:
        name, _, port = host.rpartition(":")
        self.host = host
        self.sock = socket.create_connection((name, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.cookie = cookie

    def first_byte(self, path: str) -> float:
        """Seconds from sending ``GET path`` to the first byte back; reads the whole answer."""
        headers = f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAccept-Language: ru\r\n"
        if self.cookie:
            headers += f"Cookie: {self.cookie}\r\n"
        self.sock.sendall((headers + "\r\n").encode())
        start = time.perf_counter()
        data = self.sock.recv(65536)
        elapsed = time.perf_counter() - start
        head, _, body = data.partition(b"\r\n\r\n")
        while b"\r\n\r\n" not in data:
            data += self.sock.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        assert status == b"200", (path, head[:200])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += self.sock.recv(65536)
        return elapsed


def sign_in(host: str) -> str:
    """The session cookie of the bench mailbox (through the API)."""
    import httpx

    answer = httpx.post(
        f"http://{host}/api/v1/session", json={"address": ADDRESS, "password": PASSWORD}
    )
    answer.raise_for_status()
    return f"mailprov_session={answer.cookies['mailprov_session']}"


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile (0.95 -> p95), by the nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        host, stop = start_site(Path(tmp))
        cookie = sign_in(host)
        targets = {
            "apply page": (Client(host), "/apply"),
            "account page": (Client(host, cookie), "/account"),
            "static file": (Client(host), "/static/portal.css"),
        }
        for client, path in targets.values():  # warm up: templates compiled, caches filled
            for _ in range(20):
                client.first_byte(path)
        times: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(args.requests):
            for name, (client, path) in targets.items():
                times[name].append(client.first_byte(path))
        for client, _ in targets.values():
            client.sock.close()
        time.sleep(0.2)  # the server finishes closing the files it sent before it stops
        stop()
    static = times["static file"]
    report: dict[str, Any] = {"requests": args.requests}
    for name, values in times.items():
        report[name] = {
            "p50_ms": round(statistics.median(values) * 1000, 3),
            "p95_ms": round(percentile(values, 0.95) * 1000, 3),
        }
    for name in ("apply page", "account page"):
        report[name]["ratio_p50"] = round(
            statistics.median(times[name]) / statistics.median(static), 2
        )
        report[name]["ratio_p95"] = round(
            percentile(times[name], 0.95) / percentile(static, 0.95), 2
        )
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
