"""Where each key of a TOML or JSON document is written: path -> line number.

``tomllib`` and ``json`` give values, not positions, so a schema error at
``mailboxes."a@example.org".quota`` could not say which line to fix. These
scanners read the (already parsed, so known valid) text once more and record
the line of every key and array item, by its path (keys as strings, array
indexes as ints). They understand all of TOML 1.0's syntax for keys and
headers (bare, quoted and dotted keys, ``[table]``, ``[[array of tables]]``,
inline tables, multi-line arrays and strings), and skip values they do not
need to understand. They run only when there is an error to place.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

Path = tuple[str | int, ...]

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\", "/": "/"}


class _Scanner:
    """A cursor over the text that knows the line of each offset."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.starts = [0] + [n + 1 for n, ch in enumerate(text) if ch == "\n"]
        self.lines: dict[Path, int] = {}

    def line(self, offset: int | None = None) -> int:
        return bisect.bisect_right(self.starts, self.i if offset is None else offset)

    def peek(self, n: int = 1) -> str:
        return self.text[self.i : self.i + n]

    def note(self, path: Path, offset: int | None = None) -> None:
        """Record where ``path`` is written (the first place wins: a later
        ``[a.b]`` header does not move ``a``)."""
        self.lines.setdefault(path, self.line(offset))

    def spaces(self) -> None:
        while self.i < len(self.text) and self.text[self.i] in " \t":
            self.i += 1

    def blank(self) -> None:
        """Skip spaces, newlines and comments."""
        while self.i < len(self.text):
            ch = self.text[self.i]
            if ch in " \t\r\n":
                self.i += 1
            elif ch == "#":
                end = self.text.find("\n", self.i)
                self.i = len(self.text) if end < 0 else end
            else:
                return

    def string(self) -> str:
        """A basic, literal or multi-line string starting at the cursor; returns its value."""
        quote = self.text[self.i]
        if self.peek(3) == quote * 3:
            end = self.text.find(quote * 3, self.i + 3) if quote == "'" else self._basic_end(3)
            # A closing delimiter may be followed by up to two more quotes of the content.
            while self.text[end + 3 : end + 4] == quote:
                end += 1
            value = self.text[self.i + 3 : end]
            self.i = end + 3
            return value
        if quote == "'":
            end = self.text.index("'", self.i + 1)
            value = self.text[self.i + 1 : end]
            self.i = end + 1
            return value
        end = self._basic_end(1)
        value = _unescape(self.text[self.i + 1 : end])
        self.i = end + 1
        return value

    def _basic_end(self, width: int) -> int:
        """The offset of the closing quote(s) of a basic string (escapes skipped)."""
        j = self.i + width
        closing = '"' * width
        while True:
            if self.text[j] == "\\":
                j += 2
            elif self.text.startswith(closing, j):
                return j
            else:
                j += 1


def _unescape(raw: str) -> str:
    if "\\" not in raw:
        return raw
    out, j = [], 0
    while j < len(raw):
        ch = raw[j]
        if ch != "\\":
            out.append(ch)
            j += 1
            continue
        code = raw[j + 1]
        if code in "uU":
            width = 4 if code == "u" else 8
            out.append(chr(int(raw[j + 2 : j + 2 + width], 16)))
            j += 2 + width
        else:
            out.append(_ESCAPES.get(code, code))
            j += 2
    return "".join(out)


# -- TOML ---------------------------------------------------------------------------


