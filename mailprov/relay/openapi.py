"""The OpenAPI 3.1 document of the relay's HTTP API (served at ``/api/v1/openapi.json``)."""

from __future__ import annotations

from typing import Any

from mailprov import __version__


def _param(
    name: str, description: str, schema: str = "string", where: str = "query"
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": {"type": schema},
    }


SEARCH = [
    _param("mailbox", "Mailbox: an envelope recipient or AUTH user (exact, no case)."),
    _param("to", "Same as mailbox."),
    _param("from", "Envelope sender contains this (no case)."),
    _param("subject", "Subject contains this (no case)."),
    _param("user", "AUTH user (exact, no case)."),
    _param("since", "Received at or after: Unix seconds or ISO 8601."),
    _param("until", "Received at or before: Unix seconds or ISO 8601."),
    _param("header", "NAME:VALUE, header NAME contains VALUE (no case)."),
    _param("limit", "At most this many (1-10000, default 100).", "integer"),
    _param("after", "Only messages with seq greater than this.", "integer"),
]
BEFORE = _param(
    "before",
    "Paging: only messages with seq below this (the previous page's next_before).",
    "integer",
)
ERROR = {
    "description": "Bad parameters",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
ID = _param("id", "Message id.", where="path")
EXAMPLE_RULE = "rcpt:bounce-*@example.test=550 5.1.1 no such user"


def _json(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


REFUSED = {
    "400": {**ERROR, "description": "Bad parameters (the message names the parameter)"},
    "401": {
        **ERROR,
        "description": "relay.api_token_file is set and the bearer token is missing or wrong",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "403": {**ERROR, "description": "An Origin header that is not an allowed host"},
    "421": {**ERROR, "description": "A Host header this API does not answer for"},
}
UNSUPPORTED = {**ERROR, "description": "A write without 'Content-Type: application/json'"}


def document() -> dict[str, Any]:
    """The whole document, every operation listing the gate's refusals (relay/gate.py)."""
    doc = _document()
    for item in doc["paths"].values():
        for method, operation in item.items():
            operation["responses"] = {**REFUSED, **operation["responses"]}
            if method in {"post", "put", "patch", "delete"}:
                operation["responses"]["415"] = UNSUPPORTED
    return doc


def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mailprov relay API",
            "version": __version__,
            "description": (
                "Read what the local relay captured, wait for mail, set fault rules. "
                "Only Host headers naming the API are answered; writes need "
                "'Content-Type: application/json'; with relay.api_token_file set, "
                "every request needs 'Authorization: Bearer TOKEN'. Mailpit's clients use "
                "the Mailpit-compatible API under /mailpit, described at "
                "/mailpit/api/v1/openapi.json."
            ),
        },
        "security": [{}, {"bearer": []}],
        "paths": {
            "/api/v1/health": {
                "get": {
                    "summary": "Mode, listeners and counters",
                    "responses": {"200": {"description": "Running"}},
                }
            },
            "/api/v1/mailboxes": {
                "get": {
                    "summary": "Every mailbox with its message count",
                    "responses": {"200": {"description": "Mailboxes"}},
                }
            },
            "/api/v1/messages": {
                "get": {
                    "summary": "List or search messages, newest first, a page at a time",
                    "parameters": [*SEARCH, BEFORE],
                    "responses": {"200": _json("Messages", "MessageList"), "400": ERROR},
                },
                "delete": {
                    "summary": "Purge all messages, or one mailbox's",
                    "parameters": [SEARCH[0]],
                    "responses": {"200": {"description": "How many were deleted"}},
                },
            },
            "/api/v1/messages/{id}": {
                "get": {
                    "summary": "One message: summary, headers and MIME parts",
                    "parameters": [ID],
                    "responses": {"200": _json("Message", "Message"), "404": ERROR},
                },
                "delete": {
                    "summary": "Delete one message",
                    "parameters": [ID],
                    "responses": {"200": {"description": "Deleted"}, "404": ERROR},
                },
            },
            "/api/v1/messages/{id}/raw": {
                "get": {
                    "summary": "The message as received",
                    "parameters": [ID],
                    "responses": {
                        "200": {"description": "Raw message", "content": {"message/rfc822": {}}},
                        "404": ERROR,
                    },
                }
            },
            "/api/v1/wait": {
                "get": {
                    "summary": "Long-poll: the oldest matching message, as soon as it exists",
                    "parameters": [
                        *SEARCH[:-2],
                        SEARCH[-1],
                        _param("timeout", "Seconds to wait (0-300, default 10).", "number"),
                    ],
                    "responses": {
                        "200": _json("Message", "Message"),
                        "400": ERROR,
                        "408": {"description": "Nothing matched in time"},
                    },
                }
            },
            "/api/v1/faults": {
                "get": {
                    "summary": "Active fault rules and how often each fired",
                    "responses": {"200": {"description": "Rules"}},
                },
                "post": {
                    "summary": "Add a fault rule",
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["rule"],
                                    "properties": {
                                        "rule": {
                                            "type": "string",
                                            "example": EXAMPLE_RULE,
                                        }
                                    },
                                }
                            }
                        }
                    },
                    "responses": {"201": {"description": "Added"}, "400": ERROR},
                },
                "delete": {
                    "summary": "Remove every fault rule (optionally reseed)",
                    "parameters": [_param("seed", "New random seed.", "integer")],
                    "responses": {"200": {"description": "Removed"}},
                },
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The token in relay.api_token_file (needed when it is set).",
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                },
                "MessageSummary": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "seq": {"type": "integer"},
                        "received_at": {"type": "string"},
                        "from": {"type": "string"},
                        "to": {"type": "array", "items": {"type": "string"}},
                        "auth_user": {"type": ["string", "null"]},
                        "subject": {"type": "string"},
                        "message_id": {"type": "string"},
                        "size": {"type": "integer"},
                    },
                },
                "MessageList": {
                    "type": "object",
                    "properties": {
                        "messages": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/MessageSummary"},
                        },
                        "count": {"type": "integer", "description": "Messages on this page."},
                        "total": {
                            "type": "integer",
                            "description": "Messages matching on all pages (at least, if inexact).",
                        },
                        "total_exact": {
                            "type": "boolean",
                            "description": "False when counting stopped (at 1000 for searches).",
                        },
                        "next_before": {
                            "type": ["integer", "null"],
                            "description": "'before' of the next (older) page; null on the last.",
                        },
                        "next_after": {"type": ["integer", "null"]},
                    },
                },
                "Message": {
                    "allOf": [
                        {"$ref": "#/components/schemas/MessageSummary"},
                        {
                            "type": "object",
                            "properties": {
                                "headers": {"type": "array", "items": {"type": "array"}},
                                "parts": {"type": "array", "items": {"type": "object"}},
                            },
                        },
                    ]
                },
            },
        },
    }
