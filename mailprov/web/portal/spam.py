"""Page: the owner's spam settings — where spam goes (Junk or the inbox) and from which
score a message counts as spam; each may be left to the default (the domain's, else the
site's).

It calls the API's own operations (``web/spam.py``): ``show_spam`` to fill the form,
``save_spam`` to save it. Kept apart from the filters page: the owner's filters run first
at delivery, this rule only files what they leave for the inbox (README, "Spam settings").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from mailprov.rules.spam import MIN_THRESHOLD
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

if TYPE_CHECKING:
    from multidict import MultiDictProxy

SPAM = "/account/spam"
#: The choices of "where spam goes": the value sent for each.
TO_JUNK = {"default": None, "yes": True, "no": False}


def _number(value: float) -> str:
    return f"{value:g}"


@page(SPAM)
async def spam_page(visit: Visit) -> web.StreamResponse:
    """The form, filled with the mailbox's own values; the defaults it would take instead."""
    (spam,) = await owner_answers(visit, Step("show_spam"))
    above = spam["domain"]
    default_threshold = above["threshold"]
    if default_threshold is None:
        default_threshold = spam["site"]["threshold"]
    default_to_junk = above["to_junk"]
    if default_to_junk is None:
        default_to_junk = spam["site"]["to_junk"]
    own = spam["own"]
    choice = "default" if own["to_junk"] is None else ("yes" if own["to_junk"] else "no")
    return render(
        visit,
        "spam.html",
        spam=spam,
        threshold=_number(spam["threshold"]),
        own_threshold="" if own["threshold"] is None else _number(own["threshold"]),
        default_threshold=_number(default_threshold),
        default_to_junk=default_to_junk,
        choice=choice,
        lowest=_number(MIN_THRESHOLD),
        highest=_number(round(spam["reject_score"] - MIN_THRESHOLD, 2)),
        reject=_number(spam["reject_score"]),
        notice=visit.flash.get("notice"),
    )


def _threshold(data: MultiDictProxy[Any]) -> Any:
    """The typed threshold: None when empty (the default); a number; else the text as typed,
    which the API's schema refuses."""
    raw = str(data.get("threshold", "")).strip().replace(",", ".")[:32]
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        return raw


@form(SPAM, back=SPAM, session=True, keep=("threshold",))
async def spam_save(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Save both settings through the API."""
    body = {
        "threshold": _threshold(data),
        "to_junk": TO_JUNK.get(str(data.get("to_junk", "default"))),
    }
    await invoke(visit, "save_spam", body)
    return Outcome(SPAM, (flash(visit, notice="spam-saved"),))
