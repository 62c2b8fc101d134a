"""What the inbox shows of one message, from its bytes alone (pure: no I/O, no HTML output).

Captured mail is whatever a test rig (or an attacker) sent, so nothing here
trusts it:

- text is made printable: bytes that are not UTF-8 (8-bit headers, a wrong
  charset) become U+FFFD instead of lone surrogates that could not be encoded
  later; the page escapes everything (Jinja2 autoescape);
- the email parser's complaints (broken MIME) are kept as ``defects`` and
  shown; if the parser itself fails, the page still shows the raw source;
- big messages are cut for the page (``TEXT_MAX``, ``RAW_MAX``); the whole
  message stays downloadable;
- links are listed with their targets; only ``http``, ``https`` and ``mailto``
  ones become clickable (``javascript:`` and ``data:`` stay text);
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
from email.message import EmailMessage, Message
from email.parser import BytesParser
from html.parser import HTMLParser
from typing import Any

from mailprov.relay.storage.search import part_text

#: Characters of the text part and of the raw source put on the page.
TEXT_MAX = 512 * 1024
RAW_MAX = 256 * 1024
#: Inline (``cid:``) images bigger than this stay broken rather than bloat the HTML part.
INLINE_IMAGE_MAX = 5 * 1024 * 1024
#: Links listed at most.
LINKS_MAX = 200
SAFE_SCHEMES = ("http://", "https://", "mailto:")
_URL = re.compile(r"""https?://[^\s<>"'()\[\]{}]+""", re.IGNORECASE)
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


@dataclass(frozen=True)
class Attachment:
    """A part the page offers for download."""

    index: int
    filename: str
    content_type: str
    size: int
    content_id: str = ""


@dataclass(frozen=True)
class Link:
    """A link found in the message; ``safe``: it may be clickable."""

    url: str
    text: str
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


def size(n: int) -> str:
    """A byte count for people: 512 B, 3.4 KB, 12.0 MB."""
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def parse(raw: bytes) -> EmailMessage:
    """The message, parsed leniently (the modern policy)."""
    parsed: Any = BytesParser(policy=policy.default).parsebytes(raw)
    return parsed  # type: ignore[no-any-return]


def _content(part: Message) -> str:
    """A text part's content (see :func:`~mailprov.relay.storage.search.part_text`), printable."""
    return printable(part_text(part))


def _header_value(value: Any) -> str:
    with contextlib.suppress(Exception):
        return printable(str(value))
    return "(undecodable)"


def leaves(message: Message) -> list[tuple[int, Message]]:
    """The non-multipart parts with their walk() index (the index the API's ``parts`` use)."""
    return [(i, part) for i, part in enumerate(message.walk()) if not part.is_multipart()]


def _first(message: Message, subtype: str) -> Message | None:
    for _, part in leaves(message):
        disposition = (part.get_content_disposition() or "").lower()
        if part.get_content_type() == f"text/{subtype}" and disposition != "attachment":
            return part
    return None


def build(raw: bytes) -> MessageView:
    """The view of a message; never raises for bad input (it shows what it can)."""
    view = MessageView()
    view.raw = raw[:RAW_MAX].decode("utf-8", "replace")
    view.raw_cut = len(raw) > RAW_MAX
    try:
        message = parse(raw)
        view.headers = [(printable(k), _header_value(v)) for k, v in message.items()]
        view.defects = [printable(type(d).__name__) for d in message.defects]
        plain, html = _first(message, "plain"), _first(message, "html")
        if plain is not None:
            text = _content(plain)
            view.text, view.text_cut = text[:TEXT_MAX], len(text) > TEXT_MAX
        view.has_html = html is not None
        for index, part in leaves(message):
            view.defects += [printable(type(d).__name__) for d in part.defects]
            if part is plain or part is html:
                continue
            payload = part.get_payload(decode=True)
            view.attachments.append(
                Attachment(
                    index=index,
                    filename=printable(part.get_filename() or f"part-{index}"),
                    content_type=part.get_content_type(),
                    size=len(payload) if isinstance(payload, bytes) else 0,
                    content_id=printable(str(part.get("Content-ID", "")).strip("<> ")),
                )
            )
        view.links = find_links(
            _content(html) if html is not None else "", view.text if plain is not None else ""
        )
    except Exception as exc:  # the raw source still shows
        view.defects.append(f"could not parse the message: {type(exc).__name__}")
    return view


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = next((v or "" for k, v in attrs if k == "href"), None)
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.found.append((self._href.strip(), " ".join("".join(self._text).split())))
            self._href = None


def find_links(html: str, text: str) -> list[Link]:
    """Links of the HTML part (``<a href>``) and URLs in the text part, each once."""
    found: list[tuple[str, str]] = []
    if html:
        parser = _Anchors()
        with contextlib.suppress(Exception):
            parser.feed(html)
            parser.close()
        found += parser.found
    found += [(m.group(0).rstrip(".,;:!?"), "") for m in _URL.finditer(text)]
    links: list[Link] = []
    seen: set[str] = set()
    for url, label in found:
        if not url or url in seen:
            continue
        seen.add(url)
        safe = url.lower().startswith(SAFE_SCHEMES) and not any(c in url for c in "\r\n\t")
        links.append(Link(printable(url), printable(label[:200]), safe))
        if len(links) >= LINKS_MAX:
            break
    return links


def html_part(raw: bytes) -> str:
    """The HTML part's text with its ``cid:`` images inlined as ``data:`` URIs ('' if none).

    Inline images become ``data:`` URIs rather than links to the relay: the
    sandboxed part has an opaque origin (its requests say ``Origin: null``,
    which the API's gate refuses), and this way it needs no request at all.
    """
    message = parse(raw)
    part = _first(message, "html")
    if part is None:
        return ""
    images: dict[str, str] = {}
    for _, leaf in leaves(message):
        cid = str(leaf.get("Content-ID", "")).strip().strip("<>")
        if not cid or cid in images or leaf.get_content_maintype() != "image":
            continue
        payload = leaf.get_payload(decode=True)
        if isinstance(payload, bytes) and len(payload) <= INLINE_IMAGE_MAX:
            encoded = base64.b64encode(payload).decode("ascii")
            images[cid] = f"data:{leaf.get_content_type()};base64,{encoded}"
    return _CID.sub(lambda m: images.get(m.group(1), m.group(0)), _content(part))


def part_bytes(raw: bytes, index: int) -> tuple[bytes, str, str] | None:
    """(content, content type, file name) of the part with walk() index ``index``, or None."""
    for i, part in leaves(parse(raw)):
        if i == index:
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            name = printable(part.get_filename() or f"part-{index}")
            return data, part.get_content_type(), name
    return None
