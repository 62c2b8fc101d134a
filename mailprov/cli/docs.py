"""Documentation generated from the code: ``python -m mailprov.cli.docs errors``.

The README's exit-status table is this module's output between the markers
``<!-- errors:start -->`` and ``<!-- errors:end -->``; ``--write README.md``
replaces it in place, and a test fails when the README is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mailprov.errors import MailprovError, all_errors

START, END = "<!-- errors:start -->", "<!-- errors:end -->"


def _default_message(cls: type[MailprovError]) -> str:
    return (cls.__doc__ or "").strip().splitlines()[0]


def errors_table() -> str:
    """The Markdown table of every error: exit status, code, meaning, what to do."""
    lines = [
        "| exit status | code | meaning | what to do |",
        "|---|---|---|---|",
        "| 0 | | success | |",
        "| 1 | `internal` | an internal error (a bug); the traceback is in the error log | "
        "report it with `~/.local/state/mailprov/error.log`, or rerun with `--debug` |",
        "| 2 | `usage` | the command line is wrong (click's usage error) | see `--help` |",
    ]
    rows = sorted(
        (int(cls.exit_status), cls.code, _default_message(cls), cls.default_hint or "")
        for cls in all_errors()
        if cls is not MailprovError
    )
    for status, code, message, hint in rows:
        lines.append(f"| {status} | `{code}` | {message} | {hint.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def replace_block(text: str, block: str) -> str:
    """``text`` with the part between the markers replaced by ``block``."""
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{block}{END}{tail}"


def main(argv: list[str]) -> int:
    """``errors`` prints the table; ``errors --write FILE`` updates FILE between the markers."""
    if not argv or argv[0] != "errors":
        sys.stderr.write("usage: python -m mailprov.cli.docs errors [--write README.md]\n")
        return 2
    table = errors_table()
    if len(argv) == 3 and argv[1] == "--write":
        path = Path(argv[2])
        path.write_text(replace_block(path.read_text("utf-8"), table), "utf-8")
    else:
        sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
