"""Pages: proving that an organisation's domain is its own, before applying for a corporate
mailbox.

The API's ownership operations (``web/ownership.py``): type the domain, see the TXT record
to publish at its DNS, have it checked; once proven, the application form opens with
"corporate" and that domain chosen. The domain is in the page's address
(``/apply/domain?domain=...``): it is not a secret, and a reload or another device shows
the same record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from mailprov.errors import MailprovError
from mailprov.web.portal.core import (
    Outcome,
    Visit,
    error_document,
    flash,
    form,
    invoke,
    page,
    render,
)

if TYPE_CHECKING:
    from multidict import MultiDictProxy

PAGE = "/apply/domain"


def _page_of(domain: str) -> str:
    return f"{PAGE}?domain={quote(domain, safe='')}" if domain else PAGE


@page(PAGE)
async def domain_page(visit: Visit) -> web.StreamResponse:
    """The domain form; with ``?domain=``, that domain's record to publish and the check."""
    domain = visit.request.query.get("domain", "").strip()[:253]
    proof = None
    if domain:
        try:
            proof, _ = await invoke(visit, "show_domain_proof", path={"domain": domain})
        except MailprovError as exc:  # a malformed name typed into the address: the form again
            visit.flash.setdefault("error", error_document(exc))
    return render(
        visit,
        "domain.html",
        domain=domain or visit.flash_values().get("domain", ""),
        proof=proof if proof is not None and proof["record"] is not None else None,
    )


@form(PAGE, back=PAGE, keep=("domain",))
async def domain_start(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Start the proof through the API: the page then shows the record to publish."""
    domain = str(data.get("domain", "")).strip()
    proof, _ = await invoke(visit, "start_domain_proof", path={"domain": domain})
    return Outcome(_page_of(str(proof["domain"])))


@form(PAGE + "/check", back=PAGE)
async def domain_check(visit: Visit, data: MultiDictProxy[Any]) -> Outcome:
    """Have DNS checked through the API; proven: the application form, corporate, this domain."""
    domain = str(data.get("domain", "")).strip()[:253]
    try:
        proof, _ = await invoke(visit, "check_domain_proof", path={"domain": domain})
    except MailprovError as exc:  # back to this domain's record, with what went wrong
        return Outcome(_page_of(domain), (flash(visit, error=error_document(exc)),))
    values = {"kind": "corporate", "domain": str(proof["domain"])}
    return Outcome("/apply", (flash(visit, values=values, notice="domain-proven"),))
