"""``mailprov mailbox contact list|add|remove``: a mailbox's recovery contacts, for the admin."""

from __future__ import annotations

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import json_option
from mailprov.cli.output import emit, table, yes_no

# services.contacts is imported inside the commands: it pulls in SQLAlchemy, and
# 'mailprov --help' imports every command module.


@click.group()
def contact() -> None:
    """Recovery contacts: where reset codes and security notices go (verified ones only)."""


@contact.command("list")
@click.argument("address")
@json_option
def contact_list(address: str) -> None:
    """List the recovery contacts of mailbox ADDRESS, verified or waiting for their code."""
    from mailprov.services.contacts import list_contacts

    app = app_context()
    found = list_contacts(app.store, address)
    table(
        click.get_current_context(),
        {"address": address, "contacts": [c.to_json() for c in found]},
        ["contact", "kind", "verified", "since"],
        [
            [c.contact, c.kind.value, yes_no(c.verified_at is not None), c.to_json()["created_at"]]
            for c in found
        ],
    )


@contact.command("add")
@click.argument("address")
@click.argument("contact_value", metavar="CONTACT")
@click.option(
    "--verified",
    is_flag=True,
    help="Mark CONTACT verified now, without a code (you vouch for it; the audit log says so). "
    "Without it, a code is sent to CONTACT and the owner confirms it when signed in.",
)
@click.option("--dry-run", is_flag=True, help="Check and report; change nothing, send nothing.")
@json_option
def contact_add(address: str, contact_value: str, verified: bool, dry_run: bool) -> None:
    """Add CONTACT (a mail address, or +phone with [notify] hook) to mailbox ADDRESS.

    A verified contact gets reset codes and security notices; the other contacts
    are told of the addition.
    """
    from mailprov.services.contacts import add_contact
    from mailprov.system.secrets import load_pepper

    app = app_context()
    settings = app.settings
    actor = app.actor()
    pepper = (
        b""
        if verified or dry_run
        else load_pepper(settings.resolve_path(settings.identity.pepper_file))
    )
    change = add_contact(
        app.store,
        settings,
        pepper,
        address,
        contact_value,
        now=actor.now,
        actor=actor.name,
        verified=verified,
        dry_run=dry_run,
    )
    shown = change.contact
    if not change.changed:
        human = f"{shown.contact} is already a verified recovery contact"
    elif dry_run:
        human = f"would add {shown.contact} ({shown.kind.value})"
    elif verified:
        human = f"added {shown.contact} ({shown.kind.value}), verified"
    else:
        human = f"added {shown.contact} ({shown.kind.value}); a code was sent to it for the owner"
    emit(
        click.get_current_context(),
        {
            "changed": change.changed and not dry_run,
            "dry_run": dry_run,
            "address": address,
            "contact": shown.to_json(),
        },
        human,
    )


@contact.command("remove")
@click.argument("address")
@click.argument("contact_value", metavar="CONTACT")
@click.option(
    "--allow-last",
    is_flag=True,
    help="Remove it even if it is the last verified contact (then only an administrator can "
    "reset the password).",
)
@click.option(
    "--missing-ok", is_flag=True, help="Succeed (changed: false) if CONTACT is not a contact."
)
@click.option("--dry-run", is_flag=True, help="Check and report; change nothing.")
@json_option
def contact_remove(
    address: str, contact_value: str, allow_last: bool, missing_ok: bool, dry_run: bool
) -> None:
    """Remove CONTACT from mailbox ADDRESS; a verified one is told, and the others too."""
    from mailprov.services.contacts import remove_contact

    app = app_context()
    actor = app.actor()
    change = remove_contact(
        app.store,
        app.settings,
        address,
        contact_value,
        now=actor.now,
        actor=actor.name,
        allow_last=allow_last,
        missing_ok=missing_ok,
        dry_run=dry_run,
    )
    if change is None:
        emit(
            click.get_current_context(),
            {"changed": False, "dry_run": dry_run, "address": address, "removed": None},
            f"{contact_value} is not a recovery contact of {address} (nothing to remove)",
        )
        return
    verb = "would remove" if dry_run else "removed"
    emit(
        click.get_current_context(),
        {
            "changed": not dry_run,
            "dry_run": dry_run,
            "address": address,
            "removed": change.contact.to_json(),
        },
        f"{verb} {change.contact.contact} from {address}",
    )
