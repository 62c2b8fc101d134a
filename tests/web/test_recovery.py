"""Recovery contacts and password reset by contact, over real HTTP against ``mailprov serve``.

Codes are read from the session's mail relay (``mail_relay``); both store backends run.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from sqlalchemy import insert, select

from mailprov.services import contacts
from mailprov.store.schema import app_passwords, audit_log
from mailprov.testing import RelayRunner
from tests.web.conftest import OwnerSite
from tests.web.recovery_kit import (
    CONTACT_SUBJECT,
    NOTICE_SUBJECT,
    RESET_SUBJECT,
    anonymous,
    audit_actions,
    audit_text,
    code_in,
    new_contact,
    site_settings,
    with_contact,
)

NEW_PASSWORD = "Brand-New-Passw0rd!"


def _reset_to_grant(owner: OwnerSite, relay: RelayRunner, address: str, contact: str) -> str:
    with anonymous(owner) as client:
        started = client.post("/api/v1/password-reset", json={"address": address, "via": "contact"})
        assert started.status_code == 202, started.text
        code = code_in(relay, contact, RESET_SUBJECT)
        granted = client.post(
            "/api/v1/password-reset/confirm", json={"address": address, "code": code}
        )
        assert granted.status_code == 200, granted.text
        return str(granted.json()["grant"])


class TestContacts:
    """The owner's own recovery contacts."""

    def test_add_confirm_and_remove(self, owner: OwnerSite, mail_relay: RelayRunner) -> None:
        """A contact counts once its code comes back; removing it tells it; the last one stays."""
        address, password, first = with_contact(owner)
        mail_relay.purge()
        second = new_contact()
        with owner.client() as client:
            owner.sign_in(client, address, password)
            added = client.post("/api/v1/account/contacts", json={"contact": second})
            assert added.status_code == 202, added.text
            assert added.json()["contact"]["verified"] is False
            code = code_in(mail_relay, second, CONTACT_SUBJECT)
            listed = client.get("/api/v1/account/contacts").json()["contacts"]
            assert {c["contact"]: c["verified"] for c in listed} == {first: True, second: False}
            wrong = "000000" if code != "000000" else "111111"
            refused = client.post(
                "/api/v1/account/contacts/confirm", json={"contact": second, "code": wrong}
            )
            assert refused.status_code == 422
            assert refused.json()["error"]["idg"] == "IDG-K02"
            assert refused.json()["error"]["attempts_left"] == 4
            confirmed = client.post(
                "/api/v1/account/contacts/confirm", json={"contact": second, "code": code}
            )
            assert confirmed.status_code == 200, confirmed.text
            assert confirmed.json()["contact"]["verified"] is True
            notice = mail_relay.wait_for(to=first, subject=NOTICE_SUBJECT)
            assert "recovery contact was added" in notice.text
            mail_relay.wait_for(to=second, subject=NOTICE_SUBJECT)

            removed = client.delete(f"/api/v1/account/contacts/{first}")
            assert removed.status_code == 200, removed.text
            assert removed.json()["removed"]["contact"] == first
            gone = [m.text for m in mail_relay.messages(to=first, subject=NOTICE_SUBJECT)]
            assert any("was removed" in text for text in gone)
            last = client.delete(f"/api/v1/account/contacts/{second}")
            assert (last.status_code, last.json()["error"]["code"]) == (409, "last-contact")
            left = client.get("/api/v1/account/contacts").json()["contacts"]
            assert [c["contact"] for c in left] == [second]
        actions = audit_actions(owner, address)
        assert "owner.contact-pending" in actions
        assert "owner.contact-added" in actions
        assert "owner.contact-removed" in actions
        assert code not in audit_text(owner, address)
        assert first not in audit_text(owner, address)  # contacts are masked in the audit log

    def test_bad_contacts_are_refused_with_their_reason(self, owner: OwnerSite) -> None:
        """Malformed numbers, phones without an SMS gateway, the mailbox itself: 422, nothing
        stored; confirming a contact that waits for nothing is 409."""
        address, password = owner.mailbox()
        with owner.client() as client:
            owner.sign_in(client, address, password)
            for bad, says in [
                ("+12ab45678", "international form"),
                ("+0123456789", "international form"),
                ("+1234", "international form"),
                ("+79161234567", "no SMS gateway"),
                ("not a contact", "not a valid"),
                (address, "its own recovery contact"),
            ]:
                answer = client.post("/api/v1/account/contacts", json={"contact": bad})
                assert answer.status_code == 422, (bad, answer.text)
                assert answer.json()["error"]["code"] == "recovery-invalid"
                assert says in answer.json()["error"]["message"], answer.text
            assert client.get("/api/v1/account/contacts").json()["contacts"] == []
            stray = client.post(
                "/api/v1/account/contacts/confirm",
                json={"contact": new_contact(), "code": "123456"},
            )
            assert (stray.status_code, stray.json()["error"]["code"]) == (
                409,
                "contact-not-pending",
            )
            unknown = client.delete(f"/api/v1/account/contacts/{new_contact()}")
            assert unknown.status_code == 404

    def test_wrong_codes_lock_and_resends_are_limited(
        self, owner: OwnerSite, mail_relay: RelayRunner
    ) -> None:
        """Five wrong codes lock the code (even the right one then fails); a new code needs 60 s."""
        address, password = owner.mailbox()
        contact = new_contact()
        with owner.client() as client:
            owner.sign_in(client, address, password)
            assert client.post("/api/v1/account/contacts", json={"contact": contact}).is_success
            code = code_in(mail_relay, contact, CONTACT_SUBJECT)
            wrong = "000000" if code != "000000" else "111111"
            for _ in range(5):
                client.post(
                    "/api/v1/account/contacts/confirm", json={"contact": contact, "code": wrong}
                )
            locked = client.post(
                "/api/v1/account/contacts/confirm", json={"contact": contact, "code": code}
            )
            assert (locked.status_code, locked.json()["error"]["idg"]) == (423, "IDG-K05")
            again = client.post("/api/v1/account/contacts", json={"contact": contact})
            assert (again.status_code, again.json()["error"]["idg"]) == (429, "IDG-K06")
            owner.clock.offset = 61
            assert client.post("/api/v1/account/contacts", json={"contact": contact}).is_success
            fresh = code_in(mail_relay, contact, CONTACT_SUBJECT)
            newest = [m.text for m in mail_relay.messages(to=contact, subject=CONTACT_SUBJECT)]
            assert len(newest) == 2
            ok = client.post(
                "/api/v1/account/contacts/confirm", json={"contact": contact, "code": fresh}
            )
            assert ok.status_code == 200, ok.text


