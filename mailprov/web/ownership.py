"""Operations: proving a domain's ownership by DNS, for corporate mailboxes.

The CLI's ``domain verify-start`` / ``domain verify`` (:mod:`mailprov.services.ownership`)
over HTTP, for the person who applies for a corporate address: start the proof (the
domain is added *inactive* if it is not served yet, so nothing is delivered for it
before the proof), publish the TXT record it answers, then have it checked. The check
asks ``[dns] check_nameserver`` when set, else the system's resolver; once the record is
there the domain is verified and active, and corporate requests for it may be opened.

Anyone may ask: the proof is the DNS record, which only the domain's owner can publish.
Starting again answers the same record while its token is less than 30 days old (a
record that may already be published is never replaced from here).
"""

from __future__ import annotations

from typing import Any

from mailprov import errors as e
from mailprov.rules.dnscheck import parse_nameserver
from mailprov.services import ownership
from mailprov.services.accounts import Actor
from mailprov.web.api import API, Call

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


def _actor(call: Call) -> Actor:
    return Actor(f"requester:{call.client}"[:128], call.now)


@API.operation(
    "POST",
    ITEM,
    summary="Start proving a domain's ownership: answers the TXT record to publish",
    tag=TAG,
    stages=None,
    answer=PROOF,
    errors=(e.InvalidAddress, e.RateLimited),
)
def start_domain_proof(call: Call) -> dict[str, Any]:
    """Start the proof (or answer the one started less than 30 days ago): publish the
    record at the domain's DNS, then ask for the check. A domain not served yet is added
    inactive; nothing is delivered for it until it is proven. At most
    ``[web] requests_per_client_hour`` new proofs an hour from one client address."""
    services = call.services
    ownership.start(
        services.store,
        call.path["domain"],
        actor=_actor(call),
        per_actor_hour=services.settings.web.requests_per_client_hour,
    )
    return ownership.proof(services.store, call.path["domain"]).to_json()


@API.operation(
    "GET",
    ITEM,
    summary="Where a domain's ownership proof stands: the record asked for, proven or not",
    tag=TAG,
    stages=None,
    answer=PROOF,
    errors=(e.InvalidAddress,),
)
def show_domain_proof(call: Call) -> dict[str, Any]:
    """The record the proof asks for (null when none was started) and whether it is proven."""
    return ownership.proof(call.services.store, call.path["domain"]).to_json()


@API.operation(
    "POST",
    ITEM + "/check",
    summary="Check the published TXT record; proven: the domain is verified and active",
    tag=TAG,
    stages=None,
    answer=PROOF,
    errors=(e.InvalidAddress, e.WrongRequestState, e.DomainNotVerified, e.TemporaryFailure),
)
def check_domain_proof(call: Call) -> dict[str, Any]:
    """Ask DNS ([dns] check_nameserver, else the system's resolver) for the record; when it
    is there, the domain is verified and active. Not there yet: ``domain-not-verified``
    (publishing can take a while; ask again later)."""
    services = call.services
    configured = services.settings.dns.check_nameserver
    ownership.verify(
        services.store,
        call.path["domain"],
        actor=_actor(call),
        nameserver=parse_nameserver(configured) if configured else None,
    )
    return ownership.proof(services.store, call.path["domain"]).to_json()
