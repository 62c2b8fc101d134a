"""``mailprov domain add|list|show|set|remove``."""

from __future__ import annotations

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import (
    complete_domains,
    dry_run_option,
    json_option,
    spam_options,
    spam_values,
)
from mailprov.cli.output import emit, table, yes_no


@click.group()
def domain() -> None:
    """Domains served by this mail host."""


BACKEND_HELP = (
    "Home backend of the domain's new mailboxes: one of [cluster] backends "
    "(default: the site's, [cluster] default_backend)."
)


@domain.command("add")
@click.argument("name")
@click.option("--exist-ok", is_flag=True, help="Succeed (changed: false) if NAME already exists.")
@click.option("--backend", metavar="NAME", help=BACKEND_HELP)
@dry_run_option
@json_option
def domain_add(name: str, exist_ok: bool, backend: str | None) -> None:
    """Add domain NAME (an IDN is stored as its A-label)."""
    from mailprov.errors import AlreadyExists
    from mailprov.services.accounts import add_domain, get_domain
    from mailprov.services.homes import checked_backend

    app = app_context()
    if backend is not None:
        checked_backend(backend, app.settings.cluster)
    try:
        added = add_domain(app.store, name, actor=app.actor(), backend=backend)
    except AlreadyExists:
        if not exist_ok:
            raise
        found = get_domain(app.store, name)
        emit(
            click.get_current_context(),
            {"changed": False, "domain": found.to_json()},
            f"domain {found.name} exists",
        )
        return
    emit(
        click.get_current_context(),
        {"changed": True, "domain": added.to_json()},
        f"added domain {added.name}",
    )


@domain.command("list")
@json_option
def domain_list() -> None:
    """List domains with their mailbox and alias counts."""
    from mailprov.services.accounts import list_domains

    found = list_domains(app_context().store)
    table(
        click.get_current_context(),
        {"domains": [d.to_json() for d in found]},
        ["domain", "active", "mailboxes", "aliases"],
        [[d.to_json()["unicode"], yes_no(d.active), d.mailboxes, d.aliases] for d in found],
    )


@domain.command("show")
@click.argument("name", shell_complete=complete_domains)
@json_option
def domain_show(name: str) -> None:
    """Show one domain. open_requests: no: proven through the portal, it takes requests only
    with its proof's domain handle ('domain set NAME --open-requests' opens it)."""
    from mailprov.services.accounts import get_domain
    from mailprov.services.ownership import bound
    from mailprov.services.spam import domain_spam

    app = app_context()
    found = get_domain(app.store, name).to_json()
    found["open_requests"] = not bound(app.store, name)
    spam = domain_spam(app.store, app.settings, name)
    human = "\n".join(f"{k}: {v}" for k, v in found.items())
    human += f"\nspam threshold: {spam.effective.threshold:g} ({spam.effective.threshold_from})"
    human += f"\nspam to Junk: {yes_no(spam.effective.to_junk)} ({spam.effective.to_junk_from})"
    emit(click.get_current_context(), {"domain": {**found, "spam": spam.to_json()}}, human)


