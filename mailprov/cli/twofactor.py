"""``mailprov mailbox 2fa show|reset`` and ``mailprov mailbox app-password list|revoke``.

The owner turns two-factor authentication on and makes app passwords in
``mailprov serve``; the administrator sees the state, resets it for an owner who
lost the device and the recovery codes, and revokes app passwords.
"""

from __future__ import annotations

import datetime as dt

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import json_option
from mailprov.cli.output import emit, table, yes_no

DRY_RUN_HELP = (
    'Print the same report ("changed" = would change, with "dry_run": true); write nothing.'
)


def _when(at: int | None) -> str:
    if at is None:
        return "-"
    return dt.datetime.fromtimestamp(at, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


@click.group("2fa")
def two_factor() -> None:
    """Two-factor authentication of a mailbox's owner (turned on in 'mailprov serve')."""


@two_factor.command("show")
@click.argument("address")
@json_option
def two_factor_show(address: str) -> None:
    """Whether two-factor authentication is on for ADDRESS, with its recovery codes left,
    a lock after wrong codes, and the number of app passwords (never a secret)."""
    from mailprov.services.twofactor import admin_status

    app = app_context()
    found = admin_status(app.store, address, now=app.actor().now)
    lines = [
        f"address: {found.address}",
        f"enabled: {yes_no(found.enabled)}"
        + (f" (since {_when(found.enabled_at)})" if found.enabled else ""),
        f"set-up pending: {yes_no(found.pending)}",
        f"recovery codes left: {found.recovery_codes_left}",
        f"second step locked until: {_when(found.locked_until)}",
        f"app passwords: {found.app_passwords}",
    ]
    emit(click.get_current_context(), {"two_factor": found.to_json()}, "\n".join(lines))


@two_factor.command("reset")
@click.argument("address")
@click.option("--dry-run", is_flag=True, help=DRY_RUN_HELP)
@json_option
def two_factor_reset(address: str, dry_run: bool) -> None:
    """Turn two-factor authentication off for ADDRESS (lost device and recovery codes).

    The secret and the recovery codes are deleted, sessions waiting for a code end, the
    main password opens mail clients again, and the owner's recovery contacts are told.
    App passwords stay ('mailbox app-password revoke').
    """
    from mailprov.services.twofactor import admin_reset

    app = app_context()
    shown = str(_address(address))
    changed = admin_reset(app.store, app.settings, address, actor=app.actor(), dry_run=dry_run)
    if not changed:
        text = f"{shown}: two-factor authentication is not on (nothing to reset)"
    else:
        text = f"{shown}: two-factor authentication {'would be' if dry_run else 'was'} reset"
    emit(
        click.get_current_context(),
        {"changed": changed, "dry_run": dry_run, "address": shown},
        text,
    )


def _address(raw: str) -> str:
    from mailprov.rules.addresses import parse_address

    return str(parse_address(raw))


@click.group("app-password")
def app_password() -> None:
    """App passwords: what mail clients log in with when two-factor authentication is on."""


@app_password.command("list")
@click.argument("address")
@json_option
def app_password_list(address: str) -> None:
    """List the app passwords of ADDRESS: id, label, created (never the password)."""
    from mailprov.services.app_passwords import admin_list

    app = app_context()
    shown, found = admin_list(app.store, address)
    table(
        click.get_current_context(),
        {"address": shown, "app_passwords": [p.to_json() for p in found]},
        ["id", "label", "created", "last used"],
        [[p.id, p.label, _when(p.created_at), _when(p.last_used_at)] for p in found],
    )


@app_password.command("revoke")
@click.argument("address")
@click.argument("which", metavar="[ID|LABEL]", required=False)
@click.option("--all", "revoke_all", is_flag=True, help="Revoke every app password of ADDRESS.")
@click.option("--dry-run", is_flag=True, help=DRY_RUN_HELP)
@json_option
def app_password_revoke(address: str, which: str | None, revoke_all: bool, dry_run: bool) -> None:
    """Revoke one app password of ADDRESS, by its id or label (or --all of them).

    The next login with it fails; the owner's recovery contacts are told.
    """
    from mailprov.services.app_passwords import admin_revoke

    if (which is None) == (not revoke_all):
        raise click.UsageError("give either an ID or LABEL, or --all")
    app = app_context()
    shown, done = admin_revoke(
        app.store, app.settings, address, which, actor=app.actor(), dry_run=dry_run
    )
    verb = "would revoke" if dry_run else "revoked"
    lines = [f"{shown}: {verb} {p.id} ({p.label})" for p in done] or [
        f"{shown}: no app passwords (nothing to revoke)"
    ]
    emit(
        click.get_current_context(),
        {
            "changed": bool(done),
            "dry_run": dry_run,
            "address": shown,
            "revoked": [p.to_json() for p in done],
        },
        "\n".join(lines),
    )
