"""The portal's pure helpers for refusals: which form field an API ``field`` detail names on the
filters page, and a reset step's errors in the reset's own words."""

from __future__ import annotations

import pytest

from mailprov.web.portal.filters import FIELDS, refused_field
from mailprov.web.portal.reset import reset_explained


@pytest.mark.parametrize(
    ("where", "field"),
    [
        ("forwarding/to/0", "forward_to"),
        ("forwarding", "forward_to"),
        ("vacation/body", "vacation_body"),
        ("vacation/subject", "vacation_subject"),
        ("vacation/days", "vacation_days"),
        ("vacation/end", "vacation"),
        ("rules/3/folder", "rule-3-folder"),
        ("rules/3/contains", "rule-3-contains"),
        ("rules/3", "rule-3-contains"),
        ("rules", "rules"),
        ("the body", None),
        ("", None),
    ],
)
def test_the_refused_field_of_the_filters_form(where: str, field: str | None) -> None:
    """Each API field path marks the form field a person can correct (or none)."""
    assert refused_field(where) == field
    if field is not None and field != "rules":
        assert field in FIELDS  # a field the form keeps after a refusal


def test_reset_errors_use_the_resets_words_and_keep_their_codes() -> None:
    """'code-used' speaks of a new code, not of an application; its IDG code stays shown; an
    error without reset words is explained as anywhere else."""
    used = reset_explained({"code": "code-used", "idg": "IDG-K04", "details": {"idg": "IDG-K04"}})
    assert used is not None
    assert (used.code, used.idg, used.title) == (
        "code-used",
        "IDG-K04",
        "This code has already been used.",
    )
    assert "new code" in used.what_to_do
    wrong = reset_explained({"code": "code-invalid", "details": {"attempts_left": 4}})
    assert wrong is not None
    assert (wrong.title, wrong.details["attempts_left"]) == ("The code is incorrect.", 4)
    assert reset_explained(None) is None
