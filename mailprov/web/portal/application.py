"""Pages: applying for a mailbox, and following an application by its number.

The steps are the API's requester flow (``web/requests.py``), called through
:func:`~mailprov.web.portal.core.invoke`: check the address, open the request,
prove who you are, confirm with the code, receive the credentials once. The
browser follows its application with the ``mailprov_application`` cookie (the
number and the secret handle; HttpOnly, SameSite=Strict), so the handle never
appears in a URL. From another device the number and the handle are typed into
the status form, never into a URL.

The credentials page is the one page shown once: the confirm form's outcome keeps
the credentials in this process's memory (never on disk, ten minutes at most), and
the page that shows them removes them — a reload, the back button or a second tab
finds them gone and says so.
"""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mailprov.errors import RequestUnknown
from mailprov.services import accounts, clientconfig
from mailprov.web.portal.core import (
    APPLICATION_COOKIE,
    Outcome,
    Visit,
    error_page,
    flash,
    form,
    invoke,
    page,
    render,
)
from mailprov.web.portal.domain import domain_handle
from mailprov.web.portal.identity import identity_routes
from mailprov.web.portal.texts import EVENTS, NEXT, STATES, explain

if TYPE_CHECKING:
    from multidict import MultiDictProxy

    from mailprov.model import Secret

#: The fields of the application form worth filling in again after an error.
APPLY_FIELDS = ("kind", "local", "domain", "recovery", "name")


def _address(local: str, domain: str) -> str:
    local = local.strip()
    return local if "@" in local else f"{local}@{domain.strip()}"


def _app_cookie(number: str, handle: str) -> tuple[str, str]:
    return APPLICATION_COOKIE, f"{number}:{handle}"


# -- step 1: the application form --------------------------------------------------------


@page("/apply")
async def apply_page(visit: Visit) -> web.StreamResponse:
    """The application form: kind, address (checked while typing), recovery contact, terms."""
    domains = await asyncio.to_thread(accounts.domain_names, visit.services.store, active_only=True)
    # The site's own mail domain first, not the alphabetically first (an organisation's).
    own = visit.services.settings.site.mail_domain
    default = own if own in domains else (domains[0] if domains else "")
    values = {"kind": "personal", "local": "", "domain": default}
    values.update(visit.flash_values())
    return render(
        visit,
        "apply.html",
        domains=domains,
        form=values,
        check=visit.flash.get("check"),
        notice=visit.flash.get("notice"),
    )


