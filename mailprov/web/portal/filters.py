"""Pages: the owner's filters — forwarding, the vacation reply and simple rules — as one form.

It calls the API's own operations (``web/filters.py``): ``show_filters`` to fill the form,
``save_filters`` to save it (compiled to Sieve, checked by Pigeonhole, installed as the
active script). What the form does not show (the vacation's dates, a move rule's "mark
read") travels in hidden fields, so saving here does not drop what the API set. A refused
form comes back as it was typed, the refused field marked (the API's ``field`` detail).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mailprov.rules import sieve as rules
from mailprov.web.portal.core import (
    Outcome,
    Step,
    Visit,
    flash,
    form,
    invoke,
    owner_answers,
    page,
    render,
)
from mailprov.web.portal.i18n import N_

if TYPE_CHECKING:
    from multidict import MultiDictProxy

FILTERS = "/account/filters"
#: Empty rule rows the form offers below the saved ones.
EMPTY_ROWS = 2
FIELD_WORDS = {"from": N_("From"), "to": N_("To"), "subject": N_("Subject")}
#: Every field of the form, kept to fill it again after a refusal.
FIELDS = (
    "forward_to",
    "keep",
    "vacation",
    "vacation_subject",
    "vacation_body",
    "vacation_days",
    "vacation_start",
    "vacation_end",
    *(
        f"rule-{n}-{part}"
        for n in range(rules.MAX_RULES + EMPTY_ROWS)
        for part in ("field", "contains", "action", "folder", "mark_read")
    ),
)
#: What a refused field needs, by the form's field (rules: by their column).
FIELD_PROBLEMS = {
    "forward_to": N_(
        "Give whole mail addresses (name@domain), separated by commas; not this mailbox itself."
    ),
    "vacation": N_("The vacation reply's dates are not accepted."),
    "vacation_subject": N_("At most 200 characters, on one line."),
    "vacation_body": N_("Write a text of at most 10,000 characters."),
    "vacation_days": N_("A whole number of days from 1 to 90."),
    "contains": N_("At most 200 characters, on one line."),
    "folder": N_("Moving needs a folder, e.g. Lists/Work: no '/' at an end, no '//'."),
    "rules": N_("At most 50 rules."),
}
ACTION_WORDS = {
    "move": N_("move into the folder"),
    "discard": N_("delete at once"),
    "mark-read": N_("mark read"),
}


@page(FILTERS)
async def filters_page(visit: Visit) -> web.StreamResponse:
    """The form, filled with what is saved (or, after a refusal, with what was sent)."""
    (saved,) = await owner_answers(visit, Step("show_filters"))
    sent, error = visit.flash_values(), visit.flash_error()
    shown, vacation_on, bad = saved, saved["vacation"] is not None, None
    if sent and error is not None:  # refused: the form as it was typed
        vacation_on = sent.get("vacation") == "on"
        shown = {
            **saved,
            "forwarding": _forwarding(sent) or {"to": [], "keep": sent.get("keep") == "on"},
            "vacation": _vacation({**sent, "vacation": "on"}),
            "rules": _rules(sent),
        }
        bad = refused_field(str(error.details.get("field", "")))
    rows = list(shown["rules"]) + [{} for _ in range(EMPTY_ROWS)]
    return render(
        visit,
        "filters.html",
        filters=shown,
        vacation_on=vacation_on,
        bad=bad,
        problems=FIELD_PROBLEMS,
        rows=rows,
        fields=FIELD_WORDS,
        actions=ACTION_WORDS,
        days=(rules.MIN_DAYS, rules.MAX_DAYS),
        notice=visit.flash.get("notice"),
    )


def refused_field(where: str) -> str | None:
    """The form's field for the API's ``field`` detail (``forwarding/to/0``, ``rules/2/folder``)."""
    parts = where.split("/")
    if parts[0] == "forwarding":
        return "forward_to"
    if parts[0] == "vacation":
        name = f"vacation_{parts[1]}" if len(parts) > 1 else "vacation"
        return name if name in FIELD_PROBLEMS else "vacation"
    if parts[0] == "rules" and len(parts) > 1 and parts[1].isdigit():
        part = parts[2] if len(parts) > 2 and parts[2] == "folder" else "contains"
        return f"rule-{parts[1]}-{part}"
    return "rules" if parts[0] == "rules" else None


def _text(data: Mapping[str, Any], name: str) -> str:
    return str(data.get(name, "")).strip()


def _forwarding(data: Mapping[str, Any]) -> dict[str, Any] | None:
    to = [a for a in re.split(r"[\s,;]+", _text(data, "forward_to")) if a]
    return {"to": to, "keep": data.get("keep") == "on"} if to else None


def _vacation(data: Mapping[str, Any]) -> dict[str, Any] | None:
    if data.get("vacation") != "on":
        return None
    days = _text(data, "vacation_days")
    return {
        "subject": _text(data, "vacation_subject"),
        "body": str(data.get("vacation_body", "")).replace("\r\n", "\n").strip(),
        "days": int(days) if days.isdigit() and len(days) < 6 else 7,
        "start": _text(data, "vacation_start") or None,
        "end": _text(data, "vacation_end") or None,
    }


def _rules(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = []
    for n in range(rules.MAX_RULES + EMPTY_ROWS):
        contains = _text(data, f"rule-{n}-contains")
        if not contains:
            continue  # an empty row (or a rule emptied to remove it)
        rule: dict[str, Any] = {
            "field": _text(data, f"rule-{n}-field"),
            "contains": contains,
            "action": _text(data, f"rule-{n}-action"),
        }
        if rule["action"] == "move":
            folder = _text(data, f"rule-{n}-folder")
            if folder:  # none: the API's rules say a move needs one
                rule["folder"] = folder
            if data.get(f"rule-{n}-mark_read") == "on":
                rule["mark_read"] = True
        found.append(rule)
    return found


@form(FILTERS, back=FILTERS, session=True, keep=FIELDS)
async def filters_save(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Save the whole form through the API (forwarding, vacation reply, rules)."""
    body = {"forwarding": _forwarding(data), "vacation": _vacation(data), "rules": _rules(data)}
    await invoke(visit, "save_filters", body)
    return Outcome(FILTERS, (flash(visit, notice="filters-saved"),))
