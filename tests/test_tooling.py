"""The strict tooling passes: ruff (lint and format), mypy --strict, and the import-layer contract."""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import mailprov

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: Modules that are the package's entry points, not code of a layer.
ENTRY_POINTS = {"mailprov", "mailprov.__main__"}


def tool(name: str) -> str:
    found = BIN / name if (BIN / name).exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed in the test environment (make test installs it)")
    return str(found)


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=REPO, capture_output=True, text=True, check=False)


def test_ruff_is_clean() -> None:
    """ruff finds nothing in the package, tests and benchmarks."""
    result = run(tool("ruff"), "check", "mailprov", "tests", "bench")
    assert 0 == result.returncode, result.stdout[-3000:]


def test_ruff_format_is_clean() -> None:
    """Every file is formatted as ``ruff format`` would write it."""
    result = run(tool("ruff"), "format", "--check", "mailprov", "tests", "bench")
    assert 0 == result.returncode, result.stdout[-3000:]


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    """mypy --strict (pyproject's [tool.mypy]) finds nothing in the package."""
    result = run(tool("mypy"))
    assert 0 == result.returncode, result.stdout[-3000:]


def test_import_layers_hold() -> None:
    """import-linter's layers contract holds: lower layers never import upper ones."""
    result = run(tool("lint-imports"))
    assert 0 == result.returncode, result.stdout[-3000:]


def test_every_module_is_in_a_layer() -> None:
    """No module of the package sits outside the layers the contract checks."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    (contract,) = config["tool"]["importlinter"]["contracts"]
    layers = [name.strip() for layer in contract["layers"] for name in layer.split("|")]
    modules = {"mailprov"} | {
        info.name for info in pkgutil.walk_packages(mailprov.__path__, prefix="mailprov.")
    }
    outside = sorted(
        m
        for m in modules - ENTRY_POINTS
        if not any(m == layer or m.startswith(layer + ".") for layer in layers)
    )
    assert [] == outside
