"""Documentation generated from the code: ``python -m mailprov.cli.docs errors|man``.

The README's exit-status table is this module's output between the markers
``<!-- errors:start -->`` and ``<!-- errors:end -->``; ``--write README.md``
replaces it in place, and a test fails when the README is stale.

``man --out DIR`` writes one man page (section 1) per command from the click
definitions themselves: ``mailprov.1`` and ``mailprov-mailbox-add.1`` and so on,
so ``--help`` and the man pages cannot disagree. ``mandoc -Tlint`` checks them
in the tests.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

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


def _roff(text: str) -> str:
    """Text made safe for roff: backslashes doubled, no line starting with a control char."""
    out = []
    for line in text.replace("\\", "\\e").replace("-", "\\-").splitlines():
        stripped = line.strip()
        out.append("\\&" + stripped if stripped[:1] in {".", "'"} else stripped)
    return "\n".join(out)


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


def man_pages(root: click.Command, date: str, version: str) -> dict[str, str]:
    """Every command's man page, by file name (``mailprov-mailbox-add.1``)."""
    pages: dict[str, str] = {}

    def walk(command: click.Command, path: list[str], parent: click.Context | None) -> None:
        ctx = click.Context(command, info_name=path[-1], parent=parent)
        name = "-".join(path)
        pages[f"{name}.1"] = _page(command, ctx, path, date, version)
        if isinstance(command, click.Group):
            for sub in command.list_commands(ctx):
                child = command.get_command(ctx, sub)
                if child is not None and not child.hidden:
                    walk(child, [*path, sub], ctx)

    walk(root, ["mailprov"], None)
    return pages


def _page(
    command: click.Command, ctx: click.Context, path: list[str], date: str, version: str
) -> str:
    title = "-".join(path).upper()
    help_text = command.help or command.short_help or ""
    summary = command.get_short_help_str(limit=80) or " ".join(path)
    lines = [
        f'.TH "{title}" "1" "{date}" "mailprov {version}" "mailprov manual"',
        ".SH NAME",
        f"{_roff('-'.join(path))} \\- {_roff(summary)}",
        ".SH SYNOPSIS",
        f".B {_roff(' '.join(path))}",
        _roff(" ".join(command.collect_usage_pieces(ctx))),
        ".SH DESCRIPTION",
    ]
    for i, paragraph in enumerate(_paragraphs(help_text) or [summary]):
        lines += [".PP"] if i else []
        lines.append(_roff(paragraph))
    options = [p for p in command.get_params(ctx) if isinstance(p, click.Option) and not p.hidden]
    if options:
        lines.append(".SH OPTIONS")
        for option in options:
            record = option.get_help_record(ctx)
            if record is None:
                continue
            lines += [".TP", f".B {_roff(record[0])}", _roff(record[1] or "")]
    if isinstance(command, click.Group):
        children = [(s, command.get_command(ctx, s)) for s in command.list_commands(ctx)]
        shown = [(s, c) for s, c in children if c is not None and not c.hidden]
        lines.append(".SH COMMANDS")
        for sub, child in shown:
            lines += [".TP", f".B {_roff(sub)}", _roff(child.get_short_help_str(limit=80))]
        lines.append(".SH SEE ALSO")
        refs = [f"\\fB{_roff('-'.join([*path, s]))}\\fR(1)" for s, _ in shown]
        lines.append(",\n".join(refs))
    lines += [
        ".SH EXIT STATUS",
        "0 on success; the README's exit-status table lists every other status.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """``errors [--write FILE]``: the exit-status table; ``man --out DIR``: the man pages."""
    if len(argv) == 3 and argv[0] == "man" and argv[1] == "--out":
        from mailprov import __version__
        from mailprov.cli.app import cli

        out = Path(argv[2])
        out.mkdir(parents=True, exist_ok=True)
        epoch = int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))
        date = time.strftime("%Y-%m-%d", time.gmtime(epoch))
        for name, text in man_pages(cli, date, __version__).items():
            (out / name).write_text(text, "utf-8")
        return 0
    if not argv or argv[0] != "errors":
        sys.stderr.write(
            "usage: python -m mailprov.cli.docs errors [--write README.md] | man --out DIR\n"
        )
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
