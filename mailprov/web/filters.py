"""Operations: the owner's filters — forwarding, vacation reply, rules — as forms that
compile to Sieve, or a Sieve script of the owner's own.

Whatever is saved becomes the active script ``mailprov`` in the mailbox's script
storage, the same storage ManageSieve (port 4190) edits; Pigeonhole runs it at
delivery. Nothing is changed unless Pigeonhole's compiler accepts the script.
"""

from __future__ import annotations

from typing import Any

from mailprov.errors import FiltersInvalid, FiltersNotInstalled, SieveInvalid, SieveTooLarge
from mailprov.rules import sieve as rules
from mailprov.services import filters
from mailprov.web.api import API, FULL, Call

#: One line of text: no control characters (they never occur in a header or a folder name).
LINE = {
    "type": "string",
    "minLength": 1,
    "maxLength": rules.MAX_TEXT,
    "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]+$",
}
DATE = {
    "type": ["string", "null"],
    "format": "date",
    "description": "YYYY-MM-DD (the mail server's day), or null",
}

FORWARDING = {
    "type": ["object", "null"],
    "description": "Send every message on to these addresses (null: no forwarding).",
    "required": ["to"],
    "additionalProperties": False,
    "properties": {
        "to": {
            "type": "array",
            "minItems": 1,
            "maxItems": 32,
            "items": {"type": "string", "minLength": 3, "maxLength": 254},
            "description": "At most [dovecot] sieve_max_redirects addresses.",
        },
        "keep": {
            "type": "boolean",
            "default": True,
            "description": "Keep a copy in this mailbox too.",
        },
    },
}
VACATION = {
    "type": ["object", "null"],
    "description": "An automatic reply (null: none). Sent at most once per sender every "
    "'days' days, never to lists or automatic mail.",
    "required": ["subject", "body"],
    "additionalProperties": False,
    "properties": {
        "subject": LINE,
        "body": {"type": "string", "minLength": 1, "maxLength": rules.MAX_BODY},
        "days": {
            "type": "integer",
            "minimum": rules.MIN_DAYS,
            "maximum": rules.MAX_DAYS,
            "default": 7,
        },
        "start": DATE,
        "end": DATE,
    },
}
RULE = {
    "type": "object",
    "required": ["field", "contains", "action"],
    "additionalProperties": False,
    "properties": {
        "field": {"enum": list(rules.FIELDS)},
        "contains": LINE,
        "action": {
            "enum": list(rules.ACTIONS),
            "description": "move: into 'folder' (made if missing); discard: drop silently; "
            "mark-read: keep in the inbox, marked read.",
        },
        "folder": {**LINE, "description": "For 'move': levels separated by '/'."},
        "mark_read": {"type": "boolean", "description": "For 'move': also mark it read."},
    },
}
FORMS_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "forwarding": FORWARDING,
        "vacation": VACATION,
        "rules": {
            "type": "array",
            "maxItems": rules.MAX_RULES,
            "items": RULE,
            "description": "Discard rules come first; then forwarding, the vacation reply, "
            "and the other rules in this order (the first that matches wins).",
        },
    },
}

FILTERS = API.schema(
    "Filters",
    {
        "type": "object",
        "required": [
            "kind",
            "forwarding",
            "vacation",
            "rules",
            "script",
            "updated_at",
            "active_script",
            "script_name",
        ],
        "properties": {
            "kind": {
                "enum": [filters.FORMS, filters.SCRIPT],
                "description": "What was saved last: the forms, or a script of your own.",
            },
            "forwarding": FORWARDING,
            "vacation": VACATION,
            "rules": {"type": "array", "items": RULE},
            "script": {"type": "string", "description": "The Sieve script mailprov installed."},
            "updated_at": {"type": ["integer", "null"], "description": "Unix seconds."},
            "script_name": {"type": "string", "description": "Its name in ManageSieve."},
            "active_script": {
                "type": ["string", "null"],
                "description": "The script the mail server runs (another name: one you "
                "activated in a mail client; saving here makes 'script_name' active again).",
            },
        },
    },
)

ERRORS = (SieveInvalid, SieveTooLarge, FiltersNotInstalled)


@API.operation(
    "GET", "/api/v1/filters", summary="The owner's filters", tag="filters", answer=FILTERS
)
def show_filters(call: Call) -> dict[str, Any]:
    """The saved forms (or script) and which script the mail server runs."""
    services = call.services
    return filters.get(services.store, services.settings, call.owner.address).to_json()


@API.operation(
    "PUT",
    "/api/v1/filters",
    summary="Set forwarding, the vacation reply and rules",
    tag="filters",
    stages=FULL,
    body=FORMS_BODY,
    answer=FILTERS,
    errors=(*ERRORS, FiltersInvalid),
)
def save_filters(call: Call) -> dict[str, Any]:
    """Replace the owner's filters with these forms.

    They are compiled to Sieve, checked by Pigeonhole's compiler and installed as the
    active script; a change of forwarding is told to the verified recovery contacts.
    """
    services = call.services
    saved = filters.save_forms(
        services.store, services.settings, call.owner.address, call.body, now=call.now
    )
    return saved.to_json()


@API.operation(
    "PUT",
    "/api/v1/filters/script",
    summary="Install a Sieve script of your own instead of the forms",
    tag="filters",
    stages=FULL,
    body={
        "type": "object",
        "required": ["script"],
        "additionalProperties": False,
        "properties": {
            "script": {
                "type": "string",
                "minLength": 1,
                "maxLength": 200_000,
                "description": "RFC 5228 Sieve; at most [dovecot] sieve_max_script_size bytes.",
            }
        },
    },
    answer=FILTERS,
    errors=ERRORS,
)
def save_filter_script(call: Call) -> dict[str, Any]:
    """Check a Sieve script with Pigeonhole's compiler and install it as the active script.

    A refused script answers 422 with Pigeonhole's complaints in 'problems'; nothing changes.
    """
    services = call.services
    saved = filters.save_script(
        services.store, services.settings, call.owner.address, call.body["script"], now=call.now
    )
    return saved.to_json()
