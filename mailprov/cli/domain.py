"""``mailprov domain add|list|show|remove``."""

from __future__ import annotations

import click

from mailprov.cli.context import app_context
from mailprov.cli.options import complete_domains, dry_run_option, json_option
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
    """Show one domain."""
    from mailprov.services.accounts import get_domain

    found = get_domain(app_context().store, name).to_json()
    human = "\n".join(f"{k}: {v}" for k, v in found.items())
    emit(click.get_current_context(), {"domain": found}, human)


@domain.command("set")
@click.argument("name", shell_complete=complete_domains)
@click.option(
    "--backend",
    metavar="NAME",
    required=True,
    help=BACKEND_HELP + " '' for the site's default. Mailboxes keep the home they were "
    "made with; refused while some of NAME's mailboxes take theirs from the domain and it "
    "would change.",
)
@dry_run_option
@json_option
def domain_set(name: str, backend: str) -> None:
    """Change domain NAME's settings (its new mailboxes' home backend)."""
    from mailprov.services.homes import set_domain_backend

    app = app_context()
    found, changed = set_domain_backend(
        app.store, name, backend or None, app.settings.cluster, actor=app.actor()
    )
    shown = found.backend or "the site's default"
    emit(
        click.get_current_context(),
        {"changed": changed, "domain": found.to_json()},
        f"{found.name}: new mailboxes live on {shown}" + ("" if changed else " (unchanged)"),
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