class TestResetByContact:
    """Reset without the old password: a code to the verified contacts, a grant, a new password."""

    def test_end_to_end(self, owner: OwnerSite, mail_relay: RelayRunner) -> None:
        """The new password signs in, the old one and every old session do not; the failures
        and lockout are cleared; the contacts are told."""
        from mailprov.store.schema import login_failures

        address, password, contact = with_contact(owner)
        mail_relay.purge()
        old = owner.client()
        owner.sign_in(old, address, password)
        # Then sign-in gets locked (as by failed attempts): the reset must lift the lock.
        with owner.services.store.begin() as conn:
            conn.execute(
                insert(login_failures).values(
                    key=f"account:{address}",
                    failures=9,
                    window_start=int(time.time()),
                    locked_until=int(time.time()) + 900,
                )
            )
        grant = _reset_to_grant(owner, mail_relay, address, contact)
        with anonymous(owner) as client:
            weak = client.put(
                "/api/v1/password-reset/password", json={"grant": grant, "new": "short"}
            )
            assert (weak.status_code, weak.json()["error"]["code"]) == (422, "password-policy")
            done = client.put(
                "/api/v1/password-reset/password", json={"grant": grant, "new": NEW_PASSWORD}
            )
            assert done.status_code == 200, done.text
            assert done.json() == {"address": address, "sessions_ended": 1}
            again = client.put(
                "/api/v1/password-reset/password", json={"grant": grant, "new": "An0ther-Pass!"}
            )
            assert (again.status_code, again.json()["error"]["code"]) == (410, "reset-ended")
        assert old.get("/api/v1/account").status_code == 401
        old.close()
        with owner.client() as client:
            refused = client.post(
                "/api/v1/session", json={"address": address, "password": password}
            )
            assert refused.status_code == 401
            assert owner.sign_in(client, address, NEW_PASSWORD)["stage"] == "full"
        notice = mail_relay.wait_for(to=contact, subject=NOTICE_SUBJECT)
        assert "was reset" in notice.text
        with owner.services.store.read() as conn:
            left = conn.execute(
                select(login_failures).where(login_failures.c.key == f"account:{address}")
            ).first()
        assert left is None
        assert "owner.password-reset" in audit_actions(owner, address)

    def test_a_new_password_ends_the_app_passwords(
        self, owner: OwnerSite, mail_relay: RelayRunner
    ) -> None:
        """A change and a reset each revoke every app password (whoever knew the old password
        may have made one); the audit record says how many."""
        address, password, contact = with_contact(owner)

        def make_two(client: Any) -> None:
            for label in ("phone", "laptop"):
                made = client.post("/api/v1/account/app-passwords", json={"label": label})
                assert made.status_code == 201

        def left() -> int:
            with owner.services.store.read() as conn:
                rows = conn.execute(
                    select(app_passwords.c.id).where(app_passwords.c.address == address)
                )
                return len(rows.all())

        with owner.client() as client:
            owner.sign_in(client, address, password)
            make_two(client)
            assert left() == 2
            changed = client.put(
                "/api/v1/account/password", json={"current": password, "new": NEW_PASSWORD}
            )
            assert changed.status_code == 200
            assert left() == 0
            make_two(client)
        grant = _reset_to_grant(owner, mail_relay, address, contact)
        with anonymous(owner) as client:
            put = {"grant": grant, "new": "Another-Passw0rd!!"}
            assert client.put("/api/v1/password-reset/password", json=put).status_code == 200
        assert left() == 0
        with owner.services.store.read() as conn:
            details = {
                row.action: json.loads(row.details)
                for row in conn.execute(select(audit_log).where(audit_log.c.target == address))
            }
        assert details["owner.password-changed"]["app_passwords_revoked"] == 2
        assert details["owner.password-reset"]["app_passwords_revoked"] == 2

    def test_temporary_password_is_replaced_for_good(
        self, owner: OwnerSite, mail_relay: RelayRunner
    ) -> None:
        """A reset of a mailbox with a temporary password gives a full session at once."""
        address, _, contact = with_contact(owner, temporary=True)
        grant = _reset_to_grant(owner, mail_relay, address, contact)
        with anonymous(owner) as client:
            put = {"grant": grant, "new": NEW_PASSWORD}
            assert client.put("/api/v1/password-reset/password", json=put).status_code == 200
        with owner.client() as client:
            assert owner.sign_in(client, address, NEW_PASSWORD)["stage"] == "full"

    def test_expired_and_reused_codes(self, owner: OwnerSite, mail_relay: RelayRunner) -> None:
        """An expired code is 410 code-expired, a used one 410 code-used; the password stays."""
        address, password, contact = with_contact(owner)
        with anonymous(owner) as client:
            body = {"address": address, "via": "contact"}
            assert client.post("/api/v1/password-reset", json=body).status_code == 202
            code = code_in(mail_relay, contact, RESET_SUBJECT)
            owner.clock.offset = 601
            late = client.post(
                "/api/v1/password-reset/confirm", json={"address": address, "code": code}
            )
            assert (late.status_code, late.json()["error"]["idg"]) == (410, "IDG-K03")
            owner.clock.offset = 700
            mail_relay.purge()
            assert client.post("/api/v1/password-reset", json=body).status_code == 202
            code = code_in(mail_relay, contact, RESET_SUBJECT)
            confirm = {"address": address, "code": code}
            assert client.post("/api/v1/password-reset/confirm", json=confirm).status_code == 200
            reused = client.post("/api/v1/password-reset/confirm", json=confirm)
            assert (reused.status_code, reused.json()["error"]["code"]) == (410, "code-used")
        owner.clock.offset = 0
        with owner.client() as client:
            assert owner.sign_in(client, address, password)["stage"] == "full"

    def test_unverified_contact_gets_no_code(
        self, owner: OwnerSite, mail_relay: RelayRunner
    ) -> None:
        """A contact still waiting for its own code receives no reset code."""
        address, password, verified = with_contact(owner)
        pending = new_contact()
        with owner.client() as client:
            owner.sign_in(client, address, password)
            assert client.post("/api/v1/account/contacts", json={"contact": pending}).is_success
        with anonymous(owner) as client:
            body = {"address": address, "via": "contact"}
            assert client.post("/api/v1/password-reset", json=body).status_code == 202
        code_in(mail_relay, verified, RESET_SUBJECT)
        assert mail_relay.messages(to=pending, subject=RESET_SUBJECT) == []


