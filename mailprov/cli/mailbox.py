"""``mailprov mailbox add|list|show|passwd|set|disable|enable|remove|import``
(and ``2fa``, ``app-password`` from :mod:`mailprov.cli.twofactor`, ``contact``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mailprov.cli.contact import contact
from mailprov.cli.context import app_context
from mailprov.cli.move import move
from mailprov.cli.options import (
    Renamed,
    complete_mailboxes,
    dry_run_option,
    json_option,
    password_options,
    read_password,
    spam_options,
    spam_values,
)
from mailprov.cli.output import emit, table, yes_no
from mailprov.cli.progress import progress_bar
from mailprov.system.children import kill_self

if TYPE_CHECKING:
    from mailprov.services.bulk import Checkpoint

#: The crash tests' hook, and the only one: with this variable naming a step of
#: ``mailbox import`` (``mailprov.services.bulk.STEPS``), the process kills itself
#: with SIGKILL on reaching it (tests/integration/test_import_crash.py); ``move:STAGE``
#: does the same after a stage of ``mailbox move`` (cli/move.py).
KILL_AT_ENV = "MAILPROV_TEST_KILL_AT"


@click.group()
def mailbox() -> None:
    """Mailboxes: addresses that store mail and log in."""


mailbox.add_command(contact)
mailbox.add_command(move)


def _show_generated(data: dict[str, object], password: str | None, address: str) -> str:
    """Put a generated password in the result (shown once) and say so to a person."""
    if password is None:
        return ""
    data["password"] = password
    return f"\npassword for {address} (shown once, store it now): {password}"


def _exists_as_given(
    address: str, name: str | None, quota_bytes: int | None, backend: str | None
) -> bool:
    """Report an existing mailbox with these attributes as unchanged (``add --exist-ok``)."""
    from mailprov.errors import Conflict
    from mailprov.services.accounts import get_mailbox
    from mailprov.services.mailbox_state import existing_mailbox

    app = app_context()
    if not existing_mailbox(app.store, address, display_name=name, quota_bytes=quota_bytes):
        return False
    found = get_mailbox(
        app.store,
        address,
        app.settings.passwords,
        now=app.actor().now,
        default_backend=app.settings.cluster.default_home(),
    )
    if backend is not None and backend != found.home:
        raise Conflict(
            f"mailbox {found.address} exists with another home: {found.home or 'this host'} "
            f"(given: {backend})",
            hint=f"a mailbox changes its home with 'mailprov mailbox move {found.address}'",
            differing={"backend": {"before": found.home or None, "after": backend}},
        )
    emit(
        click.get_current_context(),
        {"changed": False, "mailbox": found.to_json()},
        f"mailbox {found.address} exists",
    )
    return True


@mailbox.command("add")
@click.argument("address")
@click.option("--name", help="Display name (default: none).")
@click.option("--quota", metavar="SIZE", help="Quota such as 2G or 500M; 0 = unlimited.")
@click.option(
    "--temporary",
    is_flag=True,
    help="The password must be changed at first login and expires (passwords.temp_password_hours).",
)
@click.option(
    "--exist-ok",
    is_flag=True,
    help="Succeed (changed: false) if ADDRESS is a mailbox with the --name, --quota and "
    "--backend given "
    "(those omitted are not compared; the password is never compared, read or generated); "
    "exit 91 (conflict) if they differ.",
)
@click.option(
    "--backend",
    metavar="NAME",
    help="Home backend, one of [cluster] backends (default: the domain's, else the site's "
    "[cluster] default_backend). Kept in the mailbox: later changes of those defaults do "
    "not move it.",
)
@password_options
@dry_run_option
@json_option
def mailbox_add(
    address: str,
    name: str | None,
    quota: str | None,
    temporary: bool,
    exist_ok: bool,
    backend: str | None,
    password_stdin: bool,
    generate: bool,
    password_hash_stdin: bool,
) -> None:
    """Create mailbox ADDRESS. The password comes from --password-stdin, --password-hash-stdin,
    --generate or a prompt.
    """
    from mailprov.rules.sizes import parse_size
    from mailprov.services.accounts import (
        add_mailbox,
        check_available,
        prepare_password,
    )
    from mailprov.services.homes import new_home

    app = app_context()
    settings = app.settings
    given_quota = parse_size(quota) if quota is not None else None
    if exist_ok and _exists_as_given(address, name, given_quota, backend):
        return
    quota_bytes = (
        given_quota if given_quota is not None else parse_size(settings.accounts.default_quota)
    )
    parsed = check_available(app.store, address)
    home = new_home(app.store, parsed.domain, backend, settings.cluster)
    given = read_password(
        password_stdin=password_stdin, generate=generate, password_hash_stdin=password_hash_stdin
    )
    new = prepare_password(
        settings.passwords, parsed, password=given.clear, password_hash=given.hash
    )
    hours = settings.passwords.temp_password_hours if temporary else None
    made = add_mailbox(
        app.store,
        address,
        new,
        actor=app.actor(),
        display_name=name or "",
        quota_bytes=quota_bytes,
        temporary_hours=hours,
        backend=home,
    )
    data: dict[str, object] = {"changed": True, "mailbox": made.to_json()}
    shown = _show_generated(data, new.generated.reveal() if new.generated else None, made.address)
    emit(click.get_current_context(), data, f"added mailbox {made.address}{shown}")


@mailbox.command("list")
@click.option("--domain", metavar="DOMAIN", help="Only mailboxes of this domain.")
@click.option(
    "--limit", type=click.IntRange(min=1), help="At most this many (a page; default: all)."
)
@click.option(
    "--after",
    metavar="ADDRESS",
    help="Only addresses after this one: pass the last address of a page (JSON: next_after).",
)
@json_option
def mailbox_list(domain: str | None, limit: int | None, after: str | None) -> None:
    """List mailboxes by address; with --limit, one page (--after for the next)."""
    from mailprov.services.accounts import list_mailboxes

    app = app_context()
    found = list_mailboxes(
        app.store,
        app.settings.passwords,
        now=app.actor().now,
        domain=domain,
        limit=limit,
        after=after,
        default_backend=app.settings.cluster.default_home(),
    )
    docs = [m.to_json() for m in found]
    columns = ["mailbox", "name", "quota", "active", "must change"]
    rows = [
        [j["unicode"], j["name"], j["quota"], yes_no(j["active"]), yes_no(j["must_change"])]
        for j in docs
    ]
    if app.settings.cluster.backends:  # a site on several hosts: where each one lives
        columns.append("home")
        for row, j in zip(rows, docs, strict=True):
            row.append(j["home"] + (f" ({j['home_from']}'s)" if j["home_inherited"] else ""))
    data: dict[str, object] = {"mailboxes": docs}
    if limit is not None:
        data["next_after"] = docs[-1]["address"] if len(docs) == limit else None
    table(click.get_current_context(), data, columns, rows)


@mailbox.command("show")
@click.argument("address", shell_complete=complete_mailboxes)
@json_option
def mailbox_show(address: str) -> None:
    """Show one mailbox (never its password hash)."""
    from mailprov.services.accounts import get_mailbox
    from mailprov.services.spam import mailbox_spam

    app = app_context()
    found = get_mailbox(
        app.store,
        address,
        app.settings.passwords,
        now=app.actor().now,
        default_backend=app.settings.cluster.default_home(),
    ).to_json()
    spam = mailbox_spam(app.store, app.settings, address)
    found["spam"] = {"own": spam.to_json()["own"], **spam.effective.to_json()}
    emit(
        click.get_current_context(),
        {"mailbox": found},
        "\n".join(f"{k}: {v}" for k, v in found.items() if k != "spam")
        + f"\nspam threshold: {spam.effective.threshold:g} ({spam.effective.threshold_from})"
        + f"\nspam to Junk: {yes_no(spam.effective.to_junk)} ({spam.effective.to_junk_from})",
    )


@mailbox.command("passwd")
@click.argument("address", shell_complete=complete_mailboxes)
@password_options
@dry_run_option
@json_option
def mailbox_passwd(
    address: str, password_stdin: bool, generate: bool, password_hash_stdin: bool
) -> None:
    """Set a new password for ADDRESS; this clears 'must change'.

    Giving the current password (or its very hash) again changes nothing ("changed":
    false), so scripts may re-run it; a temporary password must get a different one.
    """
    from mailprov.errors import PasswordPolicy
    from mailprov.rules.addresses import parse_address
    from mailprov.rules.hashing import same_secret, verify_password
    from mailprov.services.accounts import (
        current_hash,
        get_mailbox,
        prepare_password,
        set_password,
    )

    app = app_context()
    settings = app.settings
    parsed = parse_address(address)
    existing = get_mailbox(app.store, address, settings.passwords, now=app.actor().now)
    given = read_password(
        password_stdin=password_stdin, generate=generate, password_hash_stdin=password_hash_stdin
    )
    stored = current_hash(app.store, address)
    same = (given.clear is not None and verify_password(given.clear.reveal(), stored)) or (
        given.hash is not None and same_secret(given.hash, stored)
    )
    if same and existing.must_change:
        raise PasswordPolicy(
            f"the password of {existing.address} is temporary; the new one must differ",
            hint="choose a different password",
        )
    if same:
        emit(
            click.get_current_context(),
            {"changed": False, "address": existing.address, "must_change": False},
            f"{existing.address} already has that password",
        )
        return
    new = prepare_password(
        settings.passwords, parsed, password=given.clear, password_hash=given.hash
    )
    set_password(app.store, address, new, actor=app.actor())
    data: dict[str, object] = {"changed": True, "address": existing.address, "must_change": False}
    shown = _show_generated(
        data, new.generated.reveal() if new.generated else None, existing.address
    )
    emit(click.get_current_context(), data, f"password changed for {existing.address}{shown}")


def _toggle(address: str, *, active: bool) -> None:
    from mailprov.rules.addresses import parse_address
    from mailprov.services.accounts import set_active
    from mailprov.services.routing import undeliverable_aliases

    app = app_context()
    changed = set_active(app.store, address, active, actor=app.actor())
    shown = str(parse_address(address))
    state = "enabled" if active else "disabled"
    data: dict[str, object] = {"changed": changed, "address": shown, "active": active}
    text = f"{shown} {state}" if changed else f"{shown} was already {state}"
    if not active:
        dead = undeliverable_aliases(app.store, shown)
        data["aliases_now_undeliverable"] = dead
        if dead:
            text += (
                "\nthese aliases now lead nowhere; mail to them is refused at RCPT: "
                + ", ".join(dead)
            )
    emit(click.get_current_context(), data, text)


@mailbox.command("disable")
@click.argument("address", shell_complete=complete_mailboxes)
@dry_run_option
@json_option
def mailbox_disable(address: str) -> None:
    """Disable ADDRESS: no login, no delivery; nothing is deleted.

    Mail to ADDRESS, and to aliases left with no other mailbox or forward to deliver to
    (listed in the output), is refused at RCPT time.
    """
    _toggle(address, active=False)


@mailbox.command("enable")
@click.argument("address", shell_complete=complete_mailboxes)
@dry_run_option
@json_option
def mailbox_enable(address: str) -> None:
    """Enable ADDRESS again."""
    _toggle(address, active=True)


@mailbox.command("set")
@click.argument("address", shell_complete=complete_mailboxes)
@click.option("--name", help="New display name ('' for none).")
@click.option("--quota", metavar="SIZE", help="New quota such as 2G or 500M; 0 = unlimited.")
@click.option("--active/--inactive", default=None, help="Enable or disable the mailbox.")
@spam_options("the domain's")
@click.option(
    "--dry-run",
    is_flag=True,
    help='Print the same report ("changed" = would change, with "dry_run": true); write nothing.',
)
@json_option
def mailbox_set(
    address: str,
    name: str | None,
    quota: str | None,
    active: bool | None,
    spam_threshold: str | None,
    spam_to_junk: bool | None,
    spam_to_junk_default: bool,
    dry_run: bool,
) -> None:
    """Change attributes of mailbox ADDRESS; only what differs is written.

    One audit record names the attributes changed. The password is changed with
    'mailbox passwd'. The spam settings (README, "Spam settings") take effect with the
    next message delivered; 'default' takes the domain's (else the site's) value.
    """
    from mailprov.rules.sizes import format_size, parse_size
    from mailprov.services.mailbox_state import update_mailbox

    app = app_context()
    threshold, to_junk = spam_values(spam_threshold, spam_to_junk, spam_to_junk_default)
    shown, changes = update_mailbox(
        app.store,
        address,
        actor=app.actor(),
        display_name=name,
        quota_bytes=parse_size(quota) if quota is not None else None,
        active=active,
        spam_threshold=threshold,
        spam_to_junk=to_junk,
        dry_run=dry_run,
    )

    def human(attr: str, value: int | str | bool | None) -> str:
        if value is None:
            return "default"
        return format_size(int(value)) if attr == "quota_bytes" else repr(value)

    lines = [f"{a}: {human(a, c.before)} -> {human(a, c.after)}" for a, c in changes.items()]
    verb = "would change" if dry_run else "changed"
    head = f"{shown}: {verb}" if changes else f"{shown}: nothing to change"
    emit(
        click.get_current_context(),
        {
            "changed": bool(changes),
            "dry_run": dry_run,
            "address": shown,
            "changes": {a: c.to_json() for a, c in changes.items()},
        },
        "\n".join([head, *lines]),
    )


@mailbox.command("remove")
@click.argument("address", shell_complete=complete_mailboxes)
@click.option(
    "--from-aliases",
    "force",
    cls=Renamed,
    old=("--force",),
    is_flag=True,
    help="Also remove ADDRESS from aliases that deliver to it.",
)
@click.option(
    "--missing-ok", is_flag=True, help="Succeed (changed: false) if there is no mailbox ADDRESS."
)
@dry_run_option
@json_option
def mailbox_remove(address: str, force: bool, missing_ok: bool) -> None:
    """Remove mailbox ADDRESS from the store (its Maildir on disk is left alone)."""
    from mailprov.errors import NotFound
    from mailprov.rules.addresses import parse_address
    from mailprov.services.accounts import remove_mailbox

    app = app_context()
    shown = str(parse_address(address))
    try:
        changed_aliases = remove_mailbox(app.store, address, actor=app.actor(), force=force)
    except NotFound:
        if not missing_ok:
            raise
        emit(
            click.get_current_context(),
            {"changed": False, "address": shown, "aliases_changed": []},
            f"mailbox {shown} does not exist (nothing to remove)",
        )
        return
    emit(
        click.get_current_context(),
        {"changed": True, "address": shown, "aliases_changed": changed_aliases},
        f"removed mailbox {shown}",
    )


@mailbox.command("import")
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check every row and report; change nothing.")
@click.option(
    "--passwords-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="New file (created 0600) for generated passwords; needed when rows have no hash.",
)
@click.option(
    "--workers", type=click.IntRange(min=1), help="Hashing processes (default: all cores)."
)
@json_option
def mailbox_import(
    csv_file: Path, dry_run: bool, passwords_out: Path | None, workers: int | None
) -> None:
    """Create mailboxes from CSV_FILE, all or nothing.

    Columns: address, name, quota, password-hash (a {SCHEME}hash, or empty to
    generate a password). A header row naming them is required.
    """
    # Lazy: services.bulk pulls in SQLAlchemy, and 'mailprov --help' imports every command module.
    from mailprov.services.bulk import import_mailboxes

    app = app_context()
    progress = None if app.json else progress_bar("hashing passwords")
    try:
        result = import_mailboxes(
            app.store,
            app.settings,
            csv_file,
            actor=app.actor(),
            dry_run=dry_run,
            passwords_out=passwords_out,
            workers=workers,
            progress=progress,
            checkpoint=_crash_hook(),
        )
    finally:
        if progress is not None:
            progress.close()
    verb = "would create" if dry_run else "created"
    human = "".join(
        f"removed {gone}, left by an import killed before its commit (those passwords were "
        "never used)\n"
        for gone in result.removed
    )
    human += f"{verb} {result.count} mailbox(es) from {csv_file}"
    if result.generated and not dry_run:
        human += f"; {result.generated} generated password(s) written to {passwords_out}"
    emit(
        click.get_current_context(),
        {
            # As everywhere with --dry-run: "changed" says what a real run would do.
            "changed": result.count > 0,
            "dry_run": dry_run,
            "count": result.count,
            "generated": result.generated,
            "addresses": result.addresses,
            "removed": result.removed,
        },
        human,
    )


def _crash_hook() -> Checkpoint | None:
    """The checkpoint that kills this process at the step named by ``KILL_AT_ENV``, if set."""
    from mailprov.services.bulk import STEPS

    target = os.environ.get(KILL_AT_ENV)
    if not target or target.startswith("move:"):  # (mailbox move's stages)
        return None
    if target not in STEPS:
        raise click.UsageError(f"{KILL_AT_ENV} must name one of: {', '.join(STEPS)}")

    def checkpoint(step: str) -> None:
        if step == target:
            kill_self()

    return checkpoint


# The owner's side: two-factor authentication and app passwords (cli/twofactor.py).
from mailprov.cli.twofactor import app_password, two_factor  # noqa: E402

mailbox.add_command(two_factor)
mailbox.add_command(app_password)
