"""Account services on both backends: one namespace, aliases, removal rules, the audit chain."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from mailprov.errors import (
    AddressTaken,
    AlreadyExists,
    AuditChainBroken,
    InUse,
    InvalidAddress,
    NotFound,
    UnknownDomain,
)
from mailprov.rules.hashing import hash_password, verify_password
from mailprov.services import accounts
from mailprov.services.accounts import NewPassword
from mailprov.services.audit import list_records, verify_chain
from mailprov.settings import PasswordsSection

FAST = PasswordsSection(scheme="SHA512-CRYPT")
HASH = hash_password("Wonder-Land-1865", "SHA512-CRYPT")


def new_pw() -> NewPassword:
    return NewPassword(HASH, None)


@pytest.fixture(name="site")
def fixture_site(store: Any, actor: Any) -> Any:
    """A store with example.test, alice and bob."""
    accounts.add_domain(store, "example.test", actor=actor)
    for name in ("alice", "bob"):
        accounts.add_mailbox(store, f"{name}@example.test", new_pw(), actor=actor)
    return store


class TestNamespace:
    """Mailboxes and aliases share one namespace, enforced by the database."""

    def test_mailbox_then_alias_same_address(self, site: Any, actor: Any) -> None:
        """An alias cannot take a mailbox's address."""
        with pytest.raises(AddressTaken) as caught:
            accounts.add_alias(site, "alice@example.test", ["bob@example.test"], actor=actor)
        assert len(caught.value.details["suggestions"]) >= 3

    def test_alias_then_mailbox_same_address(self, site: Any, actor: Any) -> None:
        """A mailbox cannot take an alias's address, and suggestions are free."""
        accounts.add_alias(site, "team@example.test", ["alice@example.test"], actor=actor)
        accounts.add_mailbox(site, "team1@example.test", new_pw(), actor=actor)
        with pytest.raises(AddressTaken) as caught:
            accounts.add_mailbox(site, "team@example.test", new_pw(), actor=actor)
        suggestions = caught.value.details["suggestions"]
        assert "team1@example.test" not in suggestions
        assert len(suggestions) >= 3

    def test_database_refuses_a_second_claim(self, site: Any) -> None:
        """Even bypassing the services, the unique index refuses a duplicate address."""
        from sqlalchemy.exc import IntegrityError

        with pytest.raises(IntegrityError), site.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO addresses (address, domain_id, kind, created_at) VALUES ('alice@example.test', 1, 'alias', 0)"
                )
            )

    def test_role_address_only_as_alias(self, site: Any, actor: Any) -> None:
        """postmaster@ can be an alias but not a mailbox."""
        with pytest.raises(InvalidAddress, match="role address"):
            accounts.check_available(site, "postmaster@example.test")
        accounts.add_alias(site, "postmaster@example.test", ["alice@example.test"], actor=actor)

    def test_unknown_domain(self, site: Any, actor: Any) -> None:
        """A mailbox in a domain not served here is refused."""
        with pytest.raises(UnknownDomain):
            accounts.add_mailbox(site, "x@elsewhere.test", new_pw(), actor=actor)


class TestDomains:
    """Domains: add once, remove only when empty."""

    def test_duplicate_domain(self, site: Any, actor: Any) -> None:
        """Adding a domain twice (even in another case) is refused."""
        with pytest.raises(AlreadyExists):
            accounts.add_domain(site, "EXAMPLE.test", actor=actor)

    def test_remove_domain_with_mailboxes(self, site: Any, actor: Any) -> None:
        """A domain with mailboxes cannot be removed."""
        with pytest.raises(InUse, match="2 mailbox"):
            accounts.remove_domain(site, "example.test", actor=actor)

    def test_counts(self, site: Any, actor: Any) -> None:
        """Domain listings count mailboxes and aliases."""
        accounts.add_alias(site, "@example.test", ["alice@example.test"], actor=actor)
        (domain,) = accounts.list_domains(site)
        assert (2, 1) == (domain.mailboxes, domain.aliases)


