"""Closed sets are StrEnums whose values are the strings the store, JSON and audit log carry."""

from __future__ import annotations

import importlib.util
import json
from enum import StrEnum
from pathlib import Path

import pytest

from mailprov.model import AddressKind, CodeState, DkimStatus, RequestKind, RequestState
from mailprov.store.schema import one_of

VERSIONS = Path(__file__).resolve().parents[2] / "mailprov" / "store" / "migrations" / "versions"


def migration_source(name: str) -> str:
    return (VERSIONS / name).read_text("utf-8")


@pytest.mark.parametrize(
    ("column", "enum", "migration"),
    [
        ("kind", AddressKind, "0001_accounts.py"),
        ("kind", RequestKind, "0002_identity_gate.py"),
        ("state", CodeState, "0002_identity_gate.py"),
    ],
)
def test_enum_matches_the_migrations_check(
    column: str, enum: type[StrEnum], migration: str
) -> None:
    """The enum's values are exactly those the migration's CHECK constraint allows."""
    assert one_of(column, enum) in migration_source(migration)


def test_request_states_match_the_migration() -> None:
    """RequestState lists the states of revision 0002, in its order."""
    spec = importlib.util.spec_from_file_location("m0002", VERSIONS / "0002_identity_gate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.STATES == tuple(s.value for s in RequestState)


def test_members_are_their_values_in_json_and_text() -> None:
    """A member serialises, formats and compares as its plain string value."""
    assert '{"state": "identity-verified", "status": "next"}' == json.dumps(
        {"state": RequestState.IDENTITY_VERIFIED, "status": DkimStatus.NEXT}
    )
    assert "request is locked" == f"request is {RequestState.LOCKED}"
    assert RequestState("open") is RequestState.OPEN and RequestState.OPEN == "open"