class TestNoEnumeration:
    """A stranger learns nothing about which addresses exist."""

    def test_same_answer_for_unknown_and_known(
        self, owner: OwnerSite, mail_relay: RelayRunner
    ) -> None:
        """Status and document are the same for a mailbox with a contact, one without, a
        disabled one, and no mailbox; so are the rate limit's refusal and a wrong code's."""
        from mailprov.services.accounts import Actor, set_active

        known, _, contact = with_contact(owner)
        bare, _ = owner.mailbox()
        disabled, _, disabled_contact = with_contact(owner)
        set_active(owner.services.store, disabled, False, actor=Actor("tester", int(time.time())))
        unknown = f"nobody-{time.time_ns()}@example.test"
        everyone = (known, bare, disabled, unknown)
        answers: dict[str, list[object]] = {}
        with anonymous(owner) as client:
            for address in everyone:
                body = {"address": address, "via": "contact"}
                first = client.post("/api/v1/password-reset", json=body)
                second = client.post("/api/v1/password-reset", json=body)
                wrong = client.post(
                    "/api/v1/password-reset/confirm", json={"address": address, "code": "000000"}
                )
                answers[address] = [
                    first.status_code,
                    first.json()["message"].replace(address, "ADDR"),
                    sorted(first.json()),
                    second.status_code,
                    second.json()["error"]["code"],
                    wrong.status_code,
                    wrong.json()["error"]["idg"],
                ]
            owner.clock.offset = 61
            for address in everyone:
                ident = client.post(
                    "/api/v1/password-reset", json={"address": address, "via": "identity"}
                )
                answers[address] += [ident.status_code, sorted(ident.json())]
                answers[address] += [ident.json()["message"], len(ident.json()["nonce"])]
        assert answers[known] == answers[bare] == answers[disabled] == answers[unknown]
        assert answers[known][0] == 202
        assert answers[known][3] == 429
        code_in(mail_relay, contact, RESET_SUBJECT)
        time.sleep(1)  # the other deliveries had their time
        assert mail_relay.messages(to=disabled_contact, subject=RESET_SUBJECT) == []

    def test_per_client_limit(self, owner: OwnerSite) -> None:
        """One client may start 20 resets an hour, whatever the addresses."""
        with anonymous(owner) as client:
            statuses = [
                client.post(
                    "/api/v1/password-reset",
                    json={"address": f"x{n}-{time.time_ns()}@example.test", "via": "contact"},
                ).status_code
                for n in range(21)
            ]
        assert statuses == [202] * 20 + [429]

    def test_route_not_enabled(self, owner: OwnerSite) -> None:
        """A route missing from [passwords] reset_via is refused (403) for any address."""
        with site_settings(owner, passwords={"reset_via": ["contact"]}), anonymous(owner) as c:
            answer = c.post(
                "/api/v1/password-reset", json={"address": "a@example.test", "via": "identity"}
            )
        assert (answer.status_code, answer.json()["error"]["code"]) == (
            403,
            "reset-route-disabled",
        )


