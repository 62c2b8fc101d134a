"""The hidden password prompt, driven through a real pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path

from mailprov.services.accounts import current_hash
from mailprov.store import open_store
from mailprov.store.migrate import upgrade


def converse(
    argv: list[str], answers: list[tuple[bytes, bytes]], env: dict[str, str]
) -> tuple[int, bytes]:
    """Run argv on a pty, answering each expected prompt; return the exit status and all output."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the command
        os.execvpe(argv[0], argv, env)  # noqa: S606  (argv is ours: the test command)
    seen = b""
    pending = list(answers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        if pending and pending[0][0] in seen:
            prompt, answer = pending.pop(0)
            seen = seen.replace(prompt, b"<" + prompt + b">", 1)
            os.write(fd, answer + b"\r")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), seen


def test_prompt_asks_twice_and_hides_input(tmp_path: Path) -> None:
    """On a terminal, 'mailbox add' asks for the password twice, never echoes it, and stores its hash."""
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    upgrade(url)
    env = {
        **os.environ,
        "MAILPROV_CONFIG": "",
        "MAILPROV_PASSWORDS_SCHEME": "SHA512-CRYPT",
        "XDG_STATE_HOME": str(tmp_path),
    }
    base = [sys.executable, "-m", "mailprov", "--store", url]
    assert 0 == converse([*base, "domain", "add", "example.test"], [], env)[0]
    secret = b"Typed-Secret-2026"
    status, output = converse(
        [*base, "mailbox", "add", "tty@example.test"],
        [(b"Password:", secret), (b"Repeat password:", secret)],
        env,
    )
    assert 0 == status, output
    assert b"<Password:>" in output and b"<Repeat password:>" in output
    assert secret not in output
    store = open_store(url)
    try:
        from mailprov.rules.hashing import verify_password

        assert verify_password(secret.decode(), current_hash(store, "tty@example.test"))
    finally:
        store.close()


def test_prompt_mismatch_is_asked_again(tmp_path: Path) -> None:
    """Two different answers are refused and the prompt repeats; nothing is created on Ctrl-D."""
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    upgrade(url)
    env = {**os.environ, "MAILPROV_CONFIG": "", "XDG_STATE_HOME": str(tmp_path)}
    base = [sys.executable, "-m", "mailprov", "--store", url]
    converse([*base, "domain", "add", "example.test"], [], env)
    status, output = converse(
        [*base, "mailbox", "add", "tty@example.test"],
        [
            (b"Password:", b"One-Secret-2026"),
            (b"Repeat password:", b"Two-Secret-2026"),
            (b"do not match", b"\x03"),
        ],
        env,
    )
    assert b"do not match" in output
    assert 130 == status
    listed = converse([*base, "--json", "mailbox", "list"], [], env)[1]
    assert b"tty@example.test" not in listed
