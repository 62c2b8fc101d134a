"""Judge published zones with tools that cannot be given a port, in a private network namespace.

``python -m tests.integration.dns.isolated FOLDER ZONES.json -- CMD...`` is run by
:func:`run_isolated` under ``unshare -n``: nothing but a fresh loopback exists there,
so whatever the tool tries to resolve or fetch stays inside. It brings loopback up,
starts a private knotd (:mod:`tests.integration.knot`) on 127.0.0.1 port 53 serving
the zones, runs CMD, prints its stdout, and stops knotd by its PID.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.knot import Knot


def run_isolated(
    folder: Path, zones: dict[str, str], command: list[str], *, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a new network namespace where knotd serves ``zones`` on 127.0.0.1:53."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "zones.json"
    spec.write_text(json.dumps(zones))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [
            "unshare",
            "-n",
            sys.executable,
            "-m",
            "tests.integration.dns.isolated",
            str(folder),
            str(spec),
            "--",
            *command,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env=env,
    )


def main(argv: list[str]) -> int:
    """Bring up loopback, serve the zones on port 53, run the command, stop knotd."""
    folder, spec = Path(argv[0]), Path(argv[1])
    command = argv[argv.index("--") + 1 :]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    server = Knot.start(folder / "knot", port=53)
    try:
        for origin, text in json.loads(spec.read_text()).items():
            server.load_zone(origin, text)
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=100)
    finally:
        server.stop()
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
