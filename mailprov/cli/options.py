"""Options shared by several commands, and the password input rules (never on argv)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
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


def _set_rehearsal(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        app = ctx.find_object(AppContext)
        if app is not None:
            app.rehearsal = True


def dry_run_option(func: F) -> F:
    """``--dry-run`` for a command that only changes the store: it runs every check and
    reports what it would change ("changed" as a real run would say, "dry_run": true), and
    its transactions are rolled back (``Store.rehearsal``), so nothing is kept.
    """
    return click.option(
        "--dry-run",
        "_dry_run",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_rehearsal,
        help="Check and report what would change; keep nothing.",
    )(func)


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
    """``--password-stdin`` / ``--password-hash-stdin`` / ``--generate``: the ways to give a
    password besides the prompt.
    """
    func = click.option(
        "--password-hash-stdin",
        is_flag=True,
        help="Read a ready {SCHEME}hash (Dovecot's form, e.g. {ARGON2ID}$argon2id$...) "
        "from the first line of standard input; it is checked, not re-hashed.",
    )(func)
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


@dataclass(frozen=True)
class GivenPassword:
    """What the user gave: a clear password, a ready hash, or neither (generate one)."""

    clear: Secret | None = None
    hash: str | None = None


def _stdin_line(what: str) -> str:
    line = sys.stdin.readline()
    value = (line[:-1] if line.endswith("\n") else line).removesuffix("\r")
    if not value:
        raise PasswordPolicy(f"no {what} was given on standard input")
    return value


def read_password(
    *, password_stdin: bool, generate: bool, password_hash_stdin: bool = False
) -> GivenPassword:
    """The password the user gave: from stdin (clear or hashed), a hidden prompt typed
    twice, or neither to generate one.

    Raises:
        MissingOption: no TTY (or --non-interactive) and no flag given.
    """
    if password_stdin + generate + password_hash_stdin > 1:
        raise click.UsageError("use one of --password-stdin, --password-hash-stdin and --generate")
    if generate:
        return GivenPassword()
    if password_hash_stdin:
        return GivenPassword(hash=_stdin_line("password hash"))
    if password_stdin:
        return GivenPassword(Secret(_stdin_line("password")))
    if not app_context().interactive:
        raise MissingOption(
            "a password is needed and there is no terminal to ask on",
            hint="pass --password-stdin (and the password on stdin), --password-hash-stdin "
            "or --generate",
        )
    value = click.prompt("Password", hide_input=True, confirmation_prompt="Repeat password")
    return GivenPassword(Secret(value))


class Renamed(click.Option):
    """An option with old spellings that still work for one release but are not in --help.

    ``@click.option("--out", "out", cls=Renamed, old=("--output", "-o"))``: the parser
    accepts every name, ``--help`` shows only the new ones. CONTRIBUTING's spelling table
    lists each rename and the release that drops the old name.
    """

    def __init__(self, *args: Any, old: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.old = old
        self.opts.extend(old)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        shown = [o for o in self.opts if o not in self.old]
        kept, self.opts = self.opts, shown
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = kept


def _completer(kind: str) -> Callable[[click.Context, click.Parameter, str], list[str]]:
    """Shell completion of existing names of ``kind`` from the site's store.

    It runs inside the user's shell on every TAB, so it never prints an error: a
    missing config or an unreachable store simply completes nothing.
    """

    def complete(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
        from mailprov.errors import MailprovError
        from mailprov.services.completion import names
        from mailprov.settings import load_settings
        from mailprov.store import open_store

        root = ctx.find_root().params
        try:
            settings = load_settings(
                config_file=root.get("config_file"), flags={"store.url": root.get("store_url")}
            )
            store = open_store(settings.store.url)
        except MailprovError:
            return []
        try:
            return names(store, kind, incomplete)  # type: ignore[arg-type]
        except MailprovError:
            return []
        finally:
            store.close()

    return complete


complete_domains = _completer("domain")
complete_mailboxes = _completer("mailbox")
complete_aliases = _completer("alias")


def spam_options(default_from: str) -> Callable[[F], F]:
    """``--spam-threshold SCORE|default``, ``--spam-to-junk/--no-spam-to-junk`` and
    ``--spam-to-junk-default`` (README, "Spam settings"); ``default_from`` names the level
    whose value 'default' takes."""

    def decorate(func: F) -> F:
        func = click.option(
            "--spam-to-junk-default",
            is_flag=True,
            help=f"Take 'move spam to Junk' from {default_from} default.",
        )(func)
        func = click.option(
            "--spam-to-junk/--no-spam-to-junk",
            default=None,
            help="File mail at or above the spam threshold into Junk (or leave it in the inbox).",
        )(func)
        return click.option(
            "--spam-threshold",
            metavar="SCORE|default",
            help="rspamd score from which mail is spam (above 0, two decimals, below "
            f"[rspamd] reject_score); 'default': {default_from}.",
        )(func)

    return decorate


def spam_values(
    threshold: str | None, to_junk: bool | None, to_junk_default: bool
) -> tuple[Any, Any]:
    """The spam options as the services take them (None: leave alone; DEFAULT: clear).

    Raises:
        InvalidValue: the threshold is not a score from 0.01 below the reject score.
    """
    from mailprov.rules.spam import DEFAULT
    from mailprov.services.spam import checked_threshold

    if to_junk_default and to_junk is not None:
        msg = "give --spam-to-junk/--no-spam-to-junk or --spam-to-junk-default, not both"
        raise click.UsageError(msg)
    if threshold is not None and threshold.strip().lower() != DEFAULT:
        threshold_value: Any = checked_threshold(app_context().settings, threshold.strip())
    else:
        threshold_value = None if threshold is None else DEFAULT
    return threshold_value, DEFAULT if to_junk_default else to_junk
