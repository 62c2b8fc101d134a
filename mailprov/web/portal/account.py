"""Pages: signing in, the forced first change, the owner's account, client profiles.

Each calls the API's own operations (``web/session.py``, ``web/security_events.py``):
``sign_in`` sets the same session cookie the API uses; a session at stage
``change-password`` can only reach the password page; the account page shows the
mailbox, the password form, links to the pages of its other sections
(``portal/twofactor.py``: two-factor authentication, app passwords;
``portal/recovery.py``: recovery contacts; ``portal/filters.py``: forwarding, the vacation
reply and rules) and the recent security events.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mailprov.errors import MailprovError, NotSignedIn, RequestUnknown, SessionStageRefused
from mailprov.model import RequestState, SessionStage
from mailprov.services import clientconfig
from mailprov.web.portal.core import (
    Outcome,
    Step,
    Visit,
    flash,
    form,
    invoke,
    invoke_all,
    page,
    render,
)
from mailprov.web.portal.texts import SECURITY_EVENTS

if TYPE_CHECKING:
    from multidict import MultiDictProxy

#: Where a session at each unfinished stage goes next.
NEXT_STEP = {
    SessionStage.SECOND_FACTOR: "/signin/code",
    SessionStage.CHANGE_PASSWORD: "/account/password",
}


def _after_sign_in(stage: str) -> str:
    return NEXT_STEP.get(SessionStage(stage), "/account")


@page("/signin")
async def sign_in_page(visit: Visit) -> web.StreamResponse:
    """The sign-in form (address and password)."""
    return render(
        visit,
        "signin.html",
        form=visit.flash_values(),
        notice=visit.flash.get("notice"),
        can_reset=bool(visit.services.settings.passwords.reset_via),
    )


@form("/signin", back="/signin", keep=("address",))
async def sign_in_send(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Sign in through the API's sign-in; the session cookie is the API's own."""
    body = {
        "address": str(data.get("address", "")).strip(),
        "password": str(data.get("password", "")),
    }
    answer, _ = await invoke(visit, "sign_in", body)
    return Outcome(_after_sign_in(str(answer["stage"])))


@page("/signin/code")
async def second_factor_page(visit: Visit) -> web.StreamResponse:
    """The sign-in's second step: a code of the authenticator app, or a recovery code."""
    try:
        session, _ = await invoke(visit, "show_session")
    except NotSignedIn:
        raise web.HTTPSeeOther("/signin") from None
    if session["stage"] != SessionStage.SECOND_FACTOR:
        raise web.HTTPSeeOther(_after_sign_in(str(session["stage"])))
    return render(visit, "second_factor.html", session=session)


@form("/signin/code", back="/signin/code", session=True)
async def second_factor_send(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Give the code through the API's second step."""
    code = "".join(str(data.get("code", "")).split())
    answer, _ = await invoke(visit, "second_factor", {"code": code})
    return Outcome(_after_sign_in(str(answer["stage"])))


@page("/account/password")
async def password_page(visit: Visit) -> web.StreamResponse:
    """Set a new password: the forced first change, or any later one."""
    try:
        session, _ = await invoke(visit, "show_session")
    except NotSignedIn:
        raise web.HTTPSeeOther("/signin") from None
    if session["stage"] == SessionStage.SECOND_FACTOR:
        raise web.HTTPSeeOther("/signin/code")
    forced = session["stage"] == SessionStage.CHANGE_PASSWORD
    return render(visit, "password.html", session=session, forced=forced)


@form("/account/password", back="/account/password", session=True)
async def password_send(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Set the new password (typed twice) through the API's password change."""
    new, repeat = str(data.get("new", "")), str(data.get("repeat", ""))
    if new != repeat:
        return Outcome("/account/password", (flash(visit, error={"code": "passwords-differ"}),))
    body = {"current": str(data.get("current", "")), "new": new}
    await invoke(visit, "change_password", body)
    return Outcome("/account", (flash(visit, notice="password-changed"),))


@page("/account")
async def account_page(visit: Visit) -> web.StreamResponse:
    """The owner's account: the mailbox, the password, its other sections, recent events."""
    try:
        answers = await invoke_all(
            visit,
            Step("show_account"),
            Step("security_events"),
            Step("show_two_factor"),
            Step("list_contacts"),
            Step("show_filters"),
        )
    except NotSignedIn:
        raise web.HTTPSeeOther("/signin") from None
    except SessionStageRefused as exc:
        raise web.HTTPSeeOther(_after_sign_in(str(exc.details.get("stage")))) from None
    mailbox, events, two_factor, contacts, filters = (answer for answer, _ in answers)
    shown = [
        {**e, "words": SECURITY_EVENTS.get(str(e["event"]), str(e["event"]))}
        for e in events["events"]
    ]
    return render(
        visit,
        "account.html",
        mailbox=mailbox,
        events=shown,
        two_factor=two_factor,
        contacts=contacts["contacts"],
        filters=filters,
        notice=visit.flash.get("notice"),
    )


@form("/signout", back="/account", session=True)
async def sign_out_send(visit: Visit, _data: MultiDictProxy[Any]) -> Outcome:
    """End the session (the API's sign-out)."""
    await invoke(visit, "sign_out")
    return Outcome("/", (flash(visit, notice="signed-out"),))


# -- client profiles ------------------------------------------------------------------------

PROFILES = {
    "apple.mobileconfig": ("mobileconfig", "application/x-apple-aspen-config"),
    "thunderbird.xml": ("thunderbird", "application/xml"),
}


async def _owned_address(visit: Visit) -> str:
    """The mailbox of the signed-in owner, else of this browser's completed application."""
    try:
        mailbox, _ = await invoke(visit, "show_account")
        return str(mailbox["address"])
    except (NotSignedIn, SessionStageRefused):
        pass
    followed = visit.application()
    if followed is not None:
        number, handle = followed
        answer, _ = await invoke(visit, "show_request", path={"number": number}, handle=handle)
        if answer["request"]["state"] == RequestState.PROVISIONED:
            return str(answer["request"]["address"])
    raise NotSignedIn


async def _profile(visit: Visit, name: str) -> web.StreamResponse:
    fmt, media_type = PROFILES[name]
    try:
        address = await _owned_address(visit)
    except RequestUnknown:
        raise web.HTTPSeeOther("/signin") from None
    except MailprovError:
        raise web.HTTPSeeOther("/signin") from None
    services = visit.services
    client = await asyncio.to_thread(
        clientconfig.client_settings, services.store, services.settings, address, now=visit.now
    )
    local = address.partition("@")[0]
    return web.Response(
        body=clientconfig.document(client, fmt).encode("utf-8"),
        content_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{local}-{name}"'},
    )


@page("/profile/apple.mobileconfig")
async def apple_profile(visit: Visit) -> web.StreamResponse:
    """The Apple configuration profile of the owner's mailbox (no password in it)."""
    return await _profile(visit, "apple.mobileconfig")


@page("/profile/thunderbird.xml")
async def thunderbird_profile(visit: Visit) -> web.StreamResponse:
    """Thunderbird's autoconfig file for the owner's mailbox (no password in it)."""
    return await _profile(visit, "thunderbird.xml")
