"""Pages: proving that an organisation's domain is its own, before applying for a corporate
mailbox.

The API's ownership operations (``web/ownership.py``): type the domain, see the TXT record
to publish at its DNS, have it checked; once proven, the application form opens with
"corporate" and that domain chosen. The domain is in the page's address
(``/apply/domain?domain=...``): it is not a secret.

Starting a proof answers its secret domain handle, which the proof's record, its check
and every application at the domain need. The portal never shows it: it keeps it in
this process's memory, under an HMAC of a random HttpOnly SameSite=Strict cookie
(``mailprov_domain``, path ``/apply``), and gives it to the API when this browser looks
at the proof, checks it, or applies at the domain (:func:`domain_handle`). Another
browser sees no record and cannot apply there; after a restart of ``serve`` (or a day)
the administrator opens the domain to all (``domain set NAME --open-requests``).
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from mailprov.errors import AlreadyExists, MailprovError
from mailprov.model import Secret
from mailprov.rules.addresses import normalise_domain
from mailprov.web.api import Cookie
from mailprov.web.portal.core import (
    Outcome,
    Visit,
    error_document,
    flash,
    form,
    invoke,
    memory_key,
    page,
    render,
)
from mailprov.web.portal.texts import explain

if TYPE_CHECKING:
    from multidict import MultiDictProxy

    from mailprov.web.portal.texts import Explanation

PAGE = "/apply/domain"
COOKIE = "mailprov_domain"
#: Where the cookie goes: the domain pages and the application form.
COOKIE_PATH = "/apply"
#: How long this process remembers a browser's domain handles (publishing a record in DNS
#: and applying can take a day).
KEEP_SECONDS = 86_400


# -- the domain handles of this browser's proofs, in this process --------------------------


def _a_label(domain: str) -> str:
    try:
        return normalise_domain(domain)
    except MailprovError:  # malformed: no proof can have it
        return domain.strip().lower()


def _held(visit: Visit) -> tuple[str, dict[str, Secret]] | None:
    """This browser's cookie value and the handles kept for it, if any."""
    raw = visit.request.cookies.get(COOKIE, "")
    if not 32 <= len(raw) <= 64:
        return None
    visit.portal.prune(time.monotonic())
    entry = visit.portal.domains.get(memory_key(visit, "domain", raw))
    return (raw, entry[1]) if entry is not None else None


def domain_handle(visit: Visit, domain: str) -> Secret | None:
    """The domain handle of ``domain``'s proof, if this browser started it."""
    held = _held(visit)
    return held[1].get(_a_label(domain)) if held is not None else None


def _keep(visit: Visit, domain: str, handle: Secret) -> None:
    """Remember ``handle`` for this browser (its cookie, or a new one)."""
    held = _held(visit)
    raw, handles = held if held is not None else (secrets.token_urlsafe(32), {})
    until = time.monotonic() + KEEP_SECONDS
    visit.portal.domains[memory_key(visit, "domain", raw)] = (until, {**handles, domain: handle})
    visit.api_cookies.append(Cookie(COOKIE, raw, path=COOKIE_PATH, max_age=KEEP_SECONDS))


def _problem(visit: Visit) -> Explanation | None:
    """The previous form's error; a proof that is not this browser's in this page's words."""
    error = visit.flash.get("error")
    if isinstance(error, dict) and error.get("code") == AlreadyExists.code:
        words = explain({**error, "code": "domain-proof-taken"})
        return dataclasses.replace(words, code=AlreadyExists.code)
    return visit.flash_error()


# -- the pages ------------------------------------------------------------------------------


def _page_of(domain: str) -> str:
    return f"{PAGE}?domain={quote(domain, safe='')}" if domain else PAGE


@page(PAGE)
async def domain_page(visit: Visit) -> web.StreamResponse:
    """The domain form; with ``?domain=``, that domain's record to publish and the check."""
    domain = visit.request.query.get("domain", "").strip()[:253]
    proof = None
    if domain:
        try:
            proof, _ = await invoke(
                visit,
                "show_domain_proof",
                path={"domain": domain},
                domain_handle=domain_handle(visit, domain),
            )
        except MailprovError as exc:  # a malformed name typed into the address: the form again
            visit.flash.setdefault("error", error_document(exc))
    return render(
        visit,
        "domain.html",
        domain=domain or visit.flash_values().get("domain", ""),
        proof=proof if proof is not None and proof["record"] is not None else None,
        error=_problem(visit),
    )


@form(PAGE, back=PAGE, keep=("domain",))
async def domain_start(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Start the proof through the API (again, with this browser's handle): the page then
    shows the record to publish. A new proof's handle is kept for this browser."""
    domain = str(data.get("domain", "")).strip()
    proof, _ = await invoke(
        visit,
        "start_domain_proof",
        path={"domain": domain},
        domain_handle=domain_handle(visit, domain),
    )
    if "handle" in proof:
        _keep(visit, str(proof["domain"]), Secret(str(proof["handle"])))
    return Outcome(_page_of(str(proof["domain"])))


@form(PAGE + "/check", back=PAGE)
async def domain_check(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Have DNS checked through the API; proven: the application form, corporate, this domain."""
    domain = str(data.get("domain", "")).strip()[:253]
    try:
        proof, _ = await invoke(
            visit,
            "check_domain_proof",
            path={"domain": domain},
            domain_handle=domain_handle(visit, domain),
        )
    except MailprovError as exc:  # back to this domain's record, with what went wrong
        return Outcome(_page_of(domain), (flash(visit, error=error_document(exc)),))
    values = {"kind": "corporate", "domain": str(proof["domain"])}
    return Outcome("/apply", (flash(visit, values=values, notice="domain-proven"),))
