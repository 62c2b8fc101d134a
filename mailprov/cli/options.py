"""Options shared by several commands, and the password input rules (never on argv)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from mailprov.cli.context import AppContext, app_context
from mailprov.errors import MissingOption, PasswordPolicy
from mailprov.model import Secret

F = TypeVar("F", bound=Callable[..., Any])


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        app = ctx.find_object(AppContext)
        if app is not None:
            app.json = True


def json_option(func: F) -> F:
    """``--json``: print exactly one JSON document on stdout (errors too)."""
    return click.option(
        "--json",
        "_json",
        is_flag=True,
        expose_value=False,
        callback=_set_json,
        help="Print one JSON document on stdout.",
    )(func)


def password_options(func: F) -> F:
    """``--password-stdin`` / ``--generate``: the two ways to give a password besides the prompt."""
    func = click.option(
        "--generate",
        is_flag=True,
        help="Generate a password and show it once.",
    )(func)
    return click.option(
        "--password-stdin",
        is_flag=True,
        help="Read the password from the first line of standard input.",
    )(func)


def read_password(*, password_stdin: bool, generate: bool) -> Secret | None:
    """The password the user gave: from stdin, a hidden prompt typed twice, or None to generate.

    Raises:
        MissingOption: no TTY (or --non-interactive) and neither flag given.
    """
    if password_stdin and generate:
        raise click.UsageError("use either --password-stdin or --generate, not both")
    if generate:
        return None
    if password_stdin:
        line = sys.stdin.readline()
        value = line[:-1] if line.endswith("\n") else line
        value = value.removesuffix("\r")
        if not value:
            raise PasswordPolicy("no password was given on standard input")
        return Secret(value)
    if not app_context().interactive:
        raise MissingOption(
            "a password is needed and there is no terminal to ask on",
            hint="pass --password-stdin (and the password on stdin) or --generate",
        )
    value = click.prompt("Password", hide_input=True, confirmation_prompt="Repeat password")
    return Secret(value)
