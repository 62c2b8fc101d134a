"""``mailprov token create|list|revoke``: bearer tokens of the admin HTTP API."""

from __future__ import annotations

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import dry_run_option, json_option
from mailprov.cli.output import emit, table

SCOPES = ("accounts:read", "accounts:write", "deploy")


def _duration(value: str) -> int:
    """'90d', '12h', '30m' or seconds, as seconds."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    text = value.strip().lower()
    unit = units.get(text[-1:])
    number = text[:-1] if unit else text
    if not number.isdigit() or int(number) == 0:
        raise click.BadParameter("use a number with d, h, m or s, e.g. 90d", param_hint="--expires")
    return int(number) * (unit or 1)


@click.group()
def token() -> None:
    """Bearer tokens for the admin HTTP API of 'mailprov serve' (/api/v1/admin)."""


@token.command("create")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(SCOPES),
    help="What the token may do (repeatable); accounts:write includes accounts:read.",
)
@click.option("--label", default="", help="A note saying what the token is for.")
@click.option("--expires", metavar="DURATION", help="Lifetime such as 90d or 12h (default: none).")
@json_option
def token_create(scopes: tuple[str, ...], label: str, expires: str | None) -> None:
    """Create a token; it is shown once (only its hash is kept)."""
    from mailprov.services import tokens

    app = app_context()
    secret, made = tokens.create(
        app.store,
        list(scopes),
        actor=app.actor(),
        label=label,
        expires_in=_duration(expires) if expires else None,
    )
    emit(
        click.get_current_context(),
        {"changed": True, "token": secret.reveal(), **made.to_json()},
        f"token {made.id} ({' '.join(made.scopes)}), shown once, store it now:\n{secret.reveal()}",
    )


@token.command("list")
@json_option
def token_list() -> None:
    """List tokens (never their secrets)."""
    from mailprov.services import tokens

    found = tokens.list_tokens(app_context().store)
    table(
        click.get_current_context(),
        {"tokens": [t.to_json() for t in found]},
        ["id", "scopes", "label", "expires_at", "last_used_at", "revoked"],
        [
            [
                t.id,
                " ".join(t.scopes),
                t.label,
                t.expires_at,
                t.last_used_at,
                t.revoked_at is not None,
            ]
            for t in found
        ],
    )


@token.command("revoke")
@click.argument("token_id", metavar="ID")
@click.option(
    "--missing-ok", is_flag=True, help="Succeed (changed: false) if there is no such token."
)
@dry_run_option
@json_option
def token_revoke(token_id: str, missing_ok: bool) -> None:
    """Revoke token ID at once; requests with it are refused from now on."""
    from mailprov.services import tokens

    app = app_context()
    changed = tokens.revoke(app.store, token_id, actor=app.actor(), missing_ok=missing_ok)
    emit(
        click.get_current_context(),
        {"changed": changed, "id": token_id},
        f"token {token_id} revoked" if changed else f"token {token_id} was not live",
    )
