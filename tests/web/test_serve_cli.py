"""``mailprov serve`` as a user runs it: a process that prints one ready line, serves, and
stops cleanly on SIGTERM; a taken port is a clear error, not a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import free_port


def _site(tmp_path: Path, port: int) -> Path:
    from mailprov.store.migrate import upgrade

    upgrade(f"sqlite:///{tmp_path / 'store.sqlite'}")
    config = tmp_path / "mailprov.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "store.sqlite"}"\n'
        f'[identity]\npepper_file = "{tmp_path / "pepper"}"\n'
        f'[web]\nlisten = "127.0.0.1:{port}"\n',
        encoding="utf-8",
    )
    return config


def _env(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPROV_")}
    return {**env, "MAILPROV_CONFIG": str(config)}


def test_serve_prints_ready_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    """The ready line names the URL; the API answers there; SIGTERM ends it with status 0."""
    config = _site(tmp_path, free_port())
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailprov", "serve", "--json"],
        env=_env(config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        ready = json.loads(proc.stdout.readline())
        assert ready["ready"] is True
        answer = httpx.get(ready["openapi"], timeout=10)
        assert answer.status_code == 200
        assert answer.json()["info"]["title"] == "mailprov owner API"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    """Another process holds the port: exit status of port-in-use, one line, no traceback."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        config = _site(tmp_path, holder.getsockname()[1])
        done = subprocess.run(
            [sys.executable, "-m", "mailprov", "serve"],
            env=_env(config),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 60, done.stderr
    assert "already in use" in done.stderr
    assert "Traceback" not in done.stderr