def test_no_secret_reaches_the_audit_log_or_the_logs(
    owner: OwnerSite, mail_relay: RelayRunner, caplog: pytest.LogCaptureFixture
) -> None:
    """Codes, grants and passwords of a whole reset appear in no audit record and no log line
    (not even the one about a contact the code could not reach)."""
    caplog.set_level(logging.DEBUG)
    address, password, contact = with_contact(owner)
    with owner.client() as client:
        owner.sign_in(client, address, password)
        extra = new_contact()
        client.post("/api/v1/account/contacts", json={"contact": extra})
        contact_code = code_in(mail_relay, extra, CONTACT_SUBJECT)
        client.post(
            "/api/v1/account/contacts/confirm", json={"contact": extra, "code": contact_code}
        )
    unreachable = f"bad-{new_contact()}"
    mail_relay.fault("rcpt:bad-*=550 5.1.1 no such user")
    contacts.add_contact(
        owner.services.store,
        owner.services.settings,
        b"",
        address,
        unreachable,
        now=owner.services.now(),
        actor="tester",
        verified=True,
    )
    with anonymous(owner) as client:
        client.post("/api/v1/password-reset", json={"address": address, "via": "contact"})
        code = code_in(mail_relay, contact, RESET_SUBJECT)
        grant = client.post(
            "/api/v1/password-reset/confirm", json={"address": address, "code": code}
        ).json()["grant"]
        client.put("/api/v1/password-reset/password", json={"grant": grant, "new": NEW_PASSWORD})
    audit = audit_text(owner, address)

    def server_log() -> str:
        # The server's own log lines (mailprov, aiohttp); not the test's HTTP client, nor the
        # mail relay that plays the contacts' mail server and logs what it receives.
        return "\n".join(
            r.getMessage()
            for r in list(caplog.records)
            if r.name.split(".")[0] in {"mailprov", "aiohttp"}
        )

    failed = "password-reset code not delivered to b***@recovery.example"
    deadline = time.monotonic() + 10
    while failed not in server_log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert failed in server_log()
    for secret in (contact_code, code, grant, NEW_PASSWORD, password):
        assert secret not in audit
        assert secret not in server_log()
    with owner.services.store.read() as conn:
        from mailprov.store.schema import owner_codes

        stored = " ".join(str(tuple(r)) for r in conn.execute(select(owner_codes)))
    assert grant not in stored
