"""Relays for the integration tests: real aiosmtpd servers on 127.0.0.1, free ports, temp folders.

Each relay runs on its own event loop in a background thread (``RelayRunner`` from
``mailprov.testing``); the clients in the tests are real ones (smtplib, swaks,
smtp-source, urllib) talking TCP to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailprov.testing import RelayRunner, relay_options


@pytest.fixture
def make_relay(tmp_path: Path) -> Iterator[Callable[..., RelayRunner]]:
    """Start relays with given options; all are stopped at the end of the test."""
    started: list[RelayRunner] = []

    def make(**changes: Any) -> RelayRunner:
        storage = tmp_path / f"relay{len(started)}"
        runner = RelayRunner(relay_options(storage, **changes)).start()
        started.append(runner)
        return runner

    yield make
    for runner in started:
        runner.stop()


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayRunner]:
    """A capture relay shared by a module's tests (they purge what they look at)."""
    runner = RelayRunner(relay_options(tmp_path_factory.mktemp("capture"))).start()
    yield runner
    runner.stop()
