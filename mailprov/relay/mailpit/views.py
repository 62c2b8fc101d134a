"""What Mailpit's API returns, built from a stored message: summaries, messages, headers, parts.

Field names and shapes follow Mailpit's OpenAPI (``MessageSummary``, ``Message``,
``Attachment``, ``Address``), including what its clients require beyond it
(``mailpit-api-client`` 1.0 wants ``Read`` in a message). Part ids are MIME
section numbers (``1``, ``2.1``), as Mailpit's ``PartID``.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from mailprov.relay.mailpit.search import Row, tags_of
from mailprov.relay.mime import Part, html_to_text, parse, payload
from mailprov.relay.storage.mailbox import header_value, parse_headers

SNIPPET_CHARS = 250
_BLANKS = re.compile(r"\s+")
_LINK = re.compile(r"<([^>]+)>")
_PLAIN_ENCODINGS = ("", "7bit", "8bit", "binary")


def created(ts: float) -> str:
    """Received time the way Mailpit writes it (RFC 3339, UTC, milliseconds)."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def address(name: str, addr: str) -> dict[str, str]:
    """Mailpit's ``Address``."""
    return {"Name": name, "Address": addr}


def addresses(pairs: list[tuple[str, str]], name: str) -> list[dict[str, str]]:
    """The addresses of header ``name`` (display names decoded)."""
    values = [v for k, v in pairs if k.lower() == name.lower()]
    if not values:
        return []
    text = header_value([(name, ", ".join(values))], name)
    return [address(n, a) for n, a in getaddresses([text]) if a]


def canonical(name: str) -> str:
    """A header name as Go's ``textproto.CanonicalMIMEHeaderKey`` writes it (Mailpit's keys)."""
    if any(c.isspace() for c in name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def headers_json(raw: bytes) -> dict[str, list[str]]:
    """Every header, canonical names in alphabetical order, values unfolded as received."""
    _, pairs = parse_headers(raw)
    found: dict[str, list[str]] = {}
    for name, value in pairs:
        found.setdefault(canonical(name), []).append(value)
    return dict(sorted(found.items()))


def _date(pairs: list[tuple[str, str]], received: float) -> str:
    raw = header_value(pairs, "Date")
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return created(received)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def _people(row: Row, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """From, To, Cc, Bcc (envelope recipients named in neither To nor Cc) and Reply-To."""
    to, cc = addresses(pairs, "To"), addresses(pairs, "Cc")
    named = {a["Address"].lower() for a in (*to, *cc)}
    sender = addresses(pairs, "From")
    return {
        "From": sender[0] if sender else address("", row.summary.sender),
        "To": to,
        "Cc": cc,
        "Bcc": [address("", r) for r in row.summary.recipients if r.lower() not in named],
        "ReplyTo": addresses(pairs, "Reply-To"),
    }


def attachment_json(leaf: Part) -> dict[str, Any]:
    """Mailpit's ``Attachment``."""
    data = payload(leaf.part)
    return {
        "PartID": leaf.part_id,
        "FileName": leaf.part.get_filename() or "",
        "ContentType": leaf.part.get_content_type(),
        "ContentID": (leaf.part.get("Content-ID") or "").strip().strip("<>"),
        "Size": len(data),
        "Checksums": {
            "MD5": hashlib.md5(data).hexdigest(),  # noqa: S324 (a checksum Mailpit reports, not security)
            "SHA1": hashlib.sha1(data).hexdigest(),  # noqa: S324 (as above)
            "SHA256": hashlib.sha256(data).hexdigest(),
        },
    }


def _unsubscribe(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    header = header_value(pairs, "List-Unsubscribe")
    return {
        "Header": header,
        "HeaderPost": header_value(pairs, "List-Unsubscribe-Post"),
        "Links": _LINK.findall(header),
        "Errors": "",
    }


def summary_json(row: Row, raw: bytes, *, read: bool) -> dict[str, Any]:
    """Mailpit's ``MessageSummary`` (one entry of a list or search)."""
    _, pairs = parse_headers(raw)
    single = "multipart/" not in header_value(pairs, "Content-Type").lower()
    plain = header_value(pairs, "Content-Transfer-Encoding").lower() in _PLAIN_ENCODINGS
    if single and plain:  # the cheap path: no MIME parsing for a list entry
        attachments = 0
        body = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[-1].decode("utf-8", "replace")
        if "html" in header_value(pairs, "Content-Type").lower():
            body = html_to_text(body)
    else:
        parsed = parse(raw)
        attachments = len(parsed.attachments)
        body = parsed.text
    return {
        "ID": row.summary.id,
        "MessageID": row.summary.message_id.strip("<>"),
        "Read": read,
        **_people(row, pairs),
        "Subject": row.summary.subject,
        "Created": created(row.summary.received_at),
        "Tags": tags_of(row.headers),
        "Size": row.summary.size,
        "Attachments": attachments,
        "Snippet": _BLANKS.sub(" ", body).strip()[:SNIPPET_CHARS],
        "Username": row.summary.auth_user or "",
    }


def message_json(row: Row, raw: bytes) -> dict[str, Any]:
    """Mailpit's ``Message`` (plus ``Read``, which mailpit-api-client 1.0 requires)."""
    _, pairs = parse_headers(raw)
    parsed = parse(raw)
    return {
        "ID": row.summary.id,
        "MessageID": row.summary.message_id.strip("<>"),
        "Read": True,
        **_people(row, pairs),
        "ReturnPath": row.summary.sender,
        "Subject": row.summary.subject,
        "ListUnsubscribe": _unsubscribe(pairs),
        "Date": _date(pairs, row.summary.received_at),
        "Tags": tags_of(row.headers),
        "Username": row.summary.auth_user or "",
        "Text": parsed.text,
        "HTML": parsed.html,
        "Size": row.summary.size,
        "Inline": [attachment_json(p) for p in parsed.inline],
        "Attachments": [attachment_json(p) for p in parsed.attachments],
    }


def body_kinds(raw: bytes) -> set[str]:
    """Which of ``attachment`` and ``inline`` a message has (for ``has:`` searches)."""
    parsed = parse(raw)
    return {k for k, v in (("attachment", parsed.attachments), ("inline", parsed.inline)) if v}
