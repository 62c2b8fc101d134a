"""Mailpit's search language, compiled to SQL over the relay's index.

Mailpit's clients send searches such as ``to:ann@example.test subject:"Your code"``
(https://mailpit.axllent.org/docs/usage/search-filters/). Each word becomes a
condition; all must hold; a leading ``-`` or ``!`` negates one; double quotes
group words. What each filter matches here (the README's mapping table says the
same, with the differences from Mailpit):

============================  ==========================================================
``to:ADDRESS``                an envelope recipient equal to ADDRESS (no case; indexed)
``to:PART``                   an envelope recipient containing PART (Bcc included)
``from:X``                    the envelope sender or the From header contains X
``cc:X`` / ``reply-to:X``     that header contains X
``bcc:X``                     a recipient not named in To or Cc contains X
``addressed:X``               any of the above contains X
``subject:X``                 the Subject contains X
``message-id:X``              the Message-ID contains X
``tag:X`` / ``is:tagged``     the ``X-Tags`` header names X / names any tag
``is:read`` / ``is:unread``   opened through this API (``GET .../message/ID``) or not
``has:attachment(s)``         at least one attachment / ``has:inline(s)``: inline part
``larger:SIZE`` / ``smaller:``  size in bytes, K, M or G
``after:DATE`` / ``before:``  received at or after / before (ISO 8601; ``tz`` for dates)
any other word                the subject, sender, recipients or headers contain it
============================  ==========================================================

Every condition is first an SQL condition that the index can check (a substring of
the header block, say); conditions the index cannot decide exactly also carry a
Python predicate that runs on the candidates. A search with no predicate is
counted and paged by SQLite alone.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import getaddresses
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailprov.errors import InvalidValue
from mailprov.relay.storage.mailbox import StoredMessage, header_value, parse_headers
from mailprov.relay.storage.search import TRIGRAM, like_superset
from mailprov.rules.sizes import parse_size

#: Where a search or unknown-endpoint error sends people.
MAPPING_DOC = "README.md, 'Mailpit-compatible API' (or GET /mailpit/api/v1/openapi.json)"
_ADDRESS = re.compile(r"[^@\s\"<>]+@[^@\s\"<>]+")
_TO_EXACT = "m.seq IN (SELECT seq FROM mailbox_messages WHERE mailbox = ? AND kind = 'rcpt')"
_ADDRESSED = (
    "(m.recipients LIKE ? ESCAPE '\\' OR m.sender LIKE ? ESCAPE '\\'"
    " OR m.headers LIKE ? ESCAPE '\\')"
)
#: ``subject:X``'s candidates in the store's trigram index (issue 14, item 7): a superset
#: of its matches, used by run() when it is small (see SELECTIVE).
_SUBJECT_CANDIDATES = "SELECT rowid FROM message_search WHERE subject LIKE ?"
#: A hint with at most this many candidates narrows the search; more, and scanning in
#: seq order (which stops at the page) costs less than probing and sorting them all.
SELECTIVE = 500
COLUMNS = (
    "m.seq, m.id, m.received_at, m.sender, m.recipients, m.auth_user, m.peer, m.subject,"
    " m.message_id, m.size, m.headers"
)


@dataclass(frozen=True)
class Row:
    """One index row: the summary and its raw header block."""

    summary: StoredMessage
    headers: str


Predicate = Callable[[Row], bool]


@dataclass
class Search:
    """A compiled search: SQL conditions (with arguments) and Python predicates."""

    where: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)
    predicates: list[Predicate] = field(default_factory=list)
    #: Index lookups (SQL selecting seqs, its argument) whose result holds every match.
    hints: list[tuple[str, Any]] = field(default_factory=list)

    def add(
        self, sql: str | None, args: Iterable[Any] = (), predicate: Predicate | None = None
    ) -> None:
        """One condition (either part may be None)."""
        if sql:
            self.where.append(sql)
            self.args.extend(args)
        if predicate is not None:
            self.predicates.append(predicate)


def tokens(query: str) -> list[str]:
    """Split on blanks, keeping double-quoted runs together (quotes dropped)."""
    found: list[str] = []
    current: list[str] = []
    quoted = False
    for char in query:
        if char == '"':
            quoted = not quoted
        elif char.isspace() and not quoted:
            if current:
                found.append("".join(current))
            current = []
        else:
            current.append(char)
    if current:
        found.append("".join(current))
    return found


def header_addresses(headers: str, name: str) -> list[str]:
    """The addresses (with display names) of one header, lower case, as ``name <addr>``."""
    _, pairs = parse_headers(headers.encode("utf-8"))
    values = [v for k, v in pairs if k.lower() == name]
    if not values:
        return []
    text = header_value([(name, ", ".join(values))], name)
    return [f"{n} <{a}>".lower() for n, a in getaddresses([text])]


def tags_of(headers: str) -> list[str]:
    """Tags named in the ``X-Tags`` header (comma separated), as Mailpit reads them."""
    _, pairs = parse_headers(headers.encode("utf-8"))
    raw = header_value(pairs, "X-Tags")
    return [t.strip() for t in raw.split(",") if t.strip()]


def _bcc(row: Row) -> list[str]:
    named = {
        a.rsplit("<", 1)[-1].rstrip(">")
        for h in ("to", "cc")
        for a in header_addresses(row.headers, h)
    }
    return [r.lower() for r in row.summary.recipients if r.lower() not in named]


def _like(text: str) -> str:
    """A LIKE pattern for 'contains text' (SQLite's LIKE ignores ASCII case, as Mailpit's)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _header(name: str) -> Callable[[Row], list[str]]:
    return lambda row: header_addresses(row.headers, name)


