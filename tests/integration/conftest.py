"""Fixtures shared by the integration areas: a private authoritative DNS server (knot)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import require_or_skip
from tests.integration.knot import Knot


@pytest.fixture(scope="session", name="knot")
def fixture_knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Knot]:
    """A private knotd on a free 127.0.0.1 port for the whole session, stopped by PID."""
    if shutil.which("knotd") is None or shutil.which("knotc") is None:
        require_or_skip("knotd not installed (apt install knot knot-dnsutils)")
    server = Knot.start(tmp_path_factory.mktemp("knot"))
    yield server
    server.stop()
