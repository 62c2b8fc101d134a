"""A captured message as a test reads it: envelope, bodies, links, attachments, a one-time code.

What ``mail_relay.messages()`` and ``wait_for()`` return (re-exported by
:mod:`mailprov.testing`). Standard library only, and parsed lazily: a test that
only checks the subject never parses the MIME tree.
"""

from __future__ import annotations

import email.message
import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from mailprov.relay import mime

if TYPE_CHECKING:
    from mailprov.relay.storage import StoredMessage

#: The code ``code()`` looks for unless told: six digits standing alone.
CODE_PATTERN = r"\b\d{6}\b"


@dataclass(frozen=True)
class Attachment:
    """One attachment: its file name, content type and decoded bytes."""

    filename: str
    content_type: str
    data: bytes
    part_id: str

    @property
    def size(self) -> int:
        """Its size in bytes (decoded)."""
        return len(self.data)

    @property
    def text(self) -> str:
        """Its bytes as UTF-8 text (undecodable bytes replaced)."""
        return self.data.decode("utf-8", "replace")


@dataclass
class CapturedMessage:
    """A message the relay stored: envelope, summary and the parsed message."""

    summary: StoredMessage
    raw: bytes

    @property
    def id(self) -> str:
        """The relay's id for it."""
        return self.summary.id

    @property
    def sender(self) -> str:
        """The envelope sender (MAIL FROM)."""
        return self.summary.sender

    @property
    def recipients(self) -> tuple[str, ...]:
        """The envelope recipients (RCPT TO)."""
        return self.summary.recipients

    @property
    def subject(self) -> str:
        """The decoded Subject header."""
        return self.summary.subject

    @property
    def message(self) -> email.message.EmailMessage:
        """The message parsed with the modern email policy."""
        from email import policy  # noqa: PLC0415  (stdlib; only this property needs it)
        from email.parser import BytesParser  # noqa: PLC0415  (as above)

        parsed: Any = BytesParser(policy=policy.default).parsebytes(self.raw)
        return parsed  # type: ignore[no-any-return]

    @cached_property
    def _parsed(self) -> mime.Parsed:
        return mime.parse(self.raw)

    @property
    def text(self) -> str:
        """The plain-text body (the first text/plain part), or ''."""
        part = self.message.get_body(preferencelist=("plain",))
        return str(part.get_content()) if part is not None else ""

    @property
    def html(self) -> str:
        """The HTML body (the first text/html part), or ''."""
        return self._parsed.html

    @property
    def links(self) -> list[str]:
        """Links a reader could follow: the HTML's ``<a href>`` targets, then URLs in the text."""
        return mime.links(self.text, self.html)

    @property
    def attachments(self) -> list[Attachment]:
        """The attachments (not inline images), in message order."""
        return [
            Attachment(
                leaf.part.get_filename() or "",
                leaf.part.get_content_type(),
                mime.payload(leaf.part),
                leaf.part_id,
            )
            for leaf in self._parsed.attachments
        ]

    def code(self, pattern: str = CODE_PATTERN) -> str:
        """The first match of ``pattern`` in the text (or the HTML's text, then the subject).

        A pattern with a group returns the group: ``code(r"code: (\\w+)")``.

        Raises:
            AssertionError: nothing matches (the test fails saying what was searched).
        """
        regex = re.compile(pattern)
        for where in (self.text, mime.html_to_text(self.html), self.subject):
            found = regex.search(where)
            if found:
                return found.group(1) if regex.groups else found.group(0)
        msg = f"no code matching {pattern!r} in message {self.id} (subject {self.subject!r})"
        raise AssertionError(msg)
