"""Operation: the signed-in owner's recent security events, from the audit log.

Every sign-in, sign-out and security event of a mailbox (password changed or reset,
two-factor on or off, app passwords, recovery contacts, lockout) is an ``owner.*``
record of the audit log with the mailbox as its target. The owner sees the newest
ones: when, what, and from which client address — never the record's other details.
"""

from __future__ import annotations

from typing import Any

from mailprov.model import iso
from mailprov.services.audit import list_records
from mailprov.web.api import API, Call

#: How many events the owner sees.
RECENT = 20

EVENTS = API.schema(
    "SecurityEvents",
    {
        "type": "object",
        "required": ["events"],
        "properties": {
            "events": {
                "type": "array",
                "description": f"The newest {RECENT} first.",
                "items": {
                    "type": "object",
                    "required": ["at", "event"],
                    "properties": {
                        "at": {"type": "string", "description": "ISO 8601 UTC"},
                        "event": {
                            "type": "string",
                            "description": "sign-in, sign-out, password-changed, ...",
                        },
                        "client": {"type": "string", "description": "The client's IP address"},
                    },
                },
            }
        },
    },
)


@API.operation(
    "GET",
    "/api/v1/account/events",
    summary="The owner's recent security events",
    tag="account",
    answer=EVENTS,
)
def security_events(call: Call) -> dict[str, Any]:
    """Sign-ins, sign-outs, password changes and the other security events of the mailbox,
    newest first (from the audit log).
    """
    records = list_records(
        call.services.store, target=call.owner.address, action="owner.", limit=RECENT
    )
    events = []
    for record in reversed(records):
        event: dict[str, Any] = {
            "at": iso(record.at),
            "event": record.action.removeprefix("owner."),
        }
        client = record.details.get("client")
        if isinstance(client, str) and client:
            event["client"] = client
        events.append(event)
    return {"events": events}
