"""Reading a state file: TOML or JSON text -> a document checked against the shipped JSON Schema.

The schema (``mailprov/data/state.schema.json``, in the wheel) is the one definition of
the format; ``mailprov export`` writes it and ``mailprov apply`` reads it. Problems are
reported with the line they are on (:mod:`mailprov.rules.positions`), the path of the
value, and a message of our own: never the value itself, which may be a password hash
(or a clear password written where none belongs).
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from mailprov.errors import StateInvalid
from mailprov.rules.positions import Path, json_lines, line_of, toml_lines
from mailprov.rules.tomledit import toml_string

SCHEMA_FILE = "data/state.schema.json"
FORMATS = ("toml", "json")
MAX_PROBLEMS = 200
_SECRET_KEYS = ("password_hash", "password")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the state, where it is."""

    path: Path
    message: str


def schema_text() -> str:
    """The shipped JSON Schema of the state format."""
    return resources.files("mailprov").joinpath(SCHEMA_FILE).read_text("utf-8")


@cache
def _schema() -> dict[str, Any]:
    """The shipped schema with its local $refs resolved (the validators then follow none
    per value, which makes a 10k-mailbox state about a third quicker to check)."""
    schema = json.loads(schema_text())
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[1]]))
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return dict(inline(schema))


@cache
def _quick() -> Check:
    return quick_check(_schema())


@cache
def _validator() -> Any:
    import jsonschema  # noqa: PLC0415  (lazy: 140 ms to import, needed only for errors)

    jsonschema.Draft202012Validator.check_schema(json.loads(schema_text()))
    return jsonschema.Draft202012Validator(_schema())


_ANNOTATIONS = frozenset({"description", "title", "$schema", "$id", "$comment", "default"})
_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
}
Check = Callable[[Any], bool]


def _never(_value: Any) -> bool:
    return False


def quick_check(schema: Any) -> Check:
    """A fast "certainly valid" test compiled from ``schema``, for the keywords it uses.

    jsonschema checks a 10k-mailbox state in about 0.4 s; the compiled test takes a
    tenth of that. It never decides alone that a value is *invalid*: False (also for
    any keyword it does not know) sends the document to jsonschema, which stays the
    authority and says what is wrong. A Hypothesis test holds it to "True implies
    jsonschema agrees".
    """
    if not isinstance(schema, dict):
        return (lambda _v: True) if schema is True else _never
    checks = []
    for keyword, expected in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        check = _keyword(keyword, expected, schema)
        if check is None:
            return _never  # a keyword this fast path does not know: let jsonschema decide
        checks.append(check)
    return lambda value: all(check(value) for check in checks)


def _keyword(keyword: str, expected: Any, schema: dict[str, Any]) -> Check | None:  # noqa: PLR0911
    if keyword == "type":
        kinds = [
            _TYPES.get(k, _never) for k in (expected if isinstance(expected, list) else [expected])
        ]
        return lambda v: any(kind(v) for kind in kinds)
    if keyword == "properties":
        subs = {k: quick_check(sub) for k, sub in expected.items()}
        return lambda v: (
            not isinstance(v, dict) or all(sub(v[k]) for k, sub in subs.items() if k in v)
        )
    if keyword == "additionalProperties":
        known, sub = set(schema.get("properties", {})), quick_check(expected)
        return lambda v: (
            not isinstance(v, dict) or all(sub(x) for k, x in v.items() if k not in known)
        )
    if keyword == "required":
        return lambda v: not isinstance(v, dict) or all(k in v for k in expected)
    if keyword == "items":
        item = quick_check(expected)
        return lambda v: not isinstance(v, list) or all(item(x) for x in v)
    if keyword == "pattern":
        search = re.compile(expected).search
        return lambda v: not isinstance(v, str) or search(v) is not None
    if keyword in ("maxLength", "minLength", "minItems", "minimum"):
        kind = list if keyword == "minItems" else str
        if keyword == "minimum":
            return lambda v: not _TYPES["integer"](v) or v >= expected
        if keyword == "maxLength":
            return lambda v: not isinstance(v, kind) or len(v) <= expected
        return lambda v: not isinstance(v, kind) or len(v) >= expected
    if keyword == "uniqueItems":
        return lambda v: (
            not isinstance(v, list)
            or (all(isinstance(x, str) for x in v) and len(set(v)) == len(v))
        )
    if keyword in ("const", "enum"):
        allowed = [expected] if keyword == "const" else list(expected)
        return lambda v: (
            type(v) in (str, int) and any(type(v) is type(a) and v == a for a in allowed)
        )
    return None


@cache
def _toml() -> Any:
    """tomli where its compiled build is installed (the same parser as tomllib, 3x faster)."""
    try:
        import tomli  # noqa: PLC0415  (lazy: only state files need it)
    except ImportError:  # pragma: no cover - tomli is a dependency; tomllib is the same parser
        return tomllib
    return tomli


