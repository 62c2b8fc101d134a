"""``mailprov relay ...`` as scripts use it: the installed entry point as a real process."""

from __future__ import annotations

import json
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.relay.relay_helpers import need

MAILPROV = [sys.executable, "-m", "mailprov"]


def mailprov(cwd: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/bin", "MAILPROV_CONFIG": "", "HOME": str(cwd)}
    return subprocess.run(
        [*MAILPROV, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


class Served:
    """A ``relay serve`` process and what its ready document said."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [
                *MAILPROV,
                "--json",
                "relay",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--api-listen",
                "127.0.0.1:0",
                "--storage",
                "store",
                *args,
            ],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={"PATH": "/usr/sbin:/usr/bin:/bin", "MAILPROV_CONFIG": "", "HOME": str(cwd)},
        )
        assert self.proc.stdout is not None
        text = ""
        while not text.endswith("\n}\n"):
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(
                    f"relay did not start: {self.proc.stderr.read() if self.proc.stderr else ''}"
                )
            text += line
        self.ready = json.loads(text)
        self.port = int(self.ready["smtp"].rsplit(":", 1)[1])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=20)  # also closes the pipes
        return self.proc.returncode


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A capture relay started with the CLI, in tmp_path/store."""
    relay = Served(tmp_path)
    yield relay
    relay.stop()


def test_serve_reports_ready_and_the_cli_reads_what_arrived(served: Served, tmp_path: Path) -> None:
    """After the ready line the relay accepts mail, and messages/show/wait/purge read the store."""
    assert served.ready["ready"] is True
    assert served.ready["mode"] == "capture"
    with smtplib.SMTP("127.0.0.1", served.port, local_hostname="c.test", timeout=10) as c:
        c.sendmail("s@client.test", ["cli@example.test"], b"Subject: from cli test\r\n\r\nbody\r\n")
    listed = mailprov(
        tmp_path,
        "relay",
        "messages",
        "--storage",
        "store",
        "--mailbox",
        "cli@example.test",
        "--json",
    )
    assert listed.returncode == 0, listed.stderr
    messages = json.loads(listed.stdout)["messages"]
    assert [m["subject"] for m in messages] == ["from cli test"]
    raw = mailprov(tmp_path, "relay", "show", messages[0]["id"], "--raw", "--storage", "store")
    assert raw.stdout.splitlines() == ["Subject: from cli test", "", "body"]
    waited = mailprov(
        tmp_path,
        "relay",
        "wait",
        "--mailbox",
        "cli@example.test",
        "--subject",
        "cli",
        "--timeout",
        "5",
        "--storage",
        "store",
        "--json",
    )
    assert json.loads(waited.stdout)["message"]["id"] == messages[0]["id"]
    dry = mailprov(tmp_path, "relay", "purge", "--dry-run", "--storage", "store", "--json")
    assert json.loads(dry.stdout) == {"changed": False, "would_delete": 1}
    purged = mailprov(tmp_path, "relay", "purge", "--storage", "store", "--json")
    assert json.loads(purged.stdout) == {"changed": True, "deleted": 1}
    assert served.stop() == 0


def test_wait_times_out_with_its_exit_status(served: Served, tmp_path: Path) -> None:
    """relay wait exits 63 with a JSON error when nothing matching arrives."""
    result = mailprov(
        tmp_path,
        "relay",
        "wait",
        "--mailbox",
        "never@example.test",
        "--timeout",
        "0.2",
        "--storage",
        "store",
        "--json",
    )
    assert result.returncode == 63
    assert json.loads(result.stdout)["error"]["code"] == "wait-timed-out"


def test_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    """Serving on a port in use fails at once with exit 60 and says so."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        started = time.monotonic()
        result = mailprov(
            tmp_path, "relay", "serve", "--listen", f"127.0.0.1:{port}", "--api-listen", ""
        )
    assert result.returncode == 60
    assert "already in use" in result.stderr
    assert time.monotonic() - started < 15


@pytest.mark.parametrize(
    ("args", "status", "words"),
    [
        (["--listen", "0.0.0.0:0"], 61, "beyond loopback"),
        (["--fault", "rcpt:x=999 bad"], 62, "fault rule"),
        (["--mode", "forward"], 23, "smarthost_host"),
    ],
)
def test_refused_configurations(tmp_path: Path, args: list[str], status: int, words: str) -> None:
    """An open relay, a bad fault rule, forward without smarthost: refused before listening."""
    result = mailprov(tmp_path, "relay", "serve", "--api-listen", "", *args)
    assert result.returncode == status, result.stderr
    assert words in result.stderr


def test_workers_share_the_port_and_store_everything(tmp_path: Path) -> None:
    """With 2 workers on one port (SO_REUSEPORT), every message smtp-source sent is stored."""
    tool = need("smtp-source")
    relay = Served(tmp_path, "--workers", "2", "--log-level", "warning")
    try:
        subprocess.run(
            [
                tool,
                "-s",
                "10",
                "-l",
                "512",
                "-m",
                "400",
                "-t",
                "w@example.test",
                f"127.0.0.1:{relay.port}",
            ],
            check=True,
            timeout=120,
            stdout=subprocess.DEVNULL,
        )
        listed = mailprov(
            tmp_path, "relay", "messages", "--storage", "store", "--limit", "1000", "--json"
        )
        messages = json.loads(listed.stdout)["messages"]
        assert len(messages) == 400
        assert len({m["id"].split("-")[1] for m in messages}) == 2  # both processes took mail
    finally:
        assert relay.stop() == 0
    assert shutil.which("true")