@form("/apply", back="/apply", keep=APPLY_FIELDS)
async def apply_send(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Check the address (without JavaScript), take a suggestion, or open the request."""
    values = {k: str(data.get(k, "")).strip() for k in APPLY_FIELDS}
    picked = str(data.get("pick", ""))
    if picked:
        local, _, domain = picked.partition("@")
        values.update(local=local, domain=domain)
    address = _address(values["local"], values["domain"])
    if picked or data.get("action") == "check":
        result, _ = await invoke(visit, "check_address", query={"address": address})
        return Outcome("/apply#address", (flash(visit, values=values, check=result),))
    body: dict[str, Any] = {
        "address": address,
        "kind": values["kind"] or "personal",
        "recovery": values["recovery"],
        "accept_terms": data.get("accept_terms") == "yes",
    }
    if values["name"]:
        body["name"] = values["name"]
    domain = address.rpartition("@")[2]
    answer, _ = await invoke(
        visit, "open_request", body, domain_handle=domain_handle(visit, domain)
    )
    number = answer["request"]["id"]
    return Outcome(
        "/application",
        (
            _app_cookie(number, answer["handle"]),
            flash(visit, opened=True, warnings=answer["warnings"]),
        ),
    )


# -- the application: its state, history, and the next step --------------------------------


async def _current(visit: Visit) -> tuple[str, Secret, dict[str, Any]] | None:
    """The application this browser follows, as the API shows it (None: none, or unknown)."""
    followed = visit.application()
    if followed is None:
        return None
    number, handle = followed
    answer, _ = await invoke(visit, "show_request", path={"number": number}, handle=handle)
    return number, handle, answer["request"]


def _history(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {**event, "words": EVENTS.get(str(event["event"]), str(event["event"]))}
        for event in view.get("history", [])
    ]


@page("/application")
async def application_page(visit: Visit) -> web.StreamResponse:
    """The followed application: its state in plain words, the next step's form, its history."""
    try:
        current = await _current(visit)
    except RequestUnknown as exc:
        visit.cookies.append((APPLICATION_COOKIE, None))
        return error_page(visit, explain(exc.to_json()["error"]), 404)
    if current is None:
        raise web.HTTPSeeOther("/status")
    _number, handle, view = current
    state = str(view["state"])
    reason = view.get("reason") or {}
    code = str(reason.get("code") or "")
    return render(
        visit,
        "application.html",
        request=view,
        state_words=STATES.get(state, (state, "")),
        next_words=NEXT.get(str(view["next"]["action"]), ""),
        history=_history(view),
        routes=identity_routes(visit.services.settings),
        handle=handle.reveal() if visit.flash.get("opened") else None,
        warnings=visit.flash.get("warnings") or [],
        notice=visit.flash.get("notice"),
        show_certificate=bool(visit.flash.get("certificate")),
        reason=explain({"code": code, "idg": code}) if code.startswith("IDG-") else None,
    )


def _followed(visit: Visit) -> tuple[dict[str, str], Secret]:
    followed = visit.application()
    if followed is None:
        raise RequestUnknown
    number, handle = followed
    return {"number": number}, handle


@form("/application/token", back="/application")
async def token_send(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Prove identity with a verified-identity token pasted into the form."""
    path, handle = _followed(visit)
    token = str(data.get("token", "")).strip()
    await invoke(visit, "prove_with_token", {"token": token}, path=path, handle=handle)
    return Outcome("/application")


@form("/application/challenge", back="/application")
async def challenge_send(visit: Visit, _data: MultiDictProxy[Any]) -> Outcome:
    """A fresh challenge to sign with the certificate's key."""
    path, handle = _followed(visit)
    await invoke(visit, "new_challenge", path=path, handle=handle)
    return Outcome("/application#certificate-route", (flash(visit, certificate=True),))


def _upload(data: MultiDictProxy[Any], name: str) -> bytes:
    """A file field's content (empty when no file was chosen)."""
    field = data.get(name)
    if field is None or isinstance(field, str) or not getattr(field, "filename", ""):
        return b""
    return bytes(field.file.read(96 * 1024))


def _certificate_text(data: MultiDictProxy[Any]) -> str:
    raw = _upload(data, "certificate_file")
    if not raw:
        return str(data.get("certificate", "")).strip()
    if b"-----BEGIN" in raw:
        return raw.decode("ascii", "replace")
    return base64.b64encode(raw).decode()


def _signature_text(data: MultiDictProxy[Any]) -> str:
    raw = _upload(data, "signature_file")
    if not raw:
        return str(data.get("signature", "")).strip()
    text = raw.decode("ascii", "replace").strip()
    try:  # a file holding the base64 text, as 'mailprov identity sign-challenge' prints it
        base64.b64decode(text, validate=True)
    except ValueError:
        return base64.b64encode(raw).decode()
    return text


@form("/application/certificate", back="/application#certificate-route")
async def certificate_send(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Prove identity with a certificate and a signature over the challenge."""
    path, handle = _followed(visit)
    body = {"certificate": _certificate_text(data), "signature": _signature_text(data)}
    await invoke(visit, "prove_with_certificate", body, path=path, handle=handle)
    return Outcome("/application")


@form("/application/confirm", back="/application")
async def confirm_send(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Check the code; the credentials wait in memory for their page, which shows them once."""
    path, handle = _followed(visit)
    code = "".join(str(data.get("code", "")).split())
    answer, _ = await invoke(visit, "confirm_request", {"code": code}, path=path, handle=handle)
    credentials = dict(answer["credentials"])
    credentials["warnings"] = answer["warnings"]
    visit.portal.keep_credentials(path["number"], credentials)
    return Outcome("/application/credentials")


@form("/application/resend", back="/application")
async def resend_send(visit: Visit, _data: MultiDictProxy[Any]) -> Outcome:
    """Send a new code (also unlocks a locked application)."""
    path, handle = _followed(visit)
    answer, _ = await invoke(visit, "resend_code", path=path, handle=handle)
    return Outcome("/application", (flash(visit, notice="code-sent", warnings=answer["warnings"]),))


@form("/application/cancel", back="/application")
async def cancel_send(visit: Visit, _data: MultiDictProxy[Any]) -> Outcome:
    """Cancel the application."""
    path, handle = _followed(visit)
    await invoke(visit, "cancel_request", path=path, handle=handle)
    return Outcome("/application")


@form("/application/forget", back="/application")
async def forget_send(_visit: Visit, _data: MultiDictProxy[Any]) -> Outcome:
    """Stop following the application in this browser (it goes on; the number still opens it)."""
    return Outcome("/", ((APPLICATION_COOKIE, None),))


# -- the credentials, once -----------------------------------------------------------------


def _autoconfig_links(address: str) -> list[str]:
    domain = address.rpartition("@")[2]
    return [
        f"https://autoconfig.{domain}/mail/config-v1.1.xml",
        f"https://autodiscover.{domain}/autodiscover/autodiscover.xml",
    ]


@page("/application/credentials")
async def credentials_page(visit: Visit) -> web.StreamResponse:
    """The login and the temporary password, shown this once, with the client settings."""
    followed = visit.application()
    number = followed[0] if followed else None
    credentials = visit.portal.take_credentials(number) if number else None
    if credentials is None:
        gone = {"code": "credentials-gone", "request_id": number}
        return error_page(visit, explain(gone), 410)
    services = visit.services
    settings = await asyncio.to_thread(
        clientconfig.client_settings,
        services.store,
        services.settings,
        credentials["login"],
        now=visit.now,
    )
    return render(
        visit,
        "credentials.html",
        credentials=credentials,
        number=number,
        client=settings,
        links=_autoconfig_links(settings.address),
    )


# -- following an application from anywhere: number + handle in a form -----------------------


@page("/status")
async def status_page(visit: Visit) -> web.StreamResponse:
    """The form that opens an application by its number and handle."""
    return render(visit, "status.html", form=visit.flash_values())


@form("/status", back="/status", keep=("number",))
async def status_send(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Open the application the number and handle name; this browser then follows it."""
    from mailprov.model import Secret  # noqa: PLC0415  (only this form builds one)

    number = str(data.get("number", "")).strip().upper()
    handle = str(data.get("handle", "")).strip()
    answer, _ = await invoke(visit, "show_request", path={"number": number}, handle=Secret(handle))
    return Outcome("/application", (_app_cookie(answer["request"]["id"], handle),))
