"""What a search asks for (:class:`Query`), the SQL that answers it, and the same test in Python.

Three ways through the index, chosen per query (``EXPLAIN QUERY PLAN`` shows no
temporary B-tree for any of them: each walks an index in ``seq`` order and stops
at the page's limit):

- **by mailbox** — ``mailbox_messages``' primary key ``(mailbox, seq)``, when a
  mailbox is given and it is small, or nothing narrower is asked;
- **by text index** — ``message_search`` (FTS5, trigram; ``LIKE '%term%'``
  uses it) when the subject or sender filter has at least three characters,
  which the tokenizer needs; a mailbox is then a primary-key probe per candidate;
- **everything** — ``messages`` by ``seq``.

Every plan re-checks each filter exactly (``instr(lower(col), ?)``), so the
index only narrows and the answer does not depend on the plan. "No case" means
what SQLite's ``lower()`` does: ASCII letters only.

:func:`matches` is the same test in Python, for messages that have just
arrived (the API's ``wait`` and the inbox's live list check them in memory,
with no query at all). A Hypothesis test checks both agree.

Two filters have no SQL form and are checked in Python on the rows SQL returns:
a header (``NAME:VALUE``, parsed) and the body text (``text``, which reads each
candidate's bytes). Those scans stop at ``SCAN_MAX``/``TEXT_SCAN_MAX``
candidates; the page then says its total is not exact.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesParser
from typing import TYPE_CHECKING, Any

from mailprov.errors import InvalidValue
from mailprov.relay.storage.headers import header_matches

if TYPE_CHECKING:
    from mailprov.relay.storage.mailbox import StoredMessage

#: Most messages one page (or one ``search``) returns.
LIMIT_MAX = 10_000
#: A mailbox with at most this many messages is walked whole rather than via the text index.
SMALL_MAILBOX = 2_000
#: Totals of filtered searches are counted up to here ("1000+" beyond): counting costs
#: a probe per match (about 3 us each at 100,000 messages).
COUNT_MAX = 1_000
#: Rows read for a header filter (checked in Python) before the search gives up counting.
SCAN_MAX = 20_000
#: Messages whose body is read for a ``text`` filter, at most, per search.
TEXT_SCAN_MAX = 2_000
#: The trigram tokenizer indexes runs of three characters; shorter terms scan.
TRIGRAM = 3

COLUMNS = (
    "m.seq, m.id, m.received_at, m.sender, m.recipients, m.auth_user, m.peer,"
    " m.subject, m.message_id, m.size, m.headers"
)


@dataclass(frozen=True)
class Query:
    """What to look for; every given field must match (subject/sender/text: substring, no case)."""

    mailbox: str | None = None
    sender: str | None = None
    subject: str | None = None
    user: str | None = None
    since: float | None = None
    until: float | None = None
    header: tuple[str, str] | None = None
    text: str | None = None
    after_seq: int = 0
    before_seq: int | None = None
    limit: int = 100
    newest_first: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.limit <= LIMIT_MAX:
            raise InvalidValue(f"limit must be 1-{LIMIT_MAX}, not {self.limit}")
        if self.header is not None and not self.header[0].strip():
            raise InvalidValue("a header query needs a header name, as NAME:VALUE")

    @property
    def filtered(self) -> bool:
        """True if anything narrows the search beyond mailbox and seq bounds."""
        return bool(
            self.sender
            or self.subject
            or self.user
            or self.header
            or self.text
            or self.since is not None
            or self.until is not None
        )


@dataclass(frozen=True)
class Page:
    """One page of a search: the messages, how many match in all, and where the next page starts.

    ``total`` is exact when ``total_exact``; otherwise at least that many match
    (counting stopped at :data:`COUNT_MAX`, or a Python-checked filter stopped
    scanning). ``next_before``/``next_after`` are the ``before``/``after`` values
    of the next page (None when this one is the last).
    """

    messages: list[StoredMessage]
    total: int
    total_exact: bool = True
    next_before: int | None = None
    next_after: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """``lower()`` as SQLite does it: ASCII letters only."""
    return text.translate(_ASCII_LOWER)


def like_superset(value: str) -> str:
    """A LIKE pattern matching at least every text that contains ``value``.

    A literal ``%`` or ``_`` becomes ``_`` (any one character): the index can
    use LIKE without an ESCAPE clause, and the exact test follows anyway.
    """
    return "%" + value.replace("%", "_") + "%"


@dataclass(frozen=True)
class Plan:
    """The SQL of one query (rows of :data:`COLUMNS`) and its arguments."""

    sql: str
    args: tuple[Any, ...]
    via: str  # "mailbox", "text-index" or "all"

    def count_sql(self, cap: int) -> tuple[str, tuple[Any, ...]]:
        """``SELECT count(*)`` of at most ``cap`` matching rows (no ORDER BY, stops at cap)."""
        body = self.sql.split(" ORDER BY ", 1)[0].replace(f"SELECT {COLUMNS}", "SELECT 1", 1)
        return f"SELECT count(*) FROM ({body} LIMIT {int(cap)})", self.args  # noqa: S608


def plan(query: Query, *, small_mailbox: bool = False, limit: int | None = None) -> Plan:
    """The SQL for ``query``; ``small_mailbox``: its mailbox is walked whole (see module doc)."""
    # The index gets the lowered term the exact test looks for: whatever contains it
    # (folded alike on both sides by the tokenizer) is among the candidates.
    terms = [
        (column, value.lower())
        for column, value in (("sender", query.sender), ("subject", query.subject))
        if value and len(value.lower()) >= TRIGRAM
    ]
    where: list[str] = []
    args: list[Any] = []
    if terms and not (query.mailbox and small_mailbox):
        via, key = "text-index", "s.rowid"
        source = "message_search s CROSS JOIN messages m ON m.seq = s.rowid"
        if query.mailbox:
            source += " CROSS JOIN mailbox_messages b ON b.mailbox = ? AND b.seq = s.rowid"
            args.append(query.mailbox.lower())
        for column, value in terms:
            where.append(f"s.{column} LIKE ?")
            args.append(like_superset(value))
    elif query.mailbox:
        via, key = "mailbox", "b.seq"
        source = "mailbox_messages b CROSS JOIN messages m ON m.seq = b.seq"
        where.append("b.mailbox = ?")
        args.append(query.mailbox.lower())
    else:
        via, key = "all", "m.seq"
        source = "messages m"
    where.append(f"{key} > ?")
    args.append(query.after_seq)
    if query.before_seq is not None:
        where.append(f"{key} < ?")
        args.append(query.before_seq)
    for clause, value in _exact_tests(query):
        where.append(clause)
        args.append(value)
    order = "DESC" if query.newest_first else "ASC"
    sql = f"SELECT {COLUMNS} FROM {source} WHERE {' AND '.join(where)} ORDER BY {key} {order}"  # noqa: S608
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return Plan(sql, tuple(args), via)


def _exact_tests(query: Query) -> list[tuple[str, Any]]:
    """The filters every plan applies to each row, as (SQL clause, argument)."""
    tests: list[tuple[str, Any]] = [
        (f"instr(lower({column}), ?) > 0", value.lower())
        for column, value in (("m.sender", query.sender), ("m.subject", query.subject))
        if value
    ]
    if query.user:
        tests.append(("lower(m.auth_user) = ?", query.user.lower()))
    if query.since is not None:
        tests.append(("m.received_at >= ?", query.since))
    if query.until is not None:
        tests.append(("m.received_at <= ?", query.until))
    if query.header:
        tests.append(("instr(lower(m.headers), ?) > 0", query.header[1].lower()))
    return tests


def matches(
    query: Query,
    message: StoredMessage,
    headers: str,
    raw: Callable[[], bytes] | None = None,
) -> bool:
    """The test :func:`plan`'s SQL makes, in Python, for one message (``raw`` for ``text``)."""
    q, m = query, message
    boxes = {r.lower() for r in m.recipients} | ({m.auth_user.lower()} if m.auth_user else set())
    checks = (
        q.after_seq < m.seq,
        q.before_seq is None or m.seq < q.before_seq,
        not q.mailbox or q.mailbox.lower() in boxes,
        not q.sender or q.sender.lower() in ascii_lower(m.sender),
        not q.subject or q.subject.lower() in ascii_lower(m.subject),
        not q.user or ascii_lower(m.auth_user or "") == q.user.lower(),
        q.since is None or m.received_at >= q.since,
        q.until is None or m.received_at <= q.until,
    )
    if not all(checks):
        return False
    if q.header and not (
        q.header[1].lower() in ascii_lower(headers) and header_matches(headers, *q.header)
    ):
        return False
    return not q.text or (raw is not None and text_contains(raw(), q.text))


