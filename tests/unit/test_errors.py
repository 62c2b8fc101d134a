"""The error tree: stable codes, documented exit statuses, README in sync."""

from __future__ import annotations

from pathlib import Path

from mailprov.cli.docs import END, START, errors_table
from mailprov.errors import AddressTaken, ExitStatus, MailprovError, all_errors

REPO = Path(__file__).resolve().parents[2]


def test_codes_are_unique_kebab_case() -> None:
    """Every error class has its own kebab-case code."""
    codes = [cls.code for cls in all_errors()]
    assert len(codes) == len(set(codes))
    assert all(code == code.lower() and " " not in code and "_" not in code for code in codes)


def test_exit_statuses_are_unique() -> None:
    """No two ExitStatus names share a value (an IntEnum would silently make one an alias)."""
    values = [member.value for member in ExitStatus.__members__.values()]
    assert len(values) == len(set(values)), sorted(v for v in values if values.count(v) > 1)


def test_every_leaf_has_a_real_exit_status_and_message() -> None:
    """Every leaf has an ExitStatus other than INTERNAL and a one-line default message."""
    for cls in all_errors():
        if cls is MailprovError:
            continue
        assert isinstance(cls.exit_status, ExitStatus)
        assert cls.exit_status not in (ExitStatus.OK, ExitStatus.INTERNAL, ExitStatus.USAGE), cls
        assert (cls.__doc__ or "").strip(), cls


def test_json_shape() -> None:
    """to_json carries code, message, hint, details and the exit status."""
    body = AddressTaken("a@b.org is taken", suggestions=["x@b.org"]).to_json()["error"]
    assert "address-taken" == body["code"]
    assert ["x@b.org"] == body["suggestions"]
    assert 14 == body["exit_status"]
    assert body["hint"]


def test_readme_table_is_current() -> None:
    """The README's exit-status table is exactly what the code generates."""
    readme = (REPO / "README.md").read_text("utf-8")
    block = readme.split(START, 1)[1].split(END, 1)[0]
    assert errors_table() == block.lstrip("\n")