@domain.command("set")
@click.argument("name", shell_complete=complete_domains)
@click.option(
    "--backend",
    metavar="NAME",
    help=BACKEND_HELP + " '' for the site's default. Mailboxes keep the home they were "
    "made with; refused while some of NAME's mailboxes take theirs from the domain and it "
    "would change.",
)
@spam_options("the site's ([rspamd])")
@click.option(
    "--open-requests",
    is_flag=True,
    help="Let every verified applicant request addresses at NAME: forget the domain handle "
    "that NAME's ownership proof through the portal bound its requests to.",
)
@dry_run_option
@json_option
def domain_set(
    name: str,
    backend: str | None,
    spam_threshold: str | None,
    spam_to_junk: bool | None,
    spam_to_junk_default: bool,
    open_requests: bool,
) -> None:
    """Change the defaults domain NAME gives its mailboxes; only what differs is written.

    --backend: the home backend of its new mailboxes. The spam settings (README, "Spam
    settings") apply to every mailbox of NAME that has none of its own, from the next
    message delivered; 'default' takes the site's. --open-requests: a domain proven
    through the portal takes requests only with its proof's domain handle; after this,
    from anyone (as a domain added here).
    """
    from mailprov.services.accounts import get_domain
    from mailprov.services.homes import set_domain_backend
    from mailprov.services.mailbox_state import Change
    from mailprov.services.ownership import open_requests as open_domain_requests
    from mailprov.services.spam import update_domain

    app = app_context()
    threshold, to_junk = spam_values(spam_threshold, spam_to_junk, spam_to_junk_default)
    changes: dict[str, Change] = {}
    if backend is not None:
        before = get_domain(app.store, name).backend
        found, moved = set_domain_backend(
            app.store, name, backend or None, app.settings.cluster, actor=app.actor()
        )
        if moved:
            changes["backend"] = Change(before, found.backend)
    _, spam_changes = update_domain(
        app.store, name, actor=app.actor(), spam_threshold=threshold, spam_to_junk=to_junk
    )
    changes |= spam_changes
    if open_requests and open_domain_requests(app.store, name, actor=app.actor()):
        changes["open_requests"] = Change(False, True)
    found = get_domain(app.store, name)

    def human(value: object) -> str:
        return "default" if value is None else repr(value)

    lines = [f"{a}: {human(c.before)} -> {human(c.after)}" for a, c in changes.items()]
    head = f"{found.name}: changed" if changes else f"{found.name}: nothing to change"
    emit(
        click.get_current_context(),
        {
            "changed": bool(changes),
            "domain": found.to_json(),
            "changes": {a: c.to_json() for a, c in changes.items()},
        },
        "\n".join([head, *lines]),
    )


@domain.command("remove")
@click.argument("name", shell_complete=complete_domains)
@click.option("--missing-ok", is_flag=True, help="Succeed (changed: false) if NAME is not served.")
@dry_run_option
@json_option
def domain_remove(name: str, missing_ok: bool) -> None:
    """Remove domain NAME (refused while it has mailboxes or aliases)."""
    from mailprov.errors import NotFound
    from mailprov.rules.addresses import normalise_domain
    from mailprov.services.accounts import remove_domain

    app = app_context()
    a_label = normalise_domain(name)
    try:
        remove_domain(app.store, name, actor=app.actor())
    except NotFound:
        if not missing_ok:
            raise
        emit(
            click.get_current_context(),
            {"changed": False, "domain": a_label},
            f"domain {a_label} does not exist (nothing to remove)",
        )
        return
    emit(
        click.get_current_context(),
        {"changed": True, "domain": a_label},
        f"removed domain {a_label}",
    )


# -- ownership proof for corporate mailboxes (identity gate) ---------------------


@domain.command("verify-start")
@click.argument("name", shell_complete=complete_domains)
@click.option(
    "--renew", is_flag=True, help="Make a new token even if the current one is still valid."
)
@dry_run_option
@json_option
def domain_verify_start(name: str, renew: bool) -> None:
    """Start proving ownership of NAME: prints the TXT record to publish.

    A domain not served yet is added inactive; 'domain verify' activates it. Run
    again, it prints the same record (changed: false) while the token is less than
    30 days old, unless --renew.
    """
    from mailprov.services.ownership import start

    app = app_context()
    made = start(app.store, name, actor=app.actor(), renew=renew)
    emit(
        click.get_current_context(),
        {"changed": made.changed, **made.to_json()},
        f"publish this record, then run 'mailprov domain verify {made.domain}':\n"
        f'{made.name} IN TXT "{made.value}"',
    )


@domain.command("verify")
@click.argument("name", shell_complete=complete_domains)
@click.option(
    "--nameserver", metavar="IP[:PORT]", help="Ask this DNS server (default: the system resolver)."
)
@dry_run_option
@json_option
def domain_verify(name: str, nameserver: str | None) -> None:
    """Check the TXT record and mark NAME verified (and active)."""
    from mailprov.rules.addresses import normalise_domain
    from mailprov.rules.dnscheck import parse_nameserver
    from mailprov.services.ownership import verify

    app = app_context()
    server = parse_nameserver(nameserver) if nameserver else None
    changed = verify(app.store, name, actor=app.actor(), nameserver=server)
    a_label = normalise_domain(name)
    emit(
        click.get_current_context(),
        {"changed": changed, "domain": a_label, "verified": True},
        f"{a_label}: ownership proven",
    )
