"""``mailprov request open|verify|confirm|show|list|cancel|resend|challenge|unlock``."""

from __future__ import annotations

import base64
import binascii
import os
import sys
from pathlib import Path
from typing import Any

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import json_option
from mailprov.cli.output import emit, table
from mailprov.errors import InvalidValue, MissingOption
from mailprov.model import RequestKind, RequestState, Secret
from mailprov.services.request_notices import sender_for
from mailprov.system.files import create_secret_file
from mailprov.system.secrets import load_pepper

# services.provisioning is imported inside the commands: it pulls in SQLAlchemy, and
# 'mailprov --help' imports every command module.


@click.group()
def request() -> None:
    """Identity-gated provisioning requests (see the README, "Identity gate").

    Every state change is mailed to the request's recovery address; a notice that
    cannot be sent is a warning (stderr, or "warnings" in --json), not a failure.
    """


def gate(app: Any) -> tuple[bytes, Any]:
    """The code pepper and the sender, from the site config."""

    settings = app.settings
    pepper = load_pepper(settings.resolve_path(settings.identity.pepper_file))
    return pepper, sender_for(settings)


def _human(req: Any) -> str:
    data = req.to_json()
    return "\n".join(f"{k}: {v}" for k, v in data.items() if v not in (None, "", {}))


def _emit(data: dict[str, Any], human: str, warnings: tuple[str, ...]) -> None:
    """Print a result; notices that could not be sent are ``warnings`` (and lines on stderr)."""
    ctx = click.get_current_context()
    emit(ctx, {**data, "warnings": list(warnings)}, human)
    if not app_context().json:
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)


@request.command("open")
@click.argument("address")
@click.option(
    "--kind", type=click.Choice([k.value for k in RequestKind]), required=True, help="Mailbox kind."
)
@click.option(
    "--recovery",
    metavar="CONTACT",
    required=True,
    help="Recovery contact, where codes go: a mail address, or a +phone number when "
    "[notify] hook (an SMS gateway) is set. It becomes the mailbox's first recovery contact.",
)
@click.option("--name", default="", help="Owner's name; must match the verified identity.")
@click.option("--accept-terms", is_flag=True, help="Accept the terms of service (required).")
@json_option
def request_open(address: str, kind: str, recovery: str, name: str, accept_terms: bool) -> None:
    """Open a request for mailbox ADDRESS; prints its ID, nonce and challenge; tells --recovery."""
    from mailprov.services.provisioning import open_request

    app = app_context()
    req = open_request(
        app.store,
        app.settings,
        address=address,
        kind=kind,
        recovery=recovery,
        name=name,
        accept_terms=accept_terms,
        send=sender_for(app.settings),
        actor=app.actor(),
    )
    _emit(
        {"changed": True, "request": req.to_json()},
        f"request {req.id} opened for {req.address}\nnonce: {req.nonce}\n"
        f"challenge: {req.challenge}",
        req.warnings,
    )


def _read_file(path: Path, what: str) -> bytes:

    try:
        with path.open("rb") as handle:
            return handle.read(64 * 1024 + 1)
    except OSError as exc:
        raise InvalidValue(f"cannot read the {what} file {path}: {exc.strerror}") from None


@request.command("verify")
@click.argument("request_id", metavar="ID")
@click.option(
    "--token-file", type=click.Path(dir_okay=False, path_type=Path), help="Identity token file."
)
@click.option("--token-stdin", is_flag=True, help="Read the identity token from standard input.")
@click.option(
    "--certificate", type=click.Path(dir_okay=False, path_type=Path), help=".cer/.pem/.der file."
)
@click.option(
    "--signature",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Signature over the challenge (from 'identity sign-challenge').",
)
@json_option
def request_verify(
    request_id: str,
    token_file: Path | None,
    token_stdin: bool,
    certificate: Path | None,
    signature: Path | None,
) -> None:
    """Prove the requester's identity (token, or certificate + signature); then a code is sent."""
    from mailprov.services.provisioning import (
        normalise_id,
        verify_with_certificate,
        verify_with_token,
    )

    chosen = [bool(token_file), token_stdin, bool(certificate or signature)]
    if sum(chosen) != 1 or (certificate is None) != (signature is None):
        raise click.UsageError(
            "give one of --token-file, --token-stdin, or --certificate with --signature"
        )
    app = app_context()
    pepper, send = gate(app)
    rid = normalise_id(request_id)
    if certificate is not None and signature is not None:
        try:
            sig = base64.b64decode(_read_file(signature, "signature").strip(), validate=True)
        except (binascii.Error, ValueError):
            sig = b""
        req = verify_with_certificate(
            app.store,
            app.settings,
            rid,
            _read_file(certificate, "certificate"),
            sig,
            pepper=pepper,
            send=send,
            actor=app.actor(),
        )
    else:
        raw = (
            sys.stdin.read(16 * 1024)
            if token_stdin
            else _read_file(token_file, "token").decode(  # type: ignore[arg-type]
                "utf-8", "replace"
            )
        )
        req = verify_with_token(
            app.store, app.settings, rid, Secret(raw), pepper=pepper, send=send, actor=app.actor()
        )
    _emit(
        {"changed": True, "request": req.to_json(), "code_sent_to": req.recovery},
        f"request {req.id}: identity verified; a code was sent to {req.recovery}",
        req.warnings,
    )