class _Toml(_Scanner):
    def key(self) -> list[str]:
        """A dotted key: its parts."""
        parts = []
        while True:
            self.spaces()
            if self.peek() in ('"', "'"):
                parts.append(self.string())
            else:
                start = self.i
                while self.i < len(self.text) and self.text[self.i] in _BARE:
                    self.i += 1
                parts.append(self.text[start : self.i])
            self.spaces()
            if self.peek() != ".":
                return parts
            self.i += 1

    def document(self) -> None:
        table: Path = ()
        arrays: dict[tuple[str, ...], int] = {}  # array-of-tables path -> current index
        while True:
            self.blank()
            if self.i >= len(self.text):
                return
            start = self.i
            if self.peek(2) == "[[":
                self.i += 2
                names = tuple(self.key())
                self.i += 2
                for other in [a for a in arrays if a[: len(names)] == names and a != names]:
                    del arrays[other]
                arrays[names] = arrays.get(names, -1) + 1
                table = (*self._resolve(names[:-1], arrays), names[-1], arrays[names])
                self._note_all(table, start)
            elif self.peek() == "[":
                self.i += 1
                table = self._resolve(tuple(self.key()), arrays)
                self.i += 1
                self._note_all(table, start)
            else:
                path = (*table, *self.key())
                self._note_all(path, start)
                self.spaces()
                self.i += 1  # '='
                self.spaces()
                self.value(path)

    def _resolve(self, names: tuple[str, ...], arrays: dict[tuple[str, ...], int]) -> Path:
        """A header's path with the current index after each array of tables it passes."""
        out: list[str | int] = []
        for n in range(1, len(names) + 1):
            out.append(names[n - 1])
            if names[:n] in arrays:
                out.append(arrays[names[:n]])
        return tuple(out)

    def _note_all(self, path: Path, offset: int) -> None:
        for n in range(1, len(path) + 1):
            self.note(path[:n], offset)

    def value(self, path: Path) -> None:
        ch = self.peek()
        if ch in ('"', "'"):
            self.string()
        elif ch == "[":
            self.i += 1
            index = 0
            while True:
                self.blank()
                if self.peek() == "]":
                    self.i += 1
                    return
                self.note((*path, index))
                self.value((*path, index))
                index += 1
                self.blank()
                if self.peek() == ",":
                    self.i += 1
        elif ch == "{":
            self.i += 1
            while True:
                self.blank()
                if self.peek() == "}":
                    self.i += 1
                    return
                start = self.i
                inner = (*path, *self.key())
                self._note_all(inner, start)
                self.spaces()
                self.i += 1  # '='
                self.spaces()
                self.value(inner)
                self.blank()
                if self.peek() == ",":
                    self.i += 1
        else:  # a number, boolean or date: up to the next delimiter
            while self.i < len(self.text) and self.text[self.i] not in ",]}\n#":
                self.i += 1


def toml_lines(text: str) -> dict[Path, int]:
    """Line (1-based) of each key and array item of a valid TOML document, by path."""
    scanner = _Toml(text)
    scanner.document()
    return scanner.lines


# -- JSON ---------------------------------------------------------------------------


class _Json(_Scanner):
    def value(self, path: Path) -> None:
        self.blank()
        ch = self.peek()
        if ch == "{":
            self.i += 1
            while True:
                self.blank()
                if self.peek() == "}":
                    self.i += 1
                    return
                if self.peek() == ",":
                    self.i += 1
                    continue
                start = self.i
                key = self.string()
                self.note((*path, key), start)
                self.blank()
                self.i += 1  # ':'
                self.value((*path, key))
        elif ch == "[":
            self.i += 1
            index = 0
            while True:
                self.blank()
                if self.peek() == "]":
                    self.i += 1
                    return
                if self.peek() == ",":
                    self.i += 1
                    continue
                self.note((*path, index))
                self.value((*path, index))
                index += 1
        elif ch == '"':
            self.string()
        else:
            while self.i < len(self.text) and self.text[self.i] not in ",]} \t\r\n":
                self.i += 1


def json_lines(text: str) -> dict[Path, int]:
    """Line (1-based) of each key and array item of a valid JSON document, by path."""
    scanner = _Json(text)
    scanner.value(())
    return scanner.lines


def line_of(lines: dict[Path, int], path: Sequence[str | int]) -> int | None:
    """The line of ``path``, or of its nearest written ancestor (None for the whole document)."""
    key = tuple(path)
    while key:
        if key in lines:
            return lines[key]
        key = key[:-1]
    return None
