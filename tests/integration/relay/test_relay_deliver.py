"""Deliver mode: provisioned mailboxes get mail in their Maildir; others are refused at RCPT."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mailprov.model import Secret
from mailprov.rules.addresses import parse_address
from mailprov.services.accounts import Actor, add_alias, add_domain, add_mailbox, prepare_password
from mailprov.settings import PasswordsSection
from mailprov.store import open_store
from mailprov.store.migrate import upgrade
from tests.integration.relay.relay_helpers import client


@pytest.fixture
def accounts(tmp_path: Path) -> str:
    """A store with ann@ and bob@example.test and the alias team@example.test -> both."""
    url = f"sqlite:///{tmp_path / 'mailprov.sqlite'}"
    upgrade(url)
    store = open_store(url)
    actor = Actor("test", int(time.time()))
    add_domain(store, "example.test", actor=actor)
    settings = PasswordsSection(scheme="SHA512-CRYPT")
    for address in ("ann@example.test", "bob@example.test"):
        new = prepare_password(settings, parse_address(address), password=Secret("Deliver-pw-1!"))
        add_mailbox(store, address, new, actor=actor)
    add_alias(store, "team@example.test", ["ann@example.test", "bob@example.test"], actor=actor)
    store.close()
    return url


def maildir_files(root: Path, mailbox: str) -> list[Path]:
    local, _, domain = mailbox.partition("@")
    return sorted((root / domain / local / "Maildir" / "new").glob("*"))


def test_provisioned_mailbox_gets_the_message_in_its_maildir(
    make_relay, accounts: str, tmp_path: Path
) -> None:
    """A message to a mailbox lands in MAIL_ROOT/domain/local/Maildir/new with Return-Path."""
    mail_root = tmp_path / "vmail"
    mail_root.mkdir()
    relay = make_relay(mode="deliver", store_url=accounts, mail_root=mail_root)
    with client(relay) as c:
        c.sendmail("s@client.test", ["ann@example.test"], b"Subject: local\r\n\r\nfor ann\r\n")
    files = maildir_files(mail_root, "ann@example.test")
    assert len(files) == 1
    data = files[0].read_bytes()
    assert data.startswith(b"Return-Path: <s@client.test>\r\nDelivered-To: ann@example.test\r\n")
    assert data.endswith(b"for ann\r\n")
    assert not list((mail_root / "example.test" / "ann" / "Maildir" / "tmp").iterdir())


def test_unknown_recipient_is_refused_at_rcpt(make_relay, accounts: str, tmp_path: Path) -> None:
    """A recipient that is not a provisioned mailbox gets 550 5.1.1 at RCPT; nothing is written."""
    mail_root = tmp_path / "vmail"
    mail_root.mkdir()
    relay = make_relay(mode="deliver", store_url=accounts, mail_root=mail_root)
    with client(relay) as c:
        c.ehlo()
        c.mail("s@client.test")
        code, text = c.rcpt("nobody@example.test")
        assert (code, b"User unknown" in text) == (550, True)
        assert c.rcpt("x@other.test")[0] == 550
    assert not any(mail_root.iterdir())


def test_alias_delivers_one_copy_to_each_member(make_relay, accounts: str, tmp_path: Path) -> None:
    """Mail to an alias (and to a member directly) gives each member exactly one copy."""
    mail_root = tmp_path / "vmail"
    mail_root.mkdir()
    relay = make_relay(mode="deliver", store_url=accounts, mail_root=mail_root)
    with client(relay) as c:
        c.sendmail(
            "s@client.test",
            ["team@example.test", "ann@example.test"],
            b"Subject: team\r\n\r\nhi team\r\n",
        )
    assert len(maildir_files(mail_root, "ann@example.test")) == 1
    assert len(maildir_files(mail_root, "bob@example.test")) == 1
