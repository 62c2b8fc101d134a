"""The OpenAPI 3.1 document of the Mailpit-compatible subset (``/mailpit/api/v1/openapi.json``).

Shapes are Mailpit's (its own document is Swagger 2.0 at
``server/ui/api/v1/swagger.json`` in axllent/mailpit); only what is served
here is described, each operation saying where it differs from Mailpit.
"""

from __future__ import annotations

from typing import Any

from mailprov import __version__
from mailprov.relay.mailpit.search import MAPPING_DOC

_ID = {
    "name": "ID",
    "in": "path",
    "required": True,
    "description": "Message id, or 'latest' for the newest message.",
    "schema": {"type": "string"},
}
_PAGE = [
    {
        "name": "start",
        "in": "query",
        "description": "Offset (default 0).",
        "schema": {"type": "integer"},
    },
    {
        "name": "limit",
        "in": "query",
        "description": "At most (1-10000, default 50).",
        "schema": {"type": "integer"},
    },
]
_QUERY = {
    "name": "query",
    "in": "query",
    "required": True,
    "description": "A Mailpit search, e.g. 'to:ann@example.test subject:\"Your code\"'.",
    "schema": {"type": "string"},
}
_TZ = {
    "name": "tz",
    "in": "query",
    "description": "Time zone of before:/after: dates.",
    "schema": {"type": "string"},
}
_IDS_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"IDs": {"type": "array", "items": {"type": "string"}}},
            }
        },
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "properties": {"ids": {"type": "array", "items": {"type": "string"}}},
            }
        },
    }
}


def _ok(description: str, kind: str = "text/plain", schema: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if schema:
        content["schema"] = {"$ref": f"#/components/schemas/{schema}"}
    return {"200": {"description": description, "content": {kind: content}}}


def _get(
    summary: str, responses: dict[str, Any], params: list[Any] | None = None
) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": params or [], "responses": responses}}


def _address() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"Name": {"type": "string"}, "Address": {"type": "string"}},
    }


def document() -> dict[str, Any]:
    """The whole document."""
    list_ok = _ok("Messages, newest first", "application/json", "MessagesSummary")
    addresses = {"type": "array", "items": {"$ref": "#/components/schemas/Address"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mailprov relay: Mailpit-compatible API",
            "version": __version__,
            "description": (
                "The subset of Mailpit's API (v1) that Mailpit's clients call, served by "
                "mailprov's relay under the base URL /mailpit on its API listener. Same gate "
                "as the relay's own API (Host, Origin, optional token: 'Authorization: Bearer "
                "TOKEN', or Basic with the token as password); writes other than DELETE and "
                "PUT need 'Content-Type: application/json'. Paths not listed answer 404 "
                f"with a pointer to {MAPPING_DOC}."
            ),
        },
        "servers": [{"url": "/mailpit"}],
        "paths": {
            "/api/v1/info": _get("Counts and runtime figures", _ok("Info", "application/json")),
            "/api/v1/webui": _get(
                "Web UI settings (chaos, relay and SpamAssassin: off)",
                _ok("Settings", "application/json"),
            ),
            "/api/v1/messages": {
                **_get("List messages, newest first", list_ok, _PAGE),
                "put": {
                    "summary": "Set the read flag (kept in memory) of IDs, a Search, or all",
                    "parameters": [_TZ],
                    "requestBody": {
                        "content": {"application/json": {"schema": {"type": "object"}}}
                    },
                    "responses": _ok("ok"),
                },
                "delete": {
                    "summary": "Delete the IDs given (JSON IDs or form ids); none given: all",
                    "requestBody": _IDS_BODY,
                    "responses": _ok("ok"),
                },
            },
            "/api/v1/search": {
                **_get(
                    "Search (Mailpit's search language; see the mapping)",
                    list_ok,
                    [_QUERY, *_PAGE, _TZ],
                ),
                "delete": {
                    "summary": "Delete every match",
                    "parameters": [_QUERY, _TZ],
                    "responses": _ok("ok"),
                },
            },
            "/api/v1/message/{ID}": _get(
                "One message: addresses, Text, HTML, attachments (marks it read)",
                _ok("Message", "application/json", "Message"),
                [_ID],
            ),
            "/api/v1/message/{ID}/headers": _get(
                "Headers: canonical names, alphabetical, each a list of values",
                _ok("Headers", "application/json"),
                [_ID],
            ),
            "/api/v1/message/{ID}/raw": _get("The message as received", _ok("Source"), [_ID]),
            "/api/v1/message/{ID}/part/{PartID}": _get(
                "One MIME part (attachment or inline), decoded, with its Content-Type",
                _ok("Part", "application/octet-stream"),
                [
                    _ID,
                    {
                        "name": "PartID",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                ],
            ),
            "/api/v1/send": {
                "post": {
                    "summary": "Store a message built from JSON (capture mode; no SMTP, no faults)",
                    "requestBody": {
                        "content": {"application/json": {"schema": {"type": "object"}}}
                    },
                    "responses": _ok("Stored", "application/json"),
                }
            },
            "/view/{ID}.html": _get(
                "The HTML part as a document (sandboxed by Content-Security-Policy)",
                _ok("HTML", "text/html"),
                [_ID],
            ),
            "/view/{ID}.txt": _get("The text part", _ok("Text"), [_ID]),
            "/api/v1/openapi.json": _get("This document", _ok("OpenAPI", "application/json")),
        },
        "components": {
            "schemas": {
                "Address": _address(),
                "Attachment": {
                    "type": "object",
                    "properties": {
                        k: {"type": t}
                        for k, t in (
                            ("PartID", "string"),
                            ("FileName", "string"),
                            ("ContentType", "string"),
                            ("ContentID", "string"),
                            ("Size", "integer"),
                            ("Checksums", "object"),
                        )
                    },
                },
                "MessageSummary": {
                    "type": "object",
                    "properties": {
                        "ID": {"type": "string"},
                        "MessageID": {"type": "string"},
                        "Read": {"type": "boolean"},
                        "From": {"$ref": "#/components/schemas/Address"},
                        "To": addresses,
                        "Cc": addresses,
                        "Bcc": addresses,
                        "ReplyTo": addresses,
                        "Subject": {"type": "string"},
                        "Created": {"type": "string", "format": "date-time"},
                        "Tags": {"type": "array", "items": {"type": "string"}},
                        "Size": {"type": "integer"},
                        "Attachments": {"type": "integer"},
                        "Snippet": {"type": "string"},
                        "Username": {"type": "string"},
                    },
                },
                "MessagesSummary": {
                    "type": "object",
                    "properties": {
                        "total": {"type": "integer"},
                        "unread": {"type": "integer"},
                        "count": {"type": "integer"},
                        "messages_count": {"type": "integer"},
                        "messages_unread": {"type": "integer"},
                        "start": {"type": "integer"},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "messages": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/MessageSummary"},
                        },
                    },
                },
                "Message": {
                    "type": "object",
                    "properties": {
                        "ID": {"type": "string"},
                        "MessageID": {"type": "string"},
                        "From": {"$ref": "#/components/schemas/Address"},
                        "To": addresses,
                        "Cc": addresses,
                        "Bcc": addresses,
                        "ReplyTo": addresses,
                        "ReturnPath": {"type": "string"},
                        "Subject": {"type": "string"},
                        "Date": {"type": "string", "format": "date-time"},
                        "Text": {"type": "string"},
                        "HTML": {"type": "string"},
                        "Size": {"type": "integer"},
                        "Inline": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Attachment"},
                        },
                        "Attachments": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Attachment"},
                        },
                    },
                },
            }
        },
    }
