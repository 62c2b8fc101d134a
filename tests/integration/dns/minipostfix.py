"""A minimal, test-only Postfix that hands every message to a milter and relays it to a sink.

Not mailprov's rendered Postfix (that is the render area's): just enough of a
real milter client to prove that OpenDKIM, configured by mailprov, signs mail.
Everything lives in a private folder: ``postfix -c DIR`` with its own queue,
data directory and log, smtpd on a free 127.0.0.1 port, relayhost = a sink.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

MASTER_CF = """\
# chroot = n everywhere: nothing is copied into the private queue directory.
{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/pfdata
maillog_file_prefixes = {root}/log
maillog_file = {root}/log/postfix.log
myhostname = mail.example.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
smtpd_relay_restrictions = permit_mynetworks, reject
alias_maps =
local_recipient_maps =
relayhost = [127.0.0.1]:{sink_port}
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
# The signer under test: if it cannot be reached, mail waits rather than leaving unsigned.
smtpd_milters = {milters}
non_smtpd_milters = {milters}
milter_default_action = tempfail
milter_protocol = 6
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@dataclass
class MiniPostfix:
    """A running private Postfix."""

    root: Path
    port: int

    @property
    def config_dir(self) -> Path:
        return self.root / "postfix"

    def log(self) -> str:
        """Postfix's log so far."""
        with contextlib.suppress(OSError):
            return (self.root / "log" / "postfix.log").read_text(errors="replace")
        return ""

    @classmethod
    def start(cls, root: Path, *, port: int, sink_port: int, milters: str) -> MiniPostfix:
        """Write the config, check it, start Postfix and wait for its greeting."""
        for sub in ("postfix", "spool", "log"):
            (root / sub).mkdir(parents=True, exist_ok=True)
            os.chmod(root / sub, 0o755)
        server = cls(root, port)
        (server.config_dir / "main.cf").write_text(
            MAIN_CF.format(root=root, sink_port=sink_port, milters=milters)
        )
        (server.config_dir / "master.cf").write_text(MASTER_CF.format(port=port))
        for action in ("check", "start"):
            done = subprocess.run(
                ["postfix", "-c", str(server.config_dir), action],
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
            if done.returncode != 0:
                raise RuntimeError(f"postfix {action} failed: {done.stderr}{server.log()}")
        deadline = time.monotonic() + 15
        while not server._greets():
            if time.monotonic() > deadline:
                raise TimeoutError(f"postfix did not greet: {server.log()}")
            time.sleep(0.05)
        return server

    def _greets(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s,
        ):
            return s.recv(4)[:3] == b"220"
        return False

    def stop(self) -> None:
        """Stop Postfix (its master, by the PID in its pid file) and wait until it is gone."""
        pid_file = self.root / "spool" / "pid" / "master.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        subprocess.run(
            ["postfix", "-c", str(self.config_dir), "stop"],
            capture_output=True,
            check=False,
            timeout=30,
        )
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