def detect_format(text: str, name: str) -> str:
    """``json`` for a ``.json`` name or text starting with ``{``; ``toml`` otherwise."""
    if name.endswith(".json") or text.lstrip().startswith("{"):
        return "json"
    return "toml"


def show_path(path: Path) -> str:
    """``mailboxes."a@example.org".quota`` (indexes as ``[0]``)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            shown = (
                part if part and all(c.isalnum() or c in "_-" for c in part) else json.dumps(part)
            )
            out += ("." if out else "") + shown
    return out or "(the document)"


def fail(problems: list[Problem], *, text: str, fmt: str, source: str) -> StateInvalid:
    """The error listing ``problems``, each with its line (looked up only now)."""
    lines = json_lines(text) if fmt == "json" else toml_lines(text)
    placed = sorted(
        ((line_of(lines, p.path), n, p) for n, p in enumerate(problems)),
        key=lambda item: (item[0] or 0, item[1]),
    )
    shown = []
    for line, _, problem in placed[:MAX_PROBLEMS]:
        where = f"line {line}: " if line is not None else ""
        shown.append(f"{where}{show_path(problem.path)}: {problem.message}")
    first = shown[0] if shown else "no problems"
    return StateInvalid(
        f"{source}: {len(problems)} problem(s), the first: {first}; nothing was changed",
        problems=shown,
    )


def parse(text: str, *, fmt: str, source: str) -> dict[str, Any]:
    """The document in ``text``, checked against the schema.

    Raises:
        StateInvalid: a syntax error (with its line) or every schema problem (with theirs).
    """
    toml = _toml()
    try:
        doc: Any = toml.loads(text) if fmt == "toml" else json.loads(text)
    except toml.TOMLDecodeError as exc:
        raise StateInvalid(f"{source} is not valid TOML: {exc}") from None
    except json.JSONDecodeError as exc:
        raise StateInvalid(f"{source} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not _quick()(doc) and not (validator := _validator()).is_valid(doc):
        errors = sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.path])
        problems = [Problem(tuple(e.absolute_path), _message(e)) for e in errors]
        raise fail(problems, text=text, fmt=fmt, source=source)
    return dict(doc)


def _message(error: Any) -> str:
    """A message for one schema error that never repeats a secret value."""
    kind = error.validator
    path = list(error.absolute_path)
    field = str(path[-1]) if path else ""
    if kind == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        if any(k in _SECRET_KEYS or "password" in k for k in extra):
            return (
                f"{', '.join(map(repr, extra))} is not accepted: a state file never holds a "
                "clear password; give password_hash ({SCHEME}hash), or generate_password = true"
            )
        known = ", ".join(error.schema.get("properties", {}))
        return f"unknown key(s) {', '.join(map(repr, extra))} (known: {known})"
    if kind == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return f"{', '.join(map(repr, missing))} is required"
    if kind == "type":
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        return f"must be {'an' if wanted[0] in 'aeiou' else 'a'} {wanted}"
    if field == "password_hash":
        return "must be a hash in Dovecot's form, e.g. {ARGON2ID}$argon2id$..."
    return _simple_message(kind, field, error.validator_value)


def _simple_message(kind: str, field: str, value: Any) -> str:
    if kind == "pattern":
        return _PATTERNS.get(field, "has the wrong form")
    if kind in ("const", "enum"):
        values = [value] if kind == "const" else value
        return "must be " + " or ".join(json.dumps(v) for v in values)
    return {
        "minItems": "must list at least one",
        "uniqueItems": "lists the same value twice",
        "maxLength": f"is longer than {value} characters",
        "minLength": f"is shorter than {value} characters",
        "minimum": "cannot be negative",
    }.get(kind, f"is not valid ({kind})")


_PATTERNS = {
    "quota": "must be a size such as 2G or 500M, or a number of bytes (0 = unlimited)",
    "selector": "must be a DKIM selector: one DNS label (a-z, 0-9, inner hyphens)",
}


# -- writing -------------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
HEADER = (
    "# mailprov site state (mailprov export); converge a site to it with 'mailprov apply FILE'\n"
)


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else toml_string(name)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):  # a spam threshold: finite, at most two decimals
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"


def to_toml_lines(doc: dict[str, Any]) -> Iterator[str]:
    """A state document as TOML, one line at a time: a ``[kind."key"]`` table per object."""
    yield HEADER
    yield f"version = {_value(doc['version'])}\n"
    for kind in ("domains", "mailboxes", "aliases"):
        for name, body in doc.get(kind, {}).items():
            yield f"\n[{kind}.{_key(name)}]\n"
            for attr, value in body.items():
                yield f"{_key(attr)} = {_value(value)}\n"


def to_json_lines(doc: dict[str, Any]) -> Iterator[str]:
    """A state document as JSON (indented, UTF-8 kept), in pieces."""
    yield from json.JSONEncoder(indent=2, ensure_ascii=False).iterencode(doc)
    yield "\n"
