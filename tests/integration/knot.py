"""A private knotd on 127.0.0.1 for tests: its own config, storage, zone files and free port.

``Knot.start(folder)`` writes a config, starts ``knotd`` in the foreground as a
child process and waits until it answers; ``load_zone`` writes a zone file and
(re)loads it, waiting until the new serial is served; ``stop`` ends the process
by its PID. Nothing here touches the host's own knot.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype

from tests.conftest import free_port

KNOTD = "knotd"
KNOTC = "knotc"


def _serial_of(text: str) -> int | None:
    """The SOA serial in a zone file (first number after 'SOA name name (')."""

    match = re.search(r"\bSOA\s+\S+\s+\S+\s*\(?\s*(\d+)", text)
    return int(match.group(1)) if match else None


@dataclass
class Knot:
    """A running private knotd."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    zones: dict[str, Path] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` for --nameserver."""
        return f"127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.folder / "knot.conf"

    @property
    def control(self) -> Path:
        return self.folder / "run" / "knot.sock"

    def _write_config(self) -> None:
        zones = "".join(
            f'  - domain: "{origin}"\n    file: "{path}"\n'
            for origin, path in sorted(self.zones.items())
        )
        self.config.write_text(
            "server:\n"
            f'  rundir: "{self.folder / "run"}"\n'
            f"  listen: 127.0.0.1@{self.port}\n"
            "  background-workers: 1\n"
            "  udp-workers: 1\n"
            "  tcp-workers: 1\n"
            "control:\n"
            f'  listen: "{self.control}"\n'
            "database:\n"
            f'  storage: "{self.folder / "db"}"\n'
            "log:\n"
            "  - target: stderr\n"
            "    any: warning\n"
            "template:\n"
            "  - id: default\n"
            f'    storage: "{self.folder / "zones"}"\n'
            # Load the zone file as written, every time: the tests rewrite it.
            "    zonefile-load: whole\n"
            "    zonefile-sync: -1\n"
            "    journal-content: none\n"
            "    semantic-checks: on\n" + ("zone:\n" + zones if zones else "")
        )

    @classmethod
    def start(cls, folder: Path, port: int | None = None) -> Knot:
        """Start knotd on ``port`` (default: a free one) with no zones; wait until it listens.

        Port 53 is for a private network namespace (``unshare -n``), where tools that
        cannot be given a port (checkdmarc) ask it.
        """
        for sub in ("run", "db", "zones"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        server = cls(folder, port or free_port())
        server._write_config()
        with (folder / "knotd.log").open("ab") as log:
            server.process = subprocess.Popen(
                [KNOTD, "-c", str(server.config)], stdout=log, stderr=log
            )
        server._wait(lambda: server.control.exists() and server._listening(), "knotd to listen")
        return server

    def _listening(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
        ):
            return True
        return False

    def _wait(self, ready: object, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():  # type: ignore[operator]
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"knotd exited ({self.process.returncode}): {self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"waiting for {what}: {self.log_tail()}")
            time.sleep(0.02)

    def log_tail(self) -> str:
        """The end of knotd's log, for failure messages."""
        with contextlib.suppress(OSError):
            return (self.folder / "knotd.log").read_text(errors="replace")[-2000:]
        return ""

    def knotc(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run knotc against this server's control socket."""
        return subprocess.run(
            [KNOTC, "-c", str(self.config), "-s", str(self.control), "-t", "5", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=20,
        )

    def load_zone(self, origin: str, text: str) -> None:
        """Serve ``text`` as zone ``origin`` (new or replaced); wait until its serial is served.

        Raises:
            RuntimeError: knot refused the zone (the message holds knot's reason).
        """
        origin = origin.rstrip(".") + "."
        path = self.folder / "zones" / f"{origin}zone"
        path.write_text(text)
        new = origin not in self.zones
        self.zones[origin] = path
        if new:
            self._write_config()
            done = self.knotc("reload")
        else:
            done = self.knotc("zone-reload", origin)
        if done.returncode != 0:
            raise RuntimeError(f"knotc failed: {done.stdout}{done.stderr}")
        serial = _serial_of(text)
        self._wait(lambda: self.served_serial(origin) == serial, f"zone {origin} serial {serial}")

    def served_serial(self, origin: str) -> int | None:
        """The SOA serial knot serves for ``origin`` now (None if none)."""

        query = dns.message.make_query(origin, dns.rdatatype.SOA)
        try:
            answer = dns.query.udp(query, "127.0.0.1", timeout=0.5, port=self.port)
        except Exception:
            return None
        for rrset in answer.answer:
            if rrset.rdtype == dns.rdatatype.SOA:
                return int(rrset[0].serial)
        return None

    def stop(self) -> None:
        """Stop knotd by its PID and wait for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
