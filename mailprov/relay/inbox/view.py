"""What the inbox shows of one message, from its bytes alone (pure: no I/O, no HTML output).

Bodies, attachments and links are read the one way the relay reads them
(:mod:`mailprov.relay.mime`, which the Mailpit-compatible API and the fixture
use too); part ids are its MIME section numbers (``2``, ``2.1``). What this
module adds is what a page of captured mail needs, since nothing in it can be
trusted:

- text is made printable: bytes that are not UTF-8 (8-bit headers, a wrong
  charset) become U+FFFD instead of lone surrogates that could not be encoded
  later; the page escapes everything (Jinja2 autoescape);
- the email parser's complaints (broken MIME) are kept as ``defects`` and
  shown; if the parser itself fails, the page still shows the raw source;
- big messages are cut for the page (``TEXT_MAX``, ``RAW_MAX``); the whole
  message stays downloadable;
- only ``http``, ``https`` and ``mailto`` links are marked safe to click
  (``javascript:`` and ``data:`` stay text);
- ``cid:`` references in the HTML part become ``data:`` URIs of the image
  part they name, so inline images show without any request.

The HTML part itself is never shown in the inbox's own page: it is served on
its own (see :mod:`mailprov.relay.inbox.security`) into a sandboxed iframe.
"""

from __future__ import annotations

import base64
import contextlib
import re
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from typing import Any

from mailprov.relay import mime

#: Characters of the text part and of the raw source put on the page.
TEXT_MAX = 512 * 1024
RAW_MAX = 256 * 1024
#: Links listed at most.
LINKS_MAX = 200
#: Inline (``cid:``) images bigger than this stay broken rather than bloat the HTML part.
INLINE_IMAGE_MAX = 5 * 1024 * 1024
SAFE_SCHEMES = ("http://", "https://", "mailto:")
PART_ID = re.compile(r"[1-9][0-9]{0,3}(\.[1-9][0-9]{0,3}){0,15}")
_CID = re.compile(r"""cid:([^\s"'<>)]+)""", re.IGNORECASE)


def printable(text: str) -> str:
    """``text`` with lone surrogates (undecodable bytes) turned into U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        return text
    try:  # bytes the parser kept as surrogate escapes: decode them, replacing what is not UTF-8
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def size(n: int) -> str:
    """A byte count for people: 512 B, 3.4 KB, 12.0 MB."""
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


@dataclass(frozen=True)
class Attachment:
    """A part the page offers for download (attachments, then inline parts)."""

    part_id: str
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class Link:
    """A link found in the message; ``safe``: it may be clickable."""

    url: str
    safe: bool


@dataclass
class MessageView:
    """Everything the message page shows."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    text: str = ""
    text_cut: bool = False
    has_html: bool = False
    attachments: list[Attachment] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    raw: str = ""
    raw_cut: bool = False
    defects: list[str] = field(default_factory=list)


def _header_value(value: Any) -> str:
    with contextlib.suppress(Exception):
        return printable(str(value))
    return "(undecodable)"


def build(raw: bytes) -> MessageView:
    """The view of a message; never raises for bad input (it shows what it can)."""
    view = MessageView()
    view.raw = raw[:RAW_MAX].decode("utf-8", "replace")
    view.raw_cut = len(raw) > RAW_MAX
    try:
        message: Any = BytesParser(policy=policy.default).parsebytes(raw)
        view.headers = [(printable(k), _header_value(v)) for k, v in message.items()]
        view.defects = [type(d).__name__ for part in message.walk() for d in part.defects]
        parsed = mime.parse(raw)
        text = printable(parsed.text)
        view.text, view.text_cut = text[:TEXT_MAX], len(text) > TEXT_MAX
        view.has_html = bool(parsed.html)
        for leaf in [*parsed.attachments, *parsed.inline]:
            view.attachments.append(
                Attachment(
                    part_id=leaf.part_id,
                    filename=printable(leaf.part.get_filename() or f"part-{leaf.part_id}"),
                    content_type=leaf.part.get_content_type(),
                    size=len(mime.payload(leaf.part)),
                )
            )
        urls = mime.links(parsed.text, parsed.html)[:LINKS_MAX]
        view.links = [Link(printable(u), _safe(u)) for u in urls]
    except Exception as exc:  # the raw source still shows
        view.defects.append(f"could not parse the message: {type(exc).__name__}")
    return view


def _safe(url: str) -> bool:
    return url.lower().startswith(SAFE_SCHEMES) and not any(c in url for c in "\r\n\t")


def html_part(raw: bytes) -> str:
    """The HTML part's text with its ``cid:`` images inlined as ``data:`` URIs ('' if none).

    Inline images become ``data:`` URIs rather than links to the relay: the
    sandboxed part has an opaque origin (its requests say ``Origin: null``,
    which the API's gate refuses), and this way it needs no request at all.
    """
    parsed = mime.parse(raw)
    if not parsed.html:
        return ""
    images: dict[str, str] = {}
    for leaf in [*parsed.inline, *parsed.attachments]:
        cid = str(leaf.part.get("Content-ID", "")).strip().strip("<>")
        if not cid or cid in images or leaf.part.get_content_maintype() != "image":
            continue
        data = mime.payload(leaf.part)
        if len(data) <= INLINE_IMAGE_MAX:
            encoded = base64.b64encode(data).decode("ascii")
            images[cid] = f"data:{leaf.part.get_content_type()};base64,{encoded}"
    html = printable(parsed.html)
    return _CID.sub(lambda m: images.get(m.group(1), m.group(0)), html)


def part_bytes(raw: bytes, part_id: str) -> tuple[bytes, str] | None:
    """(content, file name) of the part with MIME section ``part_id``, or None."""
    found = mime.find_part(raw, part_id)
    if found is None:
        return None
    return mime.payload(found), printable(found.get_filename() or f"part-{part_id}")
