"""The strict tooling passes: ruff's rules and the import-layer contract (cli -> services -> store)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = BIN / name if (BIN / name).exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed in the test environment (make test installs it)")
    return str(found)


def test_ruff_is_clean() -> None:
    """ruff finds nothing in the package, tests and benchmarks."""
    result = subprocess.run([tool("ruff"), "check", "mailprov", "tests", "bench"], cwd=REPO, capture_output=True, text=True, check=False)
    assert 0 == result.returncode, result.stdout[-3000:]


def test_import_layers_hold() -> None:
    """import-linter's layers contract holds: lower layers never import upper ones."""
    result = subprocess.run([tool("lint-imports")], cwd=REPO, capture_output=True, text=True, check=False)
    assert 0 == result.returncode, result.stdout[-3000:]
