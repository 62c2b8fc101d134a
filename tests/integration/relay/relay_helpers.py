"""Helpers for the relay's integration tests: real clients and polling."""

from __future__ import annotations

import shutil
import smtplib
import ssl
import time
from collections.abc import Callable
from typing import Any

from mailprov.testing import RelayRunner
from tests.conftest import require_or_skip


def client(relay: RelayRunner, **kwargs: Any) -> smtplib.SMTP:
    """A real smtplib client connected to the relay."""
    return smtplib.SMTP(relay.host, relay.port, local_hostname="client.test", timeout=10, **kwargs)


def tls_context(relay: RelayRunner) -> ssl.SSLContext:
    """A client context trusting the relay's generated certificate."""
    assert relay.cert_file is not None
    return ssl.create_default_context(cafile=str(relay.cert_file))


def need(tool: str) -> str:
    """The path of a host tool, or skip (fail under CI)."""
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin")
    if path is None:
        require_or_skip(f"{tool} is not installed (scripts/install-test-deps.sh installs it)")
    assert path is not None
    return path


def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)