class TestAliases:
    """Aliases: multi-destination, catch-all, forwarding, partial removal."""

    def test_add_extends_existing_alias(self, site: Any, actor: Any) -> None:
        """A second add to the same alias adds destinations."""
        accounts.add_alias(site, "team@example.test", ["alice@example.test"], actor=actor)
        made = accounts.add_alias(
            site, "team@example.test", ["bob@example.test", "x@remote.example"], actor=actor
        )
        assert (
            "alice@example.test",
            "bob@example.test",
            "x@remote.example",
        ) == made.alias.destinations
        assert ("bob@example.test", "x@remote.example") == made.added

    def test_adding_existing_destinations_changes_nothing(self, site: Any, actor: Any) -> None:
        """Repeating an alias add is a no-op: nothing added, no audit record."""
        accounts.add_alias(site, "team@example.test", ["alice@example.test"], actor=actor)
        again = accounts.add_alias(site, "team@example.test", ["ALICE@example.test"], actor=actor)
        assert not again.changed
        assert 4 == len(list_records(site))

    def test_local_destination_must_exist(self, site: Any, actor: Any) -> None:
        """A destination in a served domain must be a mailbox or alias."""
        with pytest.raises(NotFound, match=r"nobody@example\.test"):
            accounts.add_alias(site, "team@example.test", ["nobody@example.test"], actor=actor)

    def test_remove_one_destination_then_all(self, site: Any, actor: Any) -> None:
        """Removing the last destination removes the alias and frees its address."""
        accounts.add_alias(
            site, "team@example.test", ["alice@example.test", "bob@example.test"], actor=actor
        )
        left = accounts.remove_alias(site, "team@example.test", ["bob@example.test"], actor=actor)
        assert left is not None and ("alice@example.test",) == left.destinations
        assert accounts.remove_alias(site, "team@example.test", actor=actor) is None
        accounts.add_mailbox(site, "team@example.test", new_pw(), actor=actor)

    def test_catch_all(self, site: Any, actor: Any) -> None:
        """'@domain' is an alias like any other, flagged catch-all."""
        made = accounts.add_alias(site, "@example.test", ["alice@example.test"], actor=actor)
        assert made.alias.catch_all
        assert ["@example.test"] == [a.address for a in accounts.list_aliases(site)]


class TestMailboxes:
    """Mailbox lifecycle."""

    def test_remove_refuses_while_aliased(self, site: Any, actor: Any) -> None:
        """A mailbox an alias points at is kept unless forced; forcing cleans the alias."""
        accounts.add_alias(site, "team@example.test", ["alice@example.test"], actor=actor)
        with pytest.raises(InUse) as caught:
            accounts.remove_mailbox(site, "alice@example.test", actor=actor)
        assert ["team@example.test"] == caught.value.details["aliases"]
        assert ["team@example.test"] == accounts.remove_mailbox(
            site, "alice@example.test", actor=actor, force=True
        )
        assert [] == accounts.list_aliases(site)
        assert ["bob@example.test"] == [
            m.address for m in accounts.list_mailboxes(site, FAST, now=actor.now)
        ]

    def test_temporary_password(self, site: Any, actor: Any) -> None:
        """A temporary password sets must_change and an expiry; a new password clears both."""
        made = accounts.add_mailbox(
            site, "tmp@example.test", new_pw(), actor=actor, temporary_hours=72
        )
        assert made.must_change and made.temp_password_expires_at == actor.now + 72 * 3600
        accounts.set_password(
            site,
            "tmp@example.test",
            NewPassword(hash_password("Other-Pass-42", "SHA512-CRYPT"), None),
            actor=actor,
        )
        shown = accounts.get_mailbox(site, "tmp@example.test", FAST, now=actor.now)
        assert not shown.must_change and shown.temp_password_expires_at is None
        assert verify_password("Other-Pass-42", accounts.current_hash(site, "tmp@example.test"))

    def test_stale_password_reported(self, site: Any, actor: Any) -> None:
        """Past the policy's 90 days, a password is reported stale."""
        later = actor.now + 91 * 86400
        assert accounts.get_mailbox(site, "alice@example.test", FAST, now=later).password_stale
        assert not accounts.get_mailbox(
            site, "alice@example.test", FAST, now=actor.now
        ).password_stale

    def test_disable_enable_idempotent(self, site: Any, actor: Any) -> None:
        """Disabling twice changes nothing the second time."""
        assert accounts.set_active(site, "bob@example.test", False, actor=actor)
        assert not accounts.set_active(site, "bob@example.test", False, actor=actor)
        assert accounts.set_active(site, "bob@example.test", True, actor=actor)


class TestAudit:
    """Every change is audited in its own transaction, hash-chained, without secrets."""

    def test_each_change_writes_one_record(self, site: Any, actor: Any) -> None:
        """domain.add and two mailbox.add records exist, in order, chained."""
        records = list_records(site)
        assert ["domain.add", "mailbox.add", "mailbox.add"] == [r.action for r in records]
        assert records[1].prev_hash == records[0].hash
        assert 3 == verify_chain(site).count

    def test_failed_change_writes_nothing(self, site: Any, actor: Any) -> None:
        """A refused change leaves no audit record."""
        with pytest.raises(AddressTaken):
            accounts.add_mailbox(site, "alice@example.test", new_pw(), actor=actor)
        assert 3 == len(list_records(site))

    def test_no_secret_in_records(self, site: Any) -> None:
        """No password hash appears in any audit record."""
        with site.read() as conn:
            rows = conn.execute(text("SELECT details FROM audit_log")).scalars().all()
        assert not any("$6$" in row or "ARGON" in row for row in rows)

    @pytest.mark.parametrize(
        "tamper",
        [
            "UPDATE audit_log SET target = 'mallory' WHERE id = 2",
            "DELETE FROM audit_log WHERE id = 2",
        ],
    )
    def test_tampering_is_detected(self, site: Any, tamper: str) -> None:
        """Editing or deleting a record breaks the chain at that point."""
        with site.begin() as conn:
            conn.execute(text(tamper))
        with pytest.raises(AuditChainBroken) as caught:
            verify_chain(site)
        assert caught.value.details["record"] in (2, 3)
