"""Operations: the owner's spam settings — the junk threshold and "move spam to Junk".

The mailbox's own values (null: the domain's default, else the site's) and the effective
ones; saving takes effect with the next message delivered (Dovecot asks the store at each
delivery; README, "Spam settings"). Each change is a ``mailbox.set`` audit record.
"""

from __future__ import annotations

from typing import Any

from mailprov.errors import InvalidValue
from mailprov.rules.spam import MAX_THRESHOLD, MIN_THRESHOLD
from mailprov.services import spam
from mailprov.web.api import API, FULL, Call

THRESHOLD = {
    "type": ["number", "null"],
    "minimum": MIN_THRESHOLD,
    "maximum": MAX_THRESHOLD,
    "description": "rspamd's score from which mail is spam: above 0, at most two decimals, "
    "below 'reject_score'; null: the default one level up.",
}
TO_JUNK = {
    "type": ["boolean", "null"],
    "description": "File spam into the Junk folder at delivery; null: the default one level up.",
}
LEVEL = {
    "type": "object",
    "required": ["threshold", "to_junk"],
    "additionalProperties": False,
    "properties": {"threshold": THRESHOLD, "to_junk": TO_JUNK},
}
FROM = {"enum": ["mailbox", "domain", "site"], "description": "The level the value comes from."}

SPAM = API.schema(
    "SpamSettings",
    {
        "type": "object",
        "required": [
            "address",
            "threshold",
            "to_junk",
            "threshold_from",
            "to_junk_from",
            "own",
            "domain",
            "site",
            "active",
            "reject_score",
        ],
        "properties": {
            "address": {"type": "string"},
            "threshold": {"type": "number", "description": "The effective threshold."},
            "to_junk": {"type": "boolean", "description": "Effective: spam goes into Junk."},
            "threshold_from": FROM,
            "to_junk_from": FROM,
            "own": {**LEVEL, "description": "The mailbox's own values (null: not set)."},
            "domain": {**LEVEL, "description": "The domain's defaults (null: not set)."},
            "site": {**LEVEL, "description": "The site's defaults."},
            "active": {
                "type": "boolean",
                "description": "Mail is scored (rspamd is on); when false, nothing is filed.",
            },
            "reject_score": {
                "type": "number",
                "description": "Mail scoring this much is refused before delivery.",
            },
        },
    },
)


@API.operation(
    "GET",
    "/api/v1/account/spam",
    summary="The owner's spam settings",
    tag="account",
    answer=SPAM,
)
def show_spam(call: Call) -> dict[str, Any]:
    """The junk threshold and "move spam to Junk": the mailbox's own values, the defaults
    of its domain and of the site, and the effective ones."""
    services = call.services
    return spam.mailbox_spam(services.store, services.settings, call.owner.address).to_json()


@API.operation(
    "PUT",
    "/api/v1/account/spam",
    summary="Set the owner's spam settings",
    tag="account",
    stages=FULL,
    body={**LEVEL, "description": "Both values; null takes the default one level up."},
    answer=SPAM,
    errors=(InvalidValue,),
)
def save_spam(call: Call) -> dict[str, Any]:
    """Set the mailbox's own junk threshold and "move spam to Junk" (null: the default).

    They count from the next message delivered. A threshold at or above the reject
    score is refused (such mail never arrives).
    """
    services = call.services
    saved, _ = spam.set_own(
        services.store,
        services.settings,
        call.owner.address,
        threshold=call.body["threshold"],
        to_junk=call.body["to_junk"],
        actor=call.actor,
    )
    return saved.to_json()
