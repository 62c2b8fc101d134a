"""Running host commands: one seam (``Runner``) so services never call subprocess directly.

argv only, never a shell; secrets go on stdin (``input_text``), never in argv.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from mailprov.errors import ServerToolMissing, TemporaryFailure


@dataclass(frozen=True)
class Completed:
    """What a finished command returned; with ``tty=True`` stderr is merged into stdout."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together, stripped."""
        return "\n".join(part for part in (self.stdout.strip(), self.stderr.strip()) if part)


class Runner(Protocol):
    """Runs a command and returns its result; never raises for a non-zero exit status."""

    def run(
        self,
        argv: Sequence[str],
        *,
        tty: bool = False,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        input_text: str | None = None,
    ) -> Completed:
        """Run ``argv``; ``tty=True`` gives it a pty (``postfix`` is silent without one)."""
        ...


class SubprocessRunner:
    """The real runner: subprocess, or a pty for tools that only talk to terminals."""

    def run(
        self,
        argv: Sequence[str],
        *,
        tty: bool = False,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        input_text: str | None = None,
    ) -> Completed:
        """Run ``argv`` (found on PATH) with ``input_text`` on stdin.

        Raises:
            ServerToolMissing: the program is not installed.
            TemporaryFailure: it did not finish within ``timeout`` seconds.
        """
        program = shutil.which(argv[0], path=_path())
        if program is None:
            raise ServerToolMissing(f"'{argv[0]}' is not installed (or not on PATH)")
        full_env = {**os.environ, "PATH": _path(), **(env or {})}
        args = (program, *argv[1:])
        if tty:
            return _run_pty(tuple(argv), args, full_env, timeout)
        try:
            proc = subprocess.run(  # noqa: PLW1510  (the status is returned, not raised)
                args,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=full_env,
                input=input_text,
                stdin=subprocess.DEVNULL if input_text is None else None,
            )
        except subprocess.TimeoutExpired:
            raise TemporaryFailure(f"{argv[0]} did not finish within {timeout:g} s") from None
        return Completed(tuple(argv), proc.returncode, proc.stdout, proc.stderr)


def _path() -> str:
    """PATH plus the sbin folders where Debian puts postfix and postconf."""
    extra = ["/usr/sbin", "/sbin", "/usr/local/sbin"]
    have = os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
    return os.pathsep.join([*have, *(p for p in extra if p not in have)])


def _run_pty(
    shown: tuple[str, ...], args: tuple[str, ...], env: dict[str, str], timeout: float
) -> Completed:
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env, close_fds=True
        )
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                break
            ready, _, _ = select.select([master], [], [], min(left, 0.5))
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the other side closed
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
    code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    return Completed(shown, code, text, "")
