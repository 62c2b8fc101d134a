"""Pages: the owner's filters — forwarding, the vacation reply and simple rules — as one form.

It calls the API's own operations (``web/filters.py``): ``show_filters`` to fill the form,
``save_filters`` to save it (compiled to Sieve, checked by Pigeonhole, installed as the
active script). What the form does not show (the vacation's dates, a move rule's "mark
read") travels in hidden fields, so saving here does not drop what the API set.
"""

from __future__ import annotations

import re
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
ACTION_WORDS = {
    "move": N_("move into the folder"),
    "discard": N_("delete at once"),
    "mark-read": N_("mark read"),
}


@page(FILTERS)
async def filters_page(visit: Visit) -> web.StreamResponse:
    """The form, filled with what is saved (or, after a refusal, with what was sent)."""
    (saved,) = await owner_answers(visit, Step("show_filters"))
    rows = list(saved["rules"]) + [{} for _ in range(EMPTY_ROWS)]
    return render(
        visit,
        "filters.html",
        filters=saved,
        rows=rows,
        fields=FIELD_WORDS,
        actions=ACTION_WORDS,
        days=(rules.MIN_DAYS, rules.MAX_DAYS),
        notice=visit.flash.get("notice"),
    )


def _text(data: MultiDictProxy[Any], name: str) -> str:
    return str(data.get(name, "")).strip()


def _forwarding(data: MultiDictProxy[Any]) -> dict[str, Any] | None:
    to = [a for a in re.split(r"[\s,;]+", _text(data, "forward_to")) if a]
    return {"to": to, "keep": data.get("keep") == "on"} if to else None


def _vacation(data: MultiDictProxy[Any]) -> dict[str, Any] | None:
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


def _rules(data: MultiDictProxy[Any]) -> list[dict[str, Any]]:
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


@form(FILTERS, back=FILTERS, session=True, keep=("forward_to", "vacation_subject"))
async def filters_save(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Save the whole form through the API (forwarding, vacation reply, rules)."""
    body = {"forwarding": _forwarding(data), "vacation": _vacation(data), "rules": _rules(data)}
    await invoke(visit, "save_filters", body)
    return Outcome(FILTERS, (flash(visit, notice="filters-saved"),))
