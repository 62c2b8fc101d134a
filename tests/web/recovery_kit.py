"""Helpers of the recovery and reset tests: clients from distinct IPs, codes from the relay,
mailboxes with a verified contact, and the site's settings changed for one test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import itertools
import re
import secrets
from collections.abc import Iterator
from typing import Any

import httpx

from mailprov.testing import RelayRunner
from tests.web.conftest import OwnerSite

_ips = itertools.count(1)
CODE_RE = re.compile(r"is (\d{6})\.")
RESET_SUBJECT = "Password reset code"
CONTACT_SUBJECT = "Code to confirm a recovery contact"
NOTICE_SUBJECT = "Security notice"


def client_ip() -> str:
    """An address no other test uses (the per-client limits count by address)."""
    return str(ipaddress.ip_address("10.20.0.0") + next(_ips))


def anonymous(owner: OwnerSite) -> httpx.Client:
    """A client without a session, seen by the server as a fresh IP (through the trusted proxy
    header, as behind nginx)."""
    return owner.client(headers={"X-Forwarded-For": client_ip()})


def new_contact() -> str:
    """A unique recovery address (the relay captures mail to any address)."""
    return f"rc-{secrets.token_hex(4)}@recovery.example"


def code_in(relay: RelayRunner, to: str, subject: str) -> str:
    """The code of the newest message to ``to`` whose subject contains ``subject``."""
    relay.wait_for(to=to, subject=subject, timeout=10)
    text = relay.messages(to=to, subject=subject)[-1].text
    match = CODE_RE.search(text)
    assert match, text
    return match.group(1)


def with_contact(owner: OwnerSite, **mailbox: Any) -> tuple[str, str, str]:
    """A new mailbox with one verified recovery contact: (address, password, contact)."""
    from mailprov.services import contacts

    address, password = owner.mailbox(**mailbox)
    contact = new_contact()
    services = owner.services
    contacts.add_contact(
        services.store,
        services.settings,
        services.pepper,
        address,
        contact,
        now=services.now(),
        actor="tester",
        verified=True,
    )
    return address, password, contact


@contextlib.contextmanager
def site_settings(owner: OwnerSite, **sections: dict[str, Any]) -> Iterator[Any]:
    """The running server's settings with some values changed, for the ``with`` block."""
    services = owner.services
    old = services.settings
    changes = {
        name: dataclasses.replace(getattr(old, name), **values) for name, values in sections.items()
    }
    services.settings = dataclasses.replace(old, **changes)
    try:
        yield services.settings
    finally:
        services.settings = old


def audit_text(owner: OwnerSite, target: str) -> str:
    """Every audit record about ``target``, as one text."""
    from mailprov.store import audit

    with owner.services.store.read() as conn:
        return "\n".join(repr(r.to_json()) for r in audit.records(conn, target=target))


def audit_actions(owner: OwnerSite, target: str) -> list[str]:
    """The actions of the audit records about ``target``, oldest first."""
    from mailprov.store import audit

    with owner.services.store.read() as conn:
        return [r.action for r in audit.records(conn, target=target)]