def _negated(pred: Predicate) -> Predicate:
    return lambda row: not pred(row)


def _has(body_kinds: Callable[[str], set[str]], kind: str, *, present: bool) -> Predicate:
    return lambda row: (kind in body_kinds(row.summary.id)) == present


def _tagged(tag: str) -> Predicate:
    return lambda row: tag in (t.lower() for t in tags_of(row.headers))


def _read_is(read: set[str], wanted: bool) -> Predicate:
    return lambda row: (row.summary.id in read) == wanted


def _contains(getter: Callable[[Row], Iterable[str]], needle: str) -> Predicate:
    return lambda row: any(needle in value for value in getter(row))


def _instant(text: str, zone: str | None, *, end: bool) -> float:
    """A date (midnight, in ``zone``) or ISO 8601 instant, as Unix seconds."""
    try:
        tz: Any = ZoneInfo(zone) if zone else UTC
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidValue(f"tz: unknown time zone {zone!r:.40}") from None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        start = datetime(day.year, day.month, day.day, tzinfo=tz)
        return (start + timedelta(days=1) if end else start).timestamp()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidValue(
            f"{'before' if end else 'after'}: wants a date such as 2024-05-31 "
            f"or an ISO 8601 time, not {text!r:.40}"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=tz)).timestamp()


def compile_search(query: str, *, tz: str | None = None, read: set[str] | None = None) -> Search:  # noqa: PLR0912, PLR0915 (one branch per filter, as the table above)
    """Compile a Mailpit search. Raises InvalidValue naming the word it cannot use."""
    read = read if read is not None else set()
    search = Search()
    for token in tokens(query):
        negate = len(token) > 1 and token[0] in "-!"
        word = token[1:] if negate else token
        lower = word.lower()
        name, sep, value = lower.partition(":")
        value = value.strip() if sep else ""
        like = _like(value)
        sql: str | None = None
        args: list[Any] = []
        pred: Predicate | None = None
        if (
            sep
            and name
            in {
                "to",
                "from",
                "cc",
                "bcc",
                "reply-to",
                "addressed",
                "subject",
                "message-id",
                "tag",
                "larger",
                "smaller",
                "after",
                "before",
            }
            and not value
        ):
            continue  # an empty filter, as Mailpit: ignored
        if sep and name == "to":
            if _ADDRESS.fullmatch(value):
                sql = _TO_EXACT
                args = [value]
            else:
                sql, args = "m.recipients LIKE ? ESCAPE '\\'", [like]
        elif sep and name == "from":
            sql, args = (
                "(m.sender LIKE ? ESCAPE '\\' OR m.headers LIKE ? ESCAPE '\\')",
                [like] * 2,
            )
            pred = _contains(
                lambda r: [r.summary.sender.lower(), *header_addresses(r.headers, "from")], value
            )
        elif sep and name in {"cc", "reply-to"}:
            sql, args = "m.headers LIKE ? ESCAPE '\\'", [like]
            pred = _contains(_header(name), value)
        elif sep and name == "bcc":
            sql, args = "m.recipients LIKE ? ESCAPE '\\'", [like]
            pred = _contains(_bcc, value)
        elif sep and name == "addressed":
            sql = _ADDRESSED
            args = [like] * 3
            pred = _contains(
                lambda r: [
                    *(x.lower() for x in r.summary.recipients),
                    r.summary.sender.lower(),
                    *(
                        a
                        for h in ("from", "to", "cc", "reply-to")
                        for a in header_addresses(r.headers, h)
                    ),
                ],
                value,
            )
        elif sep and name == "subject":
            term = word.partition(":")[2].strip()
            sql, args = "m.subject LIKE ? ESCAPE '\\'", [_like(term)]
            if not negate and len(term) >= TRIGRAM:
                search.hints.append((_SUBJECT_CANDIDATES, like_superset(term)))
        elif sep and name == "message-id":
            sql, args = "m.message_id LIKE ? ESCAPE '\\'", [like]
        elif sep and name == "tag":
            sql, args = "m.headers LIKE '%x-tags:%'", []
            pred = _tagged(value)
        elif lower == "is:tagged":
            sql = "m.headers LIKE '%x-tags:%'"
            pred = lambda r: bool(tags_of(r.headers))  # noqa: E731
        elif lower in {"is:read", "is:unread"}:
            wanted = lower == "is:read"
            pred = _read_is(read, wanted)
        elif lower in {"has:attachment", "has:attachments", "has:inline", "has:inlines"}:
            # Decided by the caller (it needs the body): a marker predicate.
            kind = "inline" if "inline" in lower else "attachment"
            sql = "m.headers LIKE '%multipart/%'"
            pred = _NeedsBody(kind)
        elif sep and name in {"larger", "smaller"}:
            try:
                size = parse_size(value)
            except InvalidValue:
                raise InvalidValue(
                    f"{name}: wants a size such as 10K or 2M, not {value!r:.40}"
                ) from None
            sql, args = ("m.size > ?" if name == "larger" else "m.size < ?"), [size]
        elif sep and name in {"after", "before"}:
            moment = _instant(word.partition(":")[2].strip(), tz, end=name == "before")
            sql, args = ("m.received_at >= ?" if name == "after" else "m.received_at < ?"), [moment]
        else:  # any other word, "re:" or "is:unknown" included, is text (as in Mailpit)
            sql = (
                "(m.subject LIKE ? ESCAPE '\\' OR m.sender LIKE ? ESCAPE '\\'"
                " OR m.recipients LIKE ? ESCAPE '\\' OR m.headers LIKE ? ESCAPE '\\')"
            )
            args = [_like(lower)] * 4
        if negate:
            if isinstance(pred, _NeedsBody):
                search.add(None, (), _NeedsBody(pred.kind, present=False))
            elif pred is not None:
                search.add(None, (), _negated(pred))
            else:
                search.add(f"NOT {sql}", args)
        else:
            search.add(sql, args, pred)
    return search


