"""Reading a MIME message the way mail clients show it: text and HTML bodies, attachments, links.

One home for this, used by the Mailpit-compatible API (:mod:`mailprov.relay.mailpit.views`)
and by the pytest plugin's ``CapturedMessage``. Part ids are IMAP-style section
numbers (``1``, ``2.1``), which are also Mailpit's ``PartID``. Standard library only.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from html.parser import HTMLParser
from typing import Any

_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]+>", re.IGNORECASE | re.DOTALL)
_BLANKS = re.compile(r"\s+")
_URL = re.compile(r"https?://[^\s<>\"')\]]+", re.IGNORECASE)


def html_to_text(markup: str) -> str:
    """A plain rendering of an HTML part (tags dropped, entities decoded, blanks collapsed)."""
    return _BLANKS.sub(" ", html_lib.unescape(_TAG.sub(" ", markup))).strip()


@dataclass(frozen=True)
class Part:
    """One leaf of the MIME tree and its section number."""

    part_id: str
    part: Message


def walk(msg: Message, prefix: str = "") -> Iterator[Part]:
    """Leaves of the MIME tree with IMAP-style section numbers (``1``, ``2.1``)."""
    if not msg.is_multipart():
        yield Part(prefix or "1", msg)
        return
    for number, child in enumerate(msg.get_payload(), 1):
        section = f"{prefix}.{number}" if prefix else str(number)
        if isinstance(child, Message):
            yield from walk(child, section)


@dataclass
class Parsed:
    """A parsed message: its text and HTML bodies and the other parts."""

    text: str
    html: str
    attachments: list[Part]
    inline: list[Part]


def parse(raw: bytes) -> Parsed:
    """Bodies and parts the way Mailpit separates them."""
    msg: Any = BytesParser(policy=policy.default).parsebytes(raw)
    plain = _body(msg, "plain")
    markup = _body(msg, "html")
    attachments: list[Part] = []
    inline: list[Part] = []
    for leaf in walk(msg):
        if leaf.part is plain or leaf.part is markup:
            continue
        disposition = leaf.part.get_content_disposition()
        if (
            disposition != "attachment"
            and leaf.part.get("Content-ID")
            and not leaf.part.get_filename()
        ) or (disposition == "inline" and leaf.part.get("Content-ID")):
            inline.append(leaf)
        elif (
            disposition == "attachment"
            or leaf.part.get_filename()
            or leaf.part.get_content_maintype() != "text"
        ):
            attachments.append(leaf)
    text = _content(plain) if plain is not None else ""
    html = _content(markup) if markup is not None else ""
    return Parsed(text or html_to_text(html), html, attachments, inline)


def _body(msg: EmailMessage, kind: str) -> Message | None:
    try:
        return msg.get_body(preferencelist=(kind,))
    except (KeyError, TypeError, ValueError):
        return None


def _content(part: Message) -> str:
    try:
        return str(part.get_content())  # type: ignore[attr-defined]
    except (LookupError, ValueError, AssertionError):
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def payload(part: Message) -> bytes:
    """A part's decoded bytes."""
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def find_part(raw: bytes, part_id: str) -> Message | None:
    """The leaf with this section number, or None."""
    msg: Any = BytesParser(policy=policy.default).parsebytes(raw)
    return next((leaf.part for leaf in walk(msg) if leaf.part_id == part_id), None)


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(v.strip() for k, v in attrs if k == "href" and v and v.strip())


def links(text: str, markup: str) -> list[str]:
    """Links a reader could follow: the HTML's ``<a href>`` targets, then URLs in the text."""
    anchors = _Anchors()
    anchors.feed(markup)
    anchors.close()
    found = [*anchors.hrefs, *(u.rstrip(".,;:!?") for u in _URL.findall(text))]
    return list(dict.fromkeys(found))
