"""Relay throughput: `smtp-source -c -s 20 -l 1024 -m 20000` against three servers, same run.

(a) ``mailprov relay serve`` in capture mode (storing every message to disk),
(b) a bare aiosmtpd sink that discards (the baseline of the goal a/b >= 1.0),
(c) Postfix's ``smtp-sink -u postfix`` (the ceiling),
(d) MailDev 3.0.0 (npm ``maildev``, the peer; messages kept in a folder, as the relay does),
    installed on first use into ``build/npm-maildev``; ``--no-maildev`` skips it.

Prints msg/s for each, the ratios a/b, a/c and a/d, stored vs sent for (a), and the
relay's RSS (all its processes) after 20k messages and after 100k.

    .venv/bin/python bench/relay.py                     # workers 1 and 2
    .venv/bin/python bench/relay.py --workers 2 --rounds 2
    .venv/bin/python bench/relay.py --no-100k           # quicker

Only 127.0.0.1 is used; every server gets a free port and a temporary folder,
and is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_greeting(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(3) == b"220":
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing greets on {port}")


def load(port: int, messages: int, sessions: int) -> float:
    """Run smtp-source; return seconds."""
    cmd = [
        "smtp-source",
        "-c",
        "-s",
        str(sessions),
        "-l",
        "1024",
        "-m",
        str(messages),
        f"127.0.0.1:{port}",
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], check=False, capture_output=True, text=True
    )
    return [int(p) for p in out.stdout.split()]


def run_relay(workers: int, messages: int, sessions: int, big: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="relaybench-") as tmp:
        config = Path(tmp) / "mailprov.toml"
        config.write_text(
            '[relay]\nmax_messages = 0\nmax_bytes = "0"\nmax_age_hours = 0\n'
            f'workers = {workers}\ntls = "off"\napi_listen = ""\nstorage_dir = "store"\n'
        )
        proc = subprocess.Popen(
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
                "--log-level",
                "warning",
            ],
            stdout=subprocess.PIPE,
            cwd=tmp,
        )
        try:
            assert proc.stdout is not None
            text = b""
            while not text.endswith(b"\n}\n"):  # the JSON document's last line is "}"
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError("the relay did not start")
                text += line
            ready = json.loads(text)
            port = int(ready["smtp"].rsplit(":", 1)[1])
            wait_greeting(port)
            pids = [proc.pid, *children(proc.pid)]
            seconds = load(port, messages, sessions)
            rss20 = rss_kib(pids)
            stored = _count(Path(tmp) / "store")
            result = {
                "rate": messages / seconds,
                "seconds": seconds,
                "stored": stored,
                "rss20k_kib": rss20,
            }
            if big:
                load(port, 100_000 - messages, sessions)
                result["rss100k_kib"] = rss_kib(pids)
                result["stored100k"] = _count(Path(tmp) / "store")
        finally:
            stop(proc)
        return result


def _count(store: Path) -> int:
    import sqlite3

    with sqlite3.connect(store / "index.sqlite") as db:
        return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])


def run_server(cmd: list[str], port: int, messages: int, sessions: int) -> float:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        wait_greeting(port)
        return messages / load(port, messages, sessions)
    finally:
        stop(proc)


MAILDEV_DIR = ROOT / "build" / "npm-maildev"


def maildev_command(smtp_port: int, mail_dir: Path) -> list[str]:
    """(d): MailDev on 127.0.0.1 (installed into build/npm-maildev once)."""
    exe = MAILDEV_DIR / "node_modules" / ".bin" / "maildev"
    if not exe.exists():
        MAILDEV_DIR.mkdir(parents=True, exist_ok=True)
        (MAILDEV_DIR / "package.json").write_text(
            '{"private": true, "dependencies": {"maildev": "3.0.0"}}\n'
        )
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            cwd=MAILDEV_DIR,
            check=True,
        )
    return [
        str(exe),
        "--smtp",
        str(smtp_port),
        "--ip",
        "127.0.0.1",
        "--web",
        str(free_port()),
        "--web-ip",
        "127.0.0.1",
        "--mail-directory",
        str(mail_dir),
        "--silent",
    ]


def aiosmtpd_sink(port: int) -> None:
    """(b): the bare aiosmtpd sink of real-stack.md §10 (hostname= given, handle_DATA -> 250)."""
    from aiosmtpd.smtp import SMTP

    class Discard:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 2.0.0 Ok: discarded"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        handler = Discard()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="sink.test", ident="aiosink"),
            "127.0.0.1",
            port,
            backlog=1024,
        )
        done = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, done.set)
        async with server:
            await done.wait()

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--workers", default="1,2", help="relay worker counts to try, e.g. 1,2")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-100k", action="store_true", help="skip the RSS run to 100k messages")
    parser.add_argument("--no-maildev", action="store_true", help="skip the MailDev peer (d)")
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        aiosmtpd_sink(args.sink)
        return
    os.chdir(ROOT)
    print(
        f"load: smtp-source -c -s {args.sessions} -l 1024 -m {args.messages}; "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}"
    )
    for round_no in range(1, args.rounds + 1):
        port = free_port()
        c = run_server(
            ["smtp-sink", "-u", "postfix", f"127.0.0.1:{port}", "1000"],
            port,
            args.messages,
            args.sessions,
        )
        print(f"round {round_no}: (c) smtp-sink -u postfix {c:7.0f} msg/s", flush=True)
        d = None
        if not args.no_maildev:
            port = free_port()
            with tempfile.TemporaryDirectory(prefix="maildev-") as mail_dir:
                d = run_server(
                    maildev_command(port, Path(mail_dir)), port, args.messages, args.sessions
                )
            print(f"round {round_no}: (d) MailDev 3.0.0 {d:13.0f} msg/s", flush=True)
        for workers in [int(w) for w in args.workers.split(",")]:
            # The baseline is measured right before each relay run: other work on the
            # machine changes by the minute, and a/b should compare like with like.
            port = free_port()
            b = run_server([PY, __file__, "--sink", str(port)], port, args.messages, args.sessions)
            print(f"round {round_no}: (b) bare aiosmtpd sink {b:8.0f} msg/s", flush=True)
            a = run_relay(workers, args.messages, args.sessions, big=not args.no_100k)
            vs_maildev = f"  a/d {a['rate'] / d:.1f}" if d else ""
            line = (
                f"round {round_no}: (a) relay capture, workers={workers}: {a['rate']:6.0f} msg/s"
                f"  a/b {a['rate'] / b:.2f}  a/c {a['rate'] / c:.3f}"
                f"{vs_maildev}"
                f"  stored {a['stored']}/{args.messages}"
                f"{' OK' if a['stored'] == args.messages else ' MISMATCH'}"
                f"  RSS@20k {a['rss20k_kib'] / 1024:.1f} MiB"
            )
            if "rss100k_kib" in a:
                line += (
                    f"  RSS@100k {a['rss100k_kib'] / 1024:.1f} MiB"
                    f" (x{a['rss100k_kib'] / a['rss20k_kib']:.2f})"
                    f"  stored@100k {a['stored100k']}"
                )
            print(line, flush=True)


if __name__ == "__main__":
    main()
