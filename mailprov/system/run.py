"""Running host commands: one place, argv only (never a shell), input on stdin, a time limit."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from mailprov.errors import TemporaryFailure


@dataclass(frozen=True)
class Completed:
    """A finished command: exit status and its output (text)."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run(argv: Sequence[str], *, input_text: str | None = None, timeout: float = 60.0) -> Completed:
    """Run ``argv`` with ``input_text`` on stdin; secrets go on stdin, never in argv.

    Raises:
        TemporaryFailure: the command is missing or did not finish in ``timeout`` seconds.
    """
    try:
        done = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise TemporaryFailure(f"command not found: {argv[0]}") from None
    except subprocess.TimeoutExpired:
        raise TemporaryFailure(f"{argv[0]} did not finish within {timeout:g} s") from None
    return Completed(tuple(argv), done.returncode, done.stdout, done.stderr)
