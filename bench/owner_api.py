"""The owner API (``mailprov serve``) against the relay's API on the same machine, same run.

(1) Sequential, one keep-alive client: ``POST /api/v1/session`` + one authenticated
    ``GET /api/v1/account`` per iteration, against ``GET /api/v1/messages`` of the
    relay's API (the baseline); also the authenticated GET alone against the same
    baseline. Rates per second and the ratios.
(2) A burst of 1,000 authenticated ``GET /api/v1/account`` (bearer token) from
    ``--concurrency`` connections at once: p50/p95/max latency and requests/s, and the
    same burst of the relay's GET.

    .venv/bin/python bench/owner_api.py                        # ARGON2ID (the default scheme)
    .venv/bin/python bench/owner_api.py --scheme SHA512-CRYPT --iterations 200
    .venv/bin/python bench/owner_api.py --store postgresql+psycopg://postgres@127.0.0.1/test

Both servers are the real commands (``mailprov serve``, ``mailprov relay serve``) on
127.0.0.1, each with a free port and a temporary folder, stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
ADDRESS = "bench@example.test"
PASSWORD = "Owner-Api-Passw0rd!x"  # noqa: S105  (a throwaway mailbox of the bench site)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mailprov(config: Path, *args: str, stdin: str | None = None) -> None:
    subprocess.run(
        [PY, "-m", "mailprov", "--config", str(config), *args],
        input=stdin,
        text=True,
        check=True,
        capture_output=True,
    )


def start(
    cmd: list[str], cwd: Path, ready: Callable[[dict[str, Any]], bool]
) -> tuple[Any, dict[str, Any]]:
    """Start a server that prints a JSON ready document; return (process, document)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=cwd)
    assert proc.stdout is not None
    text = b""
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{cmd[3:]} did not start")
        text += line
        try:
            document = json.loads(text)
        except ValueError:
            continue
        if ready(document):
            return proc, document


def stop(proc: Any) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def site(folder: Path, scheme: str, store: str | None) -> Path:
    """A site with example.test and one mailbox, whose serve listens on a free port."""
    subprocess.run(
        [PY, "-m", "mailprov", "init", "--dir", str(folder), "--domain", "example.test"]
        + (["--store", store] if store else []),
        check=True,
        capture_output=True,
    )
    config = folder / "mailprov.toml"
    with config.open("a") as f:
        f.write(
            f'\n[passwords]\nscheme = "{scheme}"\n'
            f'[web]\nlisten = "127.0.0.1:{free_port()}"\n'
            '[relay]\ntls = "off"\nstorage_dir = "relay"\nmax_messages = 0\n'
        )
    mailprov(config, "mailbox", "add", ADDRESS, "--password-stdin", stdin=PASSWORD + "\n")
    return config


def timed(count: int, step: Callable[[], None]) -> float:
    """Seconds per step (after 5 warm-up steps)."""
    for _ in range(5):
        step()
    started = time.perf_counter()
    for _ in range(count):
        step()
    return (time.perf_counter() - started) / count


async def burst(
    url: str, headers: dict[str, str], total: int, concurrency: int
) -> dict[str, float]:
    """``total`` GETs from ``concurrency`` connections: latency percentiles (ms) and rate."""
    latencies: list[float] = []
    queue = iter(range(total))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            for _ in queue:
                t0 = time.perf_counter()
                async with session.get(url) as answer:
                    await answer.read()
                    if answer.status != 200:
                        raise RuntimeError(f"{url}: {answer.status}")
                latencies.append((time.perf_counter() - t0) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "p50": cuts[49],
        "p95": cuts[94],
        "max": max(latencies),
        "rate": total / seconds,
        "count": len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheme", default="ARGON2ID", help="[passwords] scheme of the mailbox")
    parser.add_argument("--store", help="a store URL (default: SQLite in the temporary site)")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    os.chdir(ROOT)
    print(
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; scheme {args.scheme}; "
        f"store {'SQLite' if not args.store else args.store.split(':')[0]}"
    )
    with tempfile.TemporaryDirectory(prefix="ownerbench-") as tmp:
        config = site(Path(tmp), args.scheme, args.store)
        serve, ready = start(
            [PY, "-m", "mailprov", "--config", str(config), "--json", "serve"],
            Path(tmp),
            lambda d: bool(d.get("ready")),
        )
        relay_api = f"127.0.0.1:{free_port()}"
        relay, _ = start(
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
                relay_api,
                "--log-level",
                "warning",
            ],
            Path(tmp),
            lambda d: bool(d.get("ready")),
        )
        try:
            run(args, ready["url"], f"http://{relay_api}")
        finally:
            stop(serve)
            stop(relay)


def run(args: argparse.Namespace, owner_url: str, relay_url: str) -> None:
    with (
        httpx.Client(base_url=owner_url, timeout=30) as owner,
        httpx.Client(base_url=relay_url, timeout=30) as relay,
    ):
        token: list[str] = []

        def sign_in_and_get() -> None:
            answer = owner.post("/api/v1/session", json={"address": ADDRESS, "password": PASSWORD})
            assert answer.status_code == 201, answer.text
            token[:] = [answer.json()["token"]]
            got = owner.get("/api/v1/account", headers={"Authorization": f"Bearer {token[0]}"})
            assert got.status_code == 200, got.text

        def relay_get() -> None:
            assert relay.get("/api/v1/messages").status_code == 200

        def owner_get() -> None:
            got = owner.get("/api/v1/account", headers={"Authorization": f"Bearer {token[0]}"})
            assert got.status_code == 200

        n = args.iterations
        baseline = timed(n, relay_get)
        pair = timed(n, sign_in_and_get)
        alone = timed(n, owner_get)
        baseline2 = timed(n, relay_get)
        base = (baseline + baseline2) / 2
        print(f"(1) sequential, {n} iterations each, one keep-alive connection:")
        print(
            f"    relay GET /api/v1/messages (baseline)      {1 / base:8.1f}/s  {base * 1000:7.2f} ms"
        )
        print(
            f"    POST /api/v1/session + GET /api/v1/account {1 / pair:8.1f}/s  {pair * 1000:7.2f} ms"
            f"  ratio {pair / base:6.1f}x the baseline's time"
        )
        print(
            f"    GET /api/v1/account (bearer) alone          {1 / alone:8.1f}/s  {alone * 1000:7.2f} ms"
            f"  ratio {alone / base:6.2f}x"
        )
        headers = {"Authorization": f"Bearer {token[0]}"}
        total, c = args.burst, args.concurrency
        mine = asyncio.run(burst(f"{owner_url}/api/v1/account", headers, total, c))
        theirs = asyncio.run(burst(f"{relay_url}/api/v1/messages", {}, total, c))
        print(f"(2) burst of {total} GETs, {c} connections at once:")
        for name, r in (
            ("owner GET /api/v1/account", mine),
            ("relay GET /api/v1/messages", theirs),
        ):
            print(
                f"    {name:28} p50 {r['p50']:7.1f} ms  p95 {r['p95']:7.1f} ms"
                f"  max {r['max']:7.1f} ms  {r['rate']:7.0f} req/s  ({r['count']:.0f} answered)"
            )
        print(f"    p95 ratio owner/relay {mine['p95'] / theirs['p95']:.2f}")


if __name__ == "__main__":
    main()