def _read_code(code_stdin: bool) -> Any:

    if code_stdin:
        return Secret(sys.stdin.readline().strip())
    if not app_context().interactive:
        raise MissingOption(
            "the confirmation code is needed and there is no terminal to ask on",
            hint="pass --code-stdin and the code on standard input",
        )
    return Secret(click.prompt("Confirmation code", hide_input=True).strip())


@request.command("confirm")
@click.argument("request_id", metavar="ID")
@click.option("--code-stdin", is_flag=True, help="Read the code from standard input.")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="New file (created 0600) for the temporary password, instead of stdout.",
)
@json_option
def request_confirm(request_id: str, code_stdin: bool, password_file: Path | None) -> None:
    """Confirm with the code; creates the mailbox with a temporary password shown once."""
    from mailprov.services.provisioning import confirm, normalise_id

    app = app_context()
    if app.json and password_file is None:
        raise MissingOption(
            "with --json the temporary password is never printed",
            hint="pass --password-file FILE (created 0600)",
        )
    fd = create_secret_file(password_file) if password_file else None
    try:
        code = _read_code(code_stdin)
        pepper, send = gate(app)
        done = confirm(
            app.store,
            app.settings,
            normalise_id(request_id),
            code,
            pepper=pepper,
            send=send,
            actor=app.actor(),
        )
    except BaseException:
        if fd is not None:
            os.close(fd)
            password_file.unlink()  # type: ignore[union-attr]
        raise
    if fd is not None:
        with os.fdopen(fd, "w") as out:
            out.write(done.password.reveal() + "\n")
    mb = done.mailbox
    data = {
        "changed": True,
        "request": done.request.to_json(),
        "mailbox": mb.to_json(),
        "password_file": str(password_file) if password_file else None,
        "notice_sent": done.notice_sent,
    }
    shown = (
        f"temporary password written to {password_file}"
        if password_file
        else f"temporary password (shown once, change it within "
        f"{app.settings.passwords.temp_password_hours} h): {done.password.reveal()}"
    )
    _emit(
        data,
        f"request {done.request.id}: mailbox {mb.address} created\n{shown}",
        done.request.warnings,
    )


@request.command("show")
@click.argument("request_id", metavar="ID")
@json_option
def request_show(request_id: str) -> None:
    """Show one request: state, evidence, times."""
    from mailprov.services.provisioning import get_request

    req = get_request(app_context().store, request_id)
    emit(click.get_current_context(), {"request": req.to_json()}, _human(req))


@request.command("list")
@click.option("--state", type=click.Choice([s.value for s in RequestState]))
@json_option
def request_list(state: str | None) -> None:
    """List requests, newest first."""
    from mailprov.services.provisioning import list_requests

    found = list_requests(app_context().store, state=RequestState(state) if state else None)
    table(
        click.get_current_context(),
        {"requests": [r.to_json() for r in found]},
        ["id", "address", "kind", "state", "created"],
        [[r.id, r.address, r.kind, r.state, r.to_json()["created_at"]] for r in found],
    )


def _simple(request_id: str, action: str) -> None:
    from mailprov.services import provisioning

    app = app_context()
    rid = provisioning.normalise_id(request_id)
    if action == "unlock":
        req = provisioning.unlock(app.store, rid, actor=app.actor())
        human = f"request {req.id}: the requester's confirmation lock was cleared"
    elif action == "resend":
        pepper, send = gate(app)
        req = provisioning.resend(
            app.store, app.settings, rid, pepper=pepper, send=send, actor=app.actor()
        )
        human = f"request {req.id}: a new code was sent to {req.recovery}"
    else:
        send = sender_for(app.settings)
        if action == "cancel":
            req = provisioning.cancel(app.store, app.settings, rid, send=send, actor=app.actor())
            human = f"request {req.id} cancelled"
        else:
            req = provisioning.renew_challenge(
                app.store, app.settings, rid, send=send, actor=app.actor()
            )
            human = f"request {req.id}\nchallenge: {req.challenge}"
    _emit({"changed": True, "request": req.to_json()}, human, req.warnings)


@request.command("cancel")
@click.argument("request_id", metavar="ID")
@json_option
def request_cancel(request_id: str) -> None:
    """Cancel an unfinished request (its recovery address is told)."""
    _simple(request_id, "cancel")


@request.command("resend")
@click.argument("request_id", metavar="ID")
@json_option
def request_resend(request_id: str) -> None:
    """Send a new code (at most one a minute, five an hour)."""
    _simple(request_id, "resend")


@request.command("challenge")
@click.argument("request_id", metavar="ID")
@json_option
def request_challenge(request_id: str) -> None:
    """Issue a fresh certificate challenge (valid 5 minutes) for an open request."""
    _simple(request_id, "challenge")


@request.command("unlock")
@click.argument("request_id", metavar="ID")
@json_option
def request_unlock(request_id: str) -> None:
    """Administrator: clear the requester's confirmation lock (needed after 100 failures)."""
    _simple(request_id, "unlock")
