"""Pages: the owner's recovery contacts (where reset codes and security notices go).

Each calls the API's own operations (``web/recovery.py``): add a contact (a code is sent
to it), confirm it with that code, remove one (not the last verified one). The code is
typed on the page; it is never in a URL or a flash cookie.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

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

RECOVERY = "/account/recovery"


@page(RECOVERY)
async def recovery_page(visit: Visit) -> web.StreamResponse:
    """The contacts, verified or waiting for their code (with the code's form), and the form
    to add one."""
    (listed,) = await owner_answers(visit, Step("list_contacts"))
    return render(
        visit,
        "recovery.html",
        contacts=listed["contacts"],
        notice=visit.flash.get("notice"),
        notice_contact=visit.flash.get("contact"),
    )


def _contact(data: MultiDictProxy[Any]) -> str:
    return str(data.get("contact", "")).strip()[:254]


@form(RECOVERY, back=RECOVERY, session=True, keep=("contact",))
async def recovery_add(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Add a contact: the API sends it a code."""
    answer, _ = await invoke(visit, "add_contact", {"contact": _contact(data)})
    shown = str(answer["contact"]["contact"])
    return Outcome(RECOVERY, (flash(visit, notice="code-sent", contact=shown),))


@form(f"{RECOVERY}/confirm", back=RECOVERY, session=True)
async def recovery_confirm(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Confirm a contact with the code sent to it."""
    body = {"contact": _contact(data), "code": "".join(str(data.get("code", "")).split())}
    answer, _ = await invoke(visit, "confirm_contact", body)
    shown = str(answer["contact"]["contact"])
    return Outcome(RECOVERY, (flash(visit, notice="contact-confirmed", contact=shown),))


@form(f"{RECOVERY}/remove", back=RECOVERY, session=True)
async def recovery_remove(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Remove a contact (the API keeps the last verified one)."""
    answer, _ = await invoke(visit, "remove_contact", path={"contact": _contact(data)})
    shown = str(answer["removed"]["contact"])
    return Outcome(RECOVERY, (flash(visit, notice="contact-removed", contact=shown),))
