"""The administrator's side of two-factor authentication: 'mailbox 2fa show|reset' and
'mailbox app-password list|revoke', JSON documents, --dry-run and exit statuses, on both
store backends."""

from __future__ import annotations

import time
from typing import Any

import pyotp
import pytest
from sqlalchemy import select

from mailprov.model import Secret
from mailprov.services import app_passwords, owner, twofactor
from mailprov.settings import SiteConfig
from mailprov.store.schema import owner_totp

ADDRESS = "ann@example.test"
PASSWORD = "Wonder-Land-1865"
PEPPER = b"k" * 32


@pytest.fixture(name="ann")
def fixture_ann(run: Any, store: Any) -> Any:
    """Mailbox ann@ with two-factor authentication on (through the services) and two app
    passwords."""
    assert run("mailbox", "add", ADDRESS, "--password-stdin", input=PASSWORD + "\n").exit_code == 0
    settings = SiteConfig()
    now = int(time.time())
    signed = owner.sign_in(store, settings, ADDRESS, Secret(PASSWORD), client="test", now=now)
    made = twofactor.start_enrolment(store, settings, PEPPER, ADDRESS, now=now)
    code = Secret(pyotp.TOTP(made.secret.reveal()).at(now))
    twofactor.confirm_enrolment(
        store, settings, PEPPER, signed.session, code, Secret(PASSWORD), now=now
    )
    for label in ("laptop", "phone"):
        app_passwords.create(store, settings, ADDRESS, label, now=now)
    return run


def test_show_reports_state_without_secrets(ann: Any, store: Any) -> None:
    """--json gives the state; no secret, sealed or not, is in the output."""
    status, doc = ann.json("mailbox", "2fa", "show", "ANN@example.test")
    assert status == 0, doc
    shown = doc["two_factor"]
    assert (shown["address"], shown["enabled"], shown["pending"]) == (ADDRESS, True, False)
    assert (shown["recovery_codes_left"], shown["app_passwords"]) == (10, 2)
    human = ann("mailbox", "2fa", "show", ADDRESS)
    assert "enabled: yes" in human.stdout
    with store.read() as conn:
        sealed = conn.execute(select(owner_totp.c.secret)).scalar_one()
    assert sealed not in human.stdout


def test_reset_dry_run_changes_nothing_then_resets(ann: Any) -> None:
    """--dry-run reports changed: true and writes nothing; reset turns it off; again: unchanged."""
    status, doc = ann.json("mailbox", "2fa", "reset", ADDRESS, "--dry-run")
    assert (status, doc["changed"], doc["dry_run"]) == (0, True, True)
    assert ann.json("mailbox", "2fa", "show", ADDRESS)[1]["two_factor"]["enabled"] is True
    status, doc = ann.json("mailbox", "2fa", "reset", ADDRESS)
    assert (status, doc["changed"]) == (0, True)
    shown = ann.json("mailbox", "2fa", "show", ADDRESS)[1]["two_factor"]
    assert (shown["enabled"], shown["recovery_codes_left"], shown["app_passwords"]) == (
        False,
        0,
        2,
    )
    status, doc = ann.json("mailbox", "2fa", "reset", ADDRESS)
    assert (status, doc["changed"]) == (0, False)
    status, audit = ann.json("audit", "list", "--target", ADDRESS, "--action", "owner.2fa")
    assert status == 0, audit
    reset = [r for r in audit["records"] if r["action"] == "owner.2fa-disabled"]
    assert len(reset) == 1
    assert reset[0]["actor"] != f"owner:{ADDRESS}"  # the administrator, not the owner


def test_unknown_mailbox_is_not_found(run: Any) -> None:
    """Every command names a missing mailbox with exit status 3."""
    for args in (
        ("2fa", "show"),
        ("2fa", "reset"),
        ("app-password", "list"),
        ("app-password", "revoke", "--all"),
    ):
        status, doc = run.json("mailbox", *args[:2], "nobody@example.test", *args[2:])
        assert (status, doc["error"]["code"]) == (3, "not-found"), args


def test_app_passwords_are_listed_and_revoked(ann: Any) -> None:
    """List (no hash), revoke by label with --dry-run, by id, then --all; a missing one is 3."""
    status, doc = ann.json("mailbox", "app-password", "list", ADDRESS)
    assert status == 0
    listed = doc["app_passwords"]
    assert [p["label"] for p in listed] == ["laptop", "phone"]
    assert all(set(p) == {"id", "label", "created_at", "last_used_at"} for p in listed)
    status, doc = ann.json("mailbox", "app-password", "revoke", ADDRESS, "phone", "--dry-run")
    assert (status, doc["changed"], [p["label"] for p in doc["revoked"]]) == (0, True, ["phone"])
    assert len(ann.json("mailbox", "app-password", "list", ADDRESS)[1]["app_passwords"]) == 2
    status, doc = ann.json("mailbox", "app-password", "revoke", ADDRESS, str(listed[0]["id"]))
    assert (status, [p["label"] for p in doc["revoked"]]) == (0, ["laptop"])
    status, doc = ann.json("mailbox", "app-password", "revoke", ADDRESS, "laptop")
    assert (status, doc["error"]["code"]) == (3, "not-found")
    status, doc = ann.json("mailbox", "app-password", "revoke", ADDRESS, "--all")
    assert (status, [p["label"] for p in doc["revoked"]]) == (0, ["phone"])
    status, doc = ann.json("mailbox", "app-password", "revoke", ADDRESS, "--all")
    assert (status, doc["changed"], doc["revoked"]) == (0, False, [])
    assert ann.json("mailbox", "app-password", "list", ADDRESS)[1]["app_passwords"] == []


def test_revoke_needs_exactly_one_of_id_and_all(ann: Any) -> None:
    """Neither, or both: a usage error (exit 2), nothing revoked."""
    assert ann("mailbox", "app-password", "revoke", ADDRESS).exit_code == 2
    assert ann("mailbox", "app-password", "revoke", ADDRESS, "phone", "--all").exit_code == 2
    assert len(ann.json("mailbox", "app-password", "list", ADDRESS)[1]["app_passwords"]) == 2