_CHARSET = re.compile(rb'charset\s*=\s*"?([a-z0-9_.:\-]+)')
_PLAIN_CHARSETS = {b"utf-8", b"utf8", b"us-ascii", b"ascii"}
_PLAIN_CHARSETS_TEXT = {c.decode() for c in _PLAIN_CHARSETS}


def body_text(raw: bytes) -> str:
    """The message's body as text: decoded text parts, or the body bytes when nothing is encoded."""
    lowered = raw.lower()
    encoded = b"base64" in lowered or b"quoted-printable" in lowered
    charsets = set(_CHARSET.findall(lowered))
    if not encoded and charsets <= _PLAIN_CHARSETS:
        end = raw.find(b"\r\n\r\n")
        return raw[end + 4 if end >= 0 else 0 :].decode("utf-8", "replace")
    message = BytesParser(policy=policy.default).parsebytes(raw)
    return "\n".join(
        part_text(part)
        for part in message.walk()
        if part.get_content_maintype() == "text" and not part.is_multipart()
    )


def part_text(part: Message) -> str:
    """A text part decoded: by its charset, as UTF-8 when it names none (or ASCII, or one unknown).

    Mail often declares no charset (or us-ascii) and sends UTF-8 anyway; UTF-8
    decodes ASCII the same, so it is the better guess. Undecodable bytes become U+FFFD.
    """
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = (part.get_content_charset() or "utf-8").lower()
    if charset in _PLAIN_CHARSETS_TEXT:
        charset = "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def text_contains(raw: bytes, needle: str) -> bool:
    """True if the body text contains ``needle`` (Unicode case folded)."""
    return needle.casefold() in body_text(raw).casefold()


def rows_in_python(
    rows: Iterator[Sequence[Any]],
    query: Query,
    to_message: Callable[[Sequence[Any]], StoredMessage],
    raw: Callable[[str], bytes],
    *,
    count: bool = True,
) -> tuple[list[StoredMessage], int, bool]:
    """Apply the Python-only filters (header, text) to SQL rows: (page, matches counted, all read).

    With ``count``, reads on past a full page to count (up to :data:`COUNT_MAX`
    matches); never more than :data:`SCAN_MAX` rows, or :data:`TEXT_SCAN_MAX`
    with a text filter.
    """
    cap = TEXT_SCAN_MAX if query.text else SCAN_MAX
    found: list[StoredMessage] = []
    counted = scanned = 0
    for row in rows:
        if scanned >= cap or counted >= COUNT_MAX:
            return found, counted, False
        scanned += 1
        if query.header and not header_matches(row[10], *query.header):
            continue
        if query.text and not text_contains(raw(row[1]), query.text):
            continue
        counted += 1
        if len(found) < query.limit:
            found.append(to_message(row))
        elif not count:
            return found, counted, False
    return found, counted, True
