"""The owner's filter forms, checked and compiled to a Sieve script (RFC 5228), without I/O.

The forms are forwarding (to some addresses, keeping a copy or not), a vacation
auto-reply (RFC 5230) and rules ("from/to/subject contains TEXT" → move to a folder,
discard, or mark read). :func:`parse_spec` checks a JSON document into a
:class:`FilterSpec`; :func:`compile_sieve` turns one into the script Pigeonhole runs
at delivery.

Every string the owner typed reaches the script only through :func:`quote`, as one
Sieve quoted string: ``\\`` and ``"`` are escaped, and nothing else in a quoted string
means anything to Sieve, since the script never requires the ``variables`` or
``encoded-character`` extensions (so ``${...}`` stays literal) and only ``:contains``
matching is used (no ``*`` or ``?`` wildcards). Line breaks are refused in one-line
fields and written as CRLF in the vacation text, the only form RFC 5228's grammar
allows inside a quoted string. So no text can end the string and add commands.

The script's order says the semantics (README, "Filters"):

1. discard rules: a discarded message is neither forwarded nor answered;
2. forwarding: ``redirect :copy`` keeps a copy; without a copy the script stops here;
3. the vacation reply (Pigeonhole's own checks apply: once per sender per ``days``,
   never to lists, bulk or automatic mail, only for mail addressed to the owner);
4. the move and mark-read rules, in the owner's order; the first match wins.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mailprov.errors import FiltersInvalid, InvalidAddress
from mailprov.rules.addresses import parse_destination

Field = Literal["from", "to", "subject"]
Action = Literal["move", "discard", "mark-read"]

FIELDS: tuple[Field, ...] = ("from", "to", "subject")
ACTIONS: tuple[Action, ...] = ("move", "discard", "mark-read")
#: The headers each rule field looks at.
HEADERS: Mapping[Field, tuple[str, ...]] = {
    "from": ("from",),
    "to": ("to", "cc"),
    "subject": ("subject",),
}
MAX_RULES = 50
MAX_TEXT = 200  # a subject, a "contains" text, a folder name
MAX_BODY = 10_000  # the vacation reply's text, in characters
#: RFC 5230: at least one day; the rendered Dovecot allows at most 90 (sieve_vacation_max_period).
MIN_DAYS, MAX_DAYS = 1, 90
SCRIPT_NAME = "mailprov"

#: Characters refused in one-line fields: C0 and C1 controls, DEL, line and paragraph
#: separators (a header value never holds them; a folder name must not).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class Forwarding:
    """Send every message on to these addresses; ``keep``: leave a copy in the mailbox."""

    to: tuple[str, ...]
    keep: bool = True


@dataclass(frozen=True)
class Vacation:
    """An auto-reply, optionally only between two dates (inclusive, the server's day)."""

    subject: str
    body: str
    days: int = 7
    start: dt.date | None = None
    end: dt.date | None = None


@dataclass(frozen=True)
class Rule:
    """If ``field`` contains ``contains``: do ``action``.

    Sieve's default comparator (i;ascii-casemap) ignores the case of A-Z only;
    Pigeonhole has no i;unicode-casemap.
    """

    field: Field
    contains: str
    action: Action
    folder: str = ""
    mark_read: bool = False


@dataclass(frozen=True)
class FilterSpec:
    """The owner's filter forms (all optional)."""

    forwarding: Forwarding | None = None
    vacation: Vacation | None = None
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """The JSON document :func:`parse_spec` reads back (and the API returns)."""
        fwd, vac = self.forwarding, self.vacation
        return {
            "forwarding": None if fwd is None else {"to": list(fwd.to), "keep": fwd.keep},
            "vacation": None
            if vac is None
            else {
                "subject": vac.subject,
                "body": vac.body,
                "days": vac.days,
                "start": vac.start.isoformat() if vac.start else None,
                "end": vac.end.isoformat() if vac.end else None,
            },
            "rules": [
                {
                    "field": r.field,
                    "contains": r.contains,
                    "action": r.action,
                    **(
                        {"folder": r.folder, "mark_read": r.mark_read} if r.action == "move" else {}
                    ),
                }
                for r in self.rules
            ],
        }


# -- checking the forms --------------------------------------------------------------


def _refuse(where: str, why: str, hint: str | None = None) -> FiltersInvalid:
    return FiltersInvalid(f"{where}: {why}", hint=hint, field=where)


def _line(value: object, where: str, *, empty: bool = False) -> str:
    """A one-line text field: a string, no control characters, not too long."""
    if not isinstance(value, str):
        raise _refuse(where, "must be a string")
    if not empty and not value.strip():
        raise _refuse(where, "must not be empty")
    if len(value) > MAX_TEXT:
        raise _refuse(where, f"is longer than {MAX_TEXT} characters")
    if _CONTROL.search(value):
        raise _refuse(where, "holds a line break or another control character")
    return value


def check_folder(value: object, where: str) -> str:
    """A folder name: one line, '/' separates levels, no empty level.

    Raises:
        FiltersInvalid: naming what is wrong.
    """
    folder = _line(value, where)
    parts = folder.split("/")
    if any(not p.strip() for p in parts):
        raise _refuse(where, "has an empty level ('/' at an end, or '//')", hint="e.g. Lists/Work")
    if any(p != p.strip() for p in parts):
        raise _refuse(where, "a level starts or ends with a space")
    return folder


def _date(value: object, where: str) -> dt.date | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _refuse(where, "must be a date (YYYY-MM-DD) or null")
    try:
        if not _DATE.fullmatch(value):
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _refuse(where, "is not a date in the form YYYY-MM-DD") from None


def _forwarding(doc: object, owner: str, max_redirects: int) -> Forwarding | None:
    if doc is None:
        return None
    if not isinstance(doc, Mapping):
        raise _refuse("forwarding", "must be an object or null")
    raw = doc.get("to")
    if not isinstance(raw, list) or not raw:
        raise _refuse("forwarding/to", "needs at least one address")
    if len(raw) > max_redirects:
        raise _refuse(
            "forwarding/to",
            f"at most {max_redirects} addresses",
            hint="the site allows that many forwards per message ([dovecot] sieve_max_redirects)",
        )
    out: list[str] = []
    for i, item in enumerate(raw):
        where = f"forwarding/to/{i}"
        try:
            address = parse_destination(_line(item, where))
        except InvalidAddress as exc:
            raise _refuse(where, exc.message, exc.hint) from None
        if address == owner:
            raise _refuse(where, "is this mailbox itself", hint="forward to another address")
        if address not in out:
            out.append(address)
    keep = doc.get("keep", True)
    if not isinstance(keep, bool):
        raise _refuse("forwarding/keep", "must be true or false")
    return Forwarding(tuple(out), keep)


def _vacation(doc: object) -> Vacation | None:
    if doc is None:
        return None
    if not isinstance(doc, Mapping):
        raise _refuse("vacation", "must be an object or null")
    subject = _line(doc.get("subject"), "vacation/subject")
    body = doc.get("body")
    if not isinstance(body, str) or not body.strip():
        raise _refuse("vacation/body", "must be a non-empty text")
    if len(body) > MAX_BODY:
        raise _refuse("vacation/body", f"is longer than {MAX_BODY} characters")
    if _BODY_CONTROL.search(body):
        raise _refuse("vacation/body", "holds a control character other than a line break or tab")
    days = doc.get("days", 7)
    if not isinstance(days, int) or isinstance(days, bool) or not MIN_DAYS <= days <= MAX_DAYS:
        raise _refuse("vacation/days", f"must be a whole number from {MIN_DAYS} to {MAX_DAYS}")
    start, end = _date(doc.get("start"), "vacation/start"), _date(doc.get("end"), "vacation/end")
    if start and end and end < start:
        raise _refuse("vacation/end", "is before vacation/start")
    return Vacation(subject, body, days, start, end)


def _rule(doc: object, i: int) -> Rule:
    where = f"rules/{i}"
    if not isinstance(doc, Mapping):
        raise _refuse(where, "must be an object")
    field_ = doc.get("field")
    if field_ not in FIELDS:
        raise _refuse(f"{where}/field", "must be one of " + ", ".join(FIELDS))
    action = doc.get("action")
    if action not in ACTIONS:
        raise _refuse(f"{where}/action", "must be one of " + ", ".join(ACTIONS))
    contains = _line(doc.get("contains"), f"{where}/contains")
    mark_read = doc.get("mark_read", False)
    if not isinstance(mark_read, bool):
        raise _refuse(f"{where}/mark_read", "must be true or false")
    folder = ""
    if action == "move":
        folder = check_folder(doc.get("folder"), f"{where}/folder")
    elif doc.get("folder") not in (None, ""):
        raise _refuse(f"{where}/folder", "is only for the action 'move'")
    return Rule(field_, contains, action, folder, mark_read and action == "move")


def parse_spec(doc: Mapping[str, Any], *, owner: str, max_redirects: int = 4) -> FilterSpec:
    """The filter forms in ``doc`` (the API's JSON), checked.

    Args:
        doc: ``{"forwarding": ..., "vacation": ..., "rules": [...]}``; each may be absent.
        owner: the mailbox's address (forwarding to it would loop).
        max_redirects: the most forwarding addresses allowed.

    Raises:
        FiltersInvalid: naming the first field that is wrong (its value is never echoed).
    """
    rules = doc.get("rules") or []
    if not isinstance(rules, list):
        raise _refuse("rules", "must be a list")
    if len(rules) > MAX_RULES:
        raise _refuse("rules", f"at most {MAX_RULES} rules")
    return FilterSpec(
        _forwarding(doc.get("forwarding"), owner, max_redirects),
        _vacation(doc.get("vacation")),
        tuple(_rule(r, i) for i, r in enumerate(rules)),
    )


# -- compiling -----------------------------------------------------------------------


def quote(text: str) -> str:
    """``text`` as one Sieve quoted string (RFC 5228 2.4.2): it always stays one literal.

    Backslash and double quote are escaped; a line break becomes CRLF (the only line
    break the grammar allows inside a quoted string).
    """
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + re.sub(r"\r\n|\r|\n", "\r\n", escaped) + '"'


def _list(items: Sequence[str]) -> str:
    return quote(items[0]) if len(items) == 1 else "[" + ", ".join(quote(i) for i in items) + "]"


def _test(rule: Rule) -> str:
    return f"header :contains {_list(HEADERS[rule.field])} {quote(rule.contains)}"


def _requires(spec: FilterSpec) -> list[str]:
    need: list[str] = []
    if any(r.action == "move" for r in spec.rules):
        need += ["fileinto", "mailbox"]
    if any(r.action == "mark-read" or r.mark_read for r in spec.rules):
        need.append("imap4flags")
    if spec.forwarding and spec.forwarding.keep:
        need.append("copy")
    if spec.vacation:
        need.append("vacation")
        if spec.vacation.start or spec.vacation.end:
            need += ["date", "relational"]
    return need


#: The test a vacation reply is sent under: the message was not marked as spam by rspamd.
NOT_SPAM = 'not header :is "X-Spam" "Yes"'


def _vacation_lines(vac: Vacation, addresses: Sequence[str]) -> list[str]:
    action = (
        f"vacation :days {vac.days} :subject {quote(vac.subject)} "
        f":addresses {_list(addresses)} {quote(vac.body)};"
    )
    # Never to spam: rspamd marks it "X-Spam: Yes" (a reply would confirm the address to
    # the spammer, and go to a forged sender).
    when = [NOT_SPAM] + [
        f'currentdate :comparator "i;octet" :value "{op}" "date" "{day.isoformat()}"'
        for op, day in (("ge", vac.start), ("le", vac.end))
        if day is not None
    ]
    test = when[0] if len(when) == 1 else f"allof({', '.join(when)})"
    return [f"if {test} {{", f"  {action}", "}"]


def _rule_lines(rule: Rule) -> list[str]:
    if rule.action == "discard":
        body = ["discard;", "stop;"]
    elif rule.action == "mark-read":
        body = ['addflag "\\\\Seen";', "keep;", "stop;"]
    else:
        body = ['addflag "\\\\Seen";'] if rule.mark_read else []
        body += [f"fileinto :create {quote(rule.folder)};", "stop;"]
    return [f"if {_test(rule)} {{", *(f"  {line}" for line in body), "}"]


def compile_sieve(
    spec: FilterSpec, *, owner: str, addresses: Sequence[str] = (), header: str = ""
) -> str:
    """The Sieve script of ``spec`` for the mailbox ``owner`` (CRLF line ends).

    Args:
        spec: the checked forms.
        owner: the mailbox's address; the vacation reply answers mail addressed to it
            (and to ``addresses``, e.g. its aliases).
        addresses: more addresses of the owner.
        header: a comment line for the top (no line breaks).
    """
    lines = [f"# {_CONTROL.sub(' ', header)}"] if header else []
    lines.append("# Generated by mailprov from the owner's filter forms; edits are replaced.")
    need = _requires(spec)
    if need:
        lines.append(f"require {_list(need)};")
    discards = [r for r in spec.rules if r.action == "discard"]
    for rule in discards:
        lines += _rule_lines(rule)
    fwd = spec.forwarding
    if fwd is not None:
        lines += [f"redirect{' :copy' if fwd.keep else ''} {quote(to)};" for to in fwd.to]
        if not fwd.keep:
            lines.append("stop;")
    if spec.vacation is not None:
        own = [owner, *(a for a in addresses if a != owner)]
        lines += _vacation_lines(spec.vacation, own)
    for rule in spec.rules:
        if rule.action != "discard":
            lines += _rule_lines(rule)
    return "\r\n".join(lines) + "\r\n"
