"""Pages: two-factor authentication and app passwords on the owner's account.

Each calls the API's own operations (``web/twofactor.py``): the set-up's secret, its
QR code and the recovery codes, and a new app password, leave the server once each;
the portal holds them in this process's memory only (never in a cookie or a URL),
bound to the session, until its page shows them: the set-up until it is confirmed
(or its time is up), the recovery codes and an app password once.
"""

from __future__ import annotations

import base64
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

TWO_FACTOR = "/account/two-factor"


def _held(visit: Visit, what: str) -> str:
    """The key of what the portal holds for this session (the session's CSRF token: an HMAC
    of the session token, so no token is kept in memory)."""
    return f"{what}|{visit.session_form_token()}"


@page(TWO_FACTOR)
async def two_factor_page(visit: Visit) -> web.StreamResponse:
    """On or off; a set-up being confirmed (QR code and secret); the recovery codes, once."""
    (status,) = await owner_answers(visit, Step("show_two_factor"))
    setup = None
    if status["pending"] and not status["enabled"]:
        setup = visit.portal.take_credentials(_held(visit, "2fa-setup"))
        if setup is not None:  # shown until confirmed: held again for a wrong code
            visit.portal.keep_credentials(_held(visit, "2fa-setup"), setup)
            svg = setup["qr_svg"].encode("utf-8")
            setup = {**setup, "qr": "data:image/svg+xml;base64," + base64.b64encode(svg).decode()}
    codes = visit.portal.take_credentials(_held(visit, "2fa-codes"))
    return render(
        visit,
        "two_factor.html",
        two_factor=status,
        setup=setup,
        recovery_codes=codes["recovery_codes"] if codes else None,
        notice=visit.flash.get("notice"),
    )


@form(f"{TWO_FACTOR}/start", back=TWO_FACTOR, session=True)
async def two_factor_start(visit: Visit, _data: MultiDictProxy[Any]) -> Outcome:
    """Start the set-up: a new secret, held for the page that shows it."""
    answer, _ = await invoke(visit, "start_two_factor")
    visit.portal.keep_credentials(_held(visit, "2fa-setup"), answer)
    return Outcome(TWO_FACTOR)


@form(f"{TWO_FACTOR}/confirm", back=TWO_FACTOR, session=True)
async def two_factor_confirm(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Confirm with a first code and the password; the recovery codes are shown once."""
    body = {
        "code": "".join(str(data.get("code", "")).split()),
        "password": str(data.get("password", "")),
    }
    answer, _ = await invoke(visit, "confirm_two_factor", body)
    visit.portal.take_credentials(_held(visit, "2fa-setup"))
    visit.portal.keep_credentials(_held(visit, "2fa-codes"), answer)
    return Outcome(TWO_FACTOR, (flash(visit, notice="2fa-on"),))


@form(f"{TWO_FACTOR}/disable", back=TWO_FACTOR, session=True)
async def two_factor_disable(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Turn it off with the password."""
    await invoke(visit, "disable_two_factor", {"password": str(data.get("password", ""))})
    return Outcome(TWO_FACTOR, (flash(visit, notice="2fa-off"),))


# -- app passwords ---------------------------------------------------------------------------

APP_PASSWORDS = "/account/app-passwords"


@page(APP_PASSWORDS)
async def app_passwords_page(visit: Visit) -> web.StreamResponse:
    """The app passwords (labels and dates), a new one shown once, the form to create one."""
    (listed,) = await owner_answers(visit, Step("list_app_passwords"))
    created = visit.portal.take_credentials(_held(visit, "app-password"))
    return render(
        visit,
        "app_passwords.html",
        app_passwords=listed["app_passwords"],
        created=created,
        notice=visit.flash.get("notice"),
    )


@form(APP_PASSWORDS, back=APP_PASSWORDS, session=True, keep=("label",))
async def app_password_create(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Create one with its label; the password is held for the page that shows it once."""
    answer, _ = await invoke(
        visit, "create_app_password", {"label": str(data.get("label", "")).strip()}
    )
    visit.portal.keep_credentials(_held(visit, "app-password"), answer)
    return Outcome(APP_PASSWORDS)


@form(f"{APP_PASSWORDS}/revoke", back=APP_PASSWORDS, session=True)
async def app_password_revoke(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Revoke one: the next login with it fails."""
    await invoke(visit, "revoke_app_password", path={"id": str(data.get("id", ""))[:20]})
    return Outcome(APP_PASSWORDS, (flash(visit, notice="app-password-revoked"),))
