"""Operations: proving a domain's ownership by DNS, for corporate mailboxes.

The CLI's ``domain verify-start`` / ``domain verify`` (:mod:`mailprov.services.ownership`)
over HTTP, for the person who applies for a corporate address: start the proof (the
domain is added *inactive* if it is not served yet, so nothing is delivered for it
before the proof), publish the TXT record it answers, then have it checked. The check
asks ``[dns] check_nameserver`` when set, else the system's resolver; once the record is
there the domain is verified and active, and corporate requests for it may be opened.

Anyone may start a proof of a domain not served here yet: the proof is the DNS record,
which only the domain's owner can publish. Starting answers, once, a secret **domain
handle** (``handle``): the proof's record, its check, and every later request at the
domain (``POST /api/v1/requests``) need it in the ``X-Domain-Handle`` header, until the
administrator opens the domain to all (``domain set NAME --open-requests``). Without the
right handle a proof answers as an unknown domain (nothing tells who proved what), and
it cannot be started again. Starting again with it answers the same record while its
token is less than 30 days old (a record that may already be published is never
replaced from here).
"""

from __future__ import annotations

from typing import Any

from mailprov import errors as e
from mailprov.rules.dnscheck import parse_nameserver
from mailprov.services import ownership
from mailprov.services.accounts import Actor
from mailprov.web.api import API, DOMAIN_HANDLE_HEADER, Call

TAG = "domains"
ITEM = "/api/v1/domains/{domain}/ownership"

PROOF = API.schema(
    "DomainOwnershipProof",
    {
        "type": "object",
        "required": ["domain", "record", "verified"],
        "properties": {
            "domain": {"type": "string", "description": "The domain (IDNA A-label)."},
            "record": {
                "type": ["object", "null"],
                "description": "The TXT record to publish (null: no proof started).",
                "required": ["name", "type", "value"],
                "properties": {
                    "name": {"type": "string"},
                    "type": {"const": "TXT"},
                    "value": {"type": "string"},
                },
            },
            "verified": {
                "type": "boolean",
                "description": "Proven: corporate mailboxes may be requested for it.",
            },
        },
    },
)


STARTED = API.schema(
    "DomainOwnershipStarted",
    {
        "allOf": [PROOF],
        "properties": {
            "handle": {
                "type": "string",
                "description": "Shown once, when the proof adds the domain: send it as "
                f"{DOMAIN_HANDLE_HEADER} to see or check the proof and with every request "
                "at the domain.",
            },
        },
    },
)


def _actor(call: Call) -> Actor:
    return Actor(f"requester:{call.client}"[:128], call.now)


@API.operation(
    "POST",
    ITEM,
    summary="Start proving a domain's ownership: answers the TXT record to publish",
    tag=TAG,
    stages=None,
    answer=STARTED,
    errors=(e.InvalidAddress, e.ClientRateLimited, e.AlreadyExists),
    domain_handle="optional",
)
def start_domain_proof(call: Call) -> dict[str, Any]:
    """Start the proof of a domain not served here yet: publish the record at the domain's
    DNS, then ask for the check. The domain is added inactive (nothing is delivered for it
    until it is proven), and the answer's ``handle`` is shown only now. With that handle,
    starting again answers the same record (a new one after 30 days); without it, a domain
    served here or being proven is refused (409). At most ``[web] requests_per_client_hour``
    new proofs an hour from one client address."""
    services = call.services
    started = ownership.start(
        services.store,
        call.path["domain"],
        actor=_actor(call),
        per_actor_hour=services.settings.web.requests_per_client_hour,
        pepper=services.pepper,
        handle=call.domain_handle,
    )
    handle = started.handle or call.domain_handle
    answer = ownership.proof(
        services.store, call.path["domain"], pepper=services.pepper, handle=handle
    ).to_json()
    if started.handle is not None:
        answer["handle"] = started.handle.reveal()
    return answer


@API.operation(
    "GET",
    ITEM,
    summary="Where a domain's ownership proof stands: the record asked for, proven or not",
    tag=TAG,
    stages=None,
    answer=PROOF,
    errors=(e.InvalidAddress,),
    domain_handle="required",
)
def show_domain_proof(call: Call) -> dict[str, Any]:
    """The record the proof asks for and whether it is proven. Without the proof's domain
    handle (or a wrong one), as for a domain nobody started proving: no record, not proven."""
    services = call.services
    return ownership.proof(
        services.store, call.path["domain"], pepper=services.pepper, handle=call.domain_handle
    ).to_json()


@API.operation(
    "POST",
    ITEM + "/check",
    summary="Check the published TXT record; proven: the domain is verified and active",
    tag=TAG,
    stages=None,
    answer=PROOF,
    errors=(e.InvalidAddress, e.WrongRequestState, e.DomainNotVerified, e.TemporaryFailure),
    domain_handle="required",
)
def check_domain_proof(call: Call) -> dict[str, Any]:
    """Ask DNS ([dns] check_nameserver, else the system's resolver) for the record; when it
    is there, the domain is verified and active. Not there yet: ``domain-not-verified``
    (publishing can take a while; ask again later). Without the proof's domain handle (or
    a wrong one): ``request-state``, as for a domain nobody started proving."""
    services = call.services
    configured = services.settings.dns.check_nameserver
    ownership.verify(
        services.store,
        call.path["domain"],
        actor=_actor(call),
        nameserver=parse_nameserver(configured) if configured else None,
        pepper=services.pepper,
        handle=call.domain_handle,
    )
    return ownership.proof(
        services.store, call.path["domain"], pepper=services.pepper, handle=call.domain_handle
    ).to_json()