@dataclass(frozen=True)
class _NeedsBody:
    """A predicate on the parsed body; :func:`run` supplies the body check."""

    kind: str
    present: bool = True

    def __call__(self, row: Row) -> bool:  # pragma: no cover - replaced in run()
        raise NotImplementedError


def _row(values: tuple[Any, ...]) -> Row:
    import json  # noqa: PLC0415  (stdlib, cheap; kept next to its only use)

    return Row(
        StoredMessage(
            seq=values[0],
            id=values[1],
            received_at=values[2],
            sender=values[3],
            recipients=tuple(json.loads(values[4])),
            auth_user=values[5],
            peer=values[6],
            subject=values[7],
            message_id=values[8],
            size=values[9],
        ),
        values[10],
    )


def run(
    db: sqlite3.Connection,
    search: Search,
    *,
    start: int,
    limit: int,
    body_kinds: Callable[[str], set[str]] | None = None,
) -> tuple[list[Row], int]:
    """The page ``start..start+limit`` of matches, newest first, and how many match in all.

    ``body_kinds(id)`` returns which of ``{'attachment', 'inline'}`` a message has
    (it reads the body); it is needed only for ``has:`` filters.
    """
    clauses, args = list(search.where), list(search.args)
    for lookup, value in search.hints:
        probe = f"SELECT count(*) FROM ({lookup} LIMIT ?)"  # noqa: S608
        if db.execute(probe, (value, SELECTIVE + 1)).fetchone()[0] <= SELECTIVE:
            clauses.append(f"m.seq IN ({lookup})")
            args.append(value)
    where = " AND ".join(clauses) or "1"
    if not search.predicates:
        rows = db.execute(
            f"SELECT {COLUMNS} FROM messages m WHERE {where} ORDER BY m.seq DESC LIMIT ? OFFSET ?",  # noqa: S608
            [*args, limit, start],
        ).fetchall()
        if 0 < len(rows) < limit or (start == 0 and not rows):
            count = start + len(rows)  # the page ended early: no second scan to count
        else:
            sql = f"SELECT count(*) FROM messages m WHERE {where}"  # noqa: S608
            count = db.execute(sql, args).fetchone()[0]
        return [_row(r) for r in rows], int(count)
    checks: list[Predicate] = []
    for pred in search.predicates:
        if isinstance(pred, _NeedsBody):
            if body_kinds is None:
                raise InvalidValue("has: filters are not available here")
            checks.append(_has(body_kinds, pred.kind, present=pred.present))
        else:
            checks.append(pred)
    page: list[Row] = []
    count = 0
    cursor = db.execute(
        f"SELECT {COLUMNS} FROM messages m WHERE {where} ORDER BY m.seq DESC",  # noqa: S608
        args,
    )
    for values in cursor:
        row = _row(values)
        if all(check(row) for check in checks):
            if start <= count < start + limit:
                page.append(row)
            count += 1
    return page, count


def ids_matching(
    db: sqlite3.Connection, search: Search, body_kinds: Callable[[str], set[str]]
) -> list[str]:
    """Every matching message's id (for delete by search)."""
    rows, _ = run(db, search, start=0, limit=2**62, body_kinds=body_kinds)
    return [r.summary.id for r in rows]
