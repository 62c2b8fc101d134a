"""The click group, its global options, lazy sub-commands, and the one error boundary."""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

import click

from mailprov import __version__
from mailprov.cli.context import AppContext
from mailprov.errors import ExitStatus, MailprovError

#: Sub-commands, loaded only when used: name -> "module:attribute".
COMMANDS: dict[str, str] = {
    "init": "mailprov.cli.site:init",
    "config": "mailprov.cli.site:config",
    "db": "mailprov.cli.site:db",
    "domain": "mailprov.cli.domain:domain",
    "mailbox": "mailprov.cli.mailbox:mailbox",
    "alias": "mailprov.cli.alias:alias",
    "audit": "mailprov.cli.audit:audit",
    # configuration management: the site as one declared state, backup and restore
    "apply": "mailprov.cli.apply:apply",
    "export": "mailprov.cli.apply:export",
    "backup": "mailprov.cli.backup:backup",
    "restore": "mailprov.cli.backup:restore",
    # config rendering and deploy
    "deploy": "mailprov.cli.deploy:deploy",
    "tls": "mailprov.cli.tls:tls",
    "sweep": "mailprov.cli.sweep:sweep",
    # the identity gate
    "request": "mailprov.cli.request:request",
    "identity": "mailprov.cli.identity:identity",
    # the local relay for test rigs
    "relay": "mailprov.cli.relay:relay",
    # DNS, DKIM, client configuration and checks
    "dns": "mailprov.cli.dns:dns",
    "dkim": "mailprov.cli.dkim:dkim",
    "client-config": "mailprov.cli.clientconfig:client_config",
    "check": "mailprov.cli.check:check",
    "doctor": "mailprov.cli.doctor:doctor",
    # the owner's side
    "serve": "mailprov.cli.serve:serve",
    "token": "mailprov.cli.token:token",
}

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class MailprovGroup(click.Group):
    """A group whose sub-commands are imported on first use, and whose ``main`` is the
    error boundary: MailprovError -> one line (or JSON) and its exit status; anything
    else -> 'internal error' with the traceback in a log file (on screen with --debug).
    """

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, _, attr = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attr)
            if not isinstance(command, click.Command):  # pragma: no cover - wiring error
                msg = f"{self.lazy[cmd_name]} is not a click command"
                raise TypeError(msg)
            return command
        return super().get_command(ctx, cmd_name)

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> NoReturn:  # type: ignore[override]
        argv = list(sys.argv[1:] if args is None else args)
        as_json = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
        debug = "--debug" in argv
        extra["standalone_mode"] = False
        self.as_json = as_json  # read by --version, which runs before --json is parsed
        try:
            result = super().main(args=argv, prog_name=prog_name or "mailprov", **extra)
            status = result if isinstance(result, int) else 0
        except MailprovError as exc:
            status = _report(exc, as_json=as_json, debug=debug)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            status = 0
        except click.UsageError as exc:
            status = _report_usage(exc, as_json=as_json)
        except click.exceptions.Exit as exc:
            status = exc.exit_code
        except (click.Abort, KeyboardInterrupt):
            from mailprov.errors import Interrupted

            status = _report(Interrupted(), as_json=as_json, debug=False)
        except BrokenPipeError:
            status = int(ExitStatus.OK)
        except click.ClickException as exc:
            exc.show()
            status = exc.exit_code
        except Exception as exc:
            status = _report_internal(exc, as_json=as_json, debug=debug)
        sys.exit(status)


def _report(exc: MailprovError, *, as_json: bool, debug: bool) -> int:
    if as_json:
        from mailprov.cli.output import dump_json

        click.echo(dump_json(exc.to_json()))
    else:
        prefix = f"request {exc.request_id}: " if exc.request_id else ""
        line = f"mailprov: error: {prefix}{exc.message}"
        if exc.hint:
            line += f" — {exc.hint}"
        suggestions = exc.details.get("suggestions")
        if suggestions:
            line += " (free: " + ", ".join(suggestions) + ")"
        click.echo(line, err=True)
        problems = exc.details.get("problems")
        if isinstance(problems, list):
            for problem in problems[:50]:
                click.echo(f"  {problem}", err=True)
    if debug:
        traceback.print_exc()
    return int(exc.exit_status)


def _report_usage(exc: click.UsageError, *, as_json: bool) -> int:
    if as_json:
        from mailprov.cli.output import dump_json

        body = {
            "code": "usage",
            "message": exc.format_message(),
            "exit_status": int(ExitStatus.USAGE),
        }
        click.echo(dump_json({"error": body}))
    else:
        exc.show()
    return int(ExitStatus.USAGE)


def error_log_path() -> Path:
    """Where internal errors' tracebacks are written."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mailprov" / "error.log"


def _report_internal(exc: BaseException, *, as_json: bool, debug: bool) -> int:
    path = error_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} mailprov {__version__}\n")
            log.write("".join(traceback.format_exception(exc)))
        where = f"details in {path}"
    except OSError:
        where = "run again with --debug for details"
    message = f"internal error ({type(exc).__name__}); {where}"
    if as_json:
        from mailprov.cli.output import dump_json

        body = {"code": "internal", "message": message, "exit_status": int(ExitStatus.INTERNAL)}
        click.echo(dump_json({"error": body}))
    else:
        click.echo(f"mailprov: {message}", err=True)
    if debug:
        traceback.print_exception(exc)
    return int(ExitStatus.INTERNAL)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    if getattr(ctx.command, "as_json", False):
        info = {"name": "mailprov", "version": __version__, "python": platform.python_version()}
        click.echo(json.dumps(info))
    else:
        click.echo(f"mailprov {__version__}")
    ctx.exit(0)


@click.group(cls=MailprovGroup, lazy=COMMANDS, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--version",
    "-V",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit (a JSON document with --json).",
)
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    help="Site config. Default: $MAILPROV_CONFIG, ./mailprov.toml, /etc/mailprov/mailprov.toml.",
)
@click.option("--store", "store_url", metavar="URL", help="Store URL (overrides store.url).")
@click.option("--actor", metavar="NAME", help="Name recorded in the audit log (default: OS user).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@click.option("--non-interactive", is_flag=True, help="Never prompt; a missing answer is an error.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(
    ctx: click.Context,
    config_file: str | None,
    store_url: str | None,
    actor: str | None,
    as_json: bool,
    non_interactive: bool,
    debug: bool,
) -> None:
    """Provision and check Postfix + Dovecot mail service.

    Exit statuses are listed in the README ("Exit statuses"); every command
    takes --json for scripts.
    """
    app = AppContext(
        config_file=config_file,
        store_url=store_url,
        actor_name=actor,
        json=as_json,
        debug=debug,
        non_interactive=non_interactive,
    )
    ctx.obj = app
    ctx.call_on_close(app.close)
