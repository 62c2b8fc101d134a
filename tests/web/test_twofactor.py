"""Two-factor authentication and app passwords over real HTTP, on both store backends.

Codes are made by pyotp from the secret the server handed out, at the server's time
(``owner.clock``), and the clock is moved to reach the next step or to age a code.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import pyotp
from sqlalchemy import insert, select

from mailprov.store.schema import audit_log, recovery_contacts
from mailprov.testing import RelayRunner
from tests.web.conftest import OwnerSite


def server_time(owner: OwnerSite) -> float:
    """The server's idea of now."""
    return time.time() + owner.clock.offset


def next_code(owner: OwnerSite, secret: str) -> str:
    """Move the server's clock one step on and give that step's code."""
    owner.clock.offset += 30
    return pyotp.TOTP(secret).at(server_time(owner))


def add_contact(owner: OwnerSite, address: str) -> str:
    """A verified recovery contact for ``address`` (where security notices go)."""
    contact = f"contact-{secrets.token_hex(4)}@elsewhere.test"
    with owner.services.store.begin() as conn:
        conn.execute(
            insert(recovery_contacts).values(
                address=address, contact=contact, kind="email", verified_at=1, created_at=1
            )
        )
    return contact


def wait_text(relay: RelayRunner, contact: str, needle: str, timeout: float = 10) -> None:
    """Wait until a message to ``contact`` says ``needle`` (notices arrive in any order)."""
    deadline = time.monotonic() + timeout
    while not any(needle in m.text for m in relay.messages(to=contact)):
        assert time.monotonic() < deadline, f"no notice to {contact} saying {needle!r}"
        time.sleep(0.05)


def enrol(owner: OwnerSite, client: httpx.Client, address: str) -> tuple[str, list[str]]:
    """Turn two-factor authentication on; returns the secret and the recovery codes."""
    started = client.post("/api/v1/account/2fa")
    assert started.status_code == 201, started.text
    secret = started.json()["secret"]
    confirmed = client.post(
        "/api/v1/account/2fa/confirm",
        json={"code": next_code(owner, secret), "password": owner.passwords[address]},
    )
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recovery_codes"]


def error(answer: httpx.Response) -> tuple[int, str]:
    """The status and the error code of a refusal."""
    return answer.status_code, answer.json()["error"]["code"]


def test_enrolment_turns_on_the_second_step(owner: OwnerSite, mail_relay: RelayRunner) -> None:
    """Set-up, then a first code; from then on sign-in stops at 'second-factor' until a code."""
    address, password = owner.mailbox()
    contact = add_contact(owner, address)
    with owner.client() as client:
        owner.sign_in(client, address, password)
        assert client.get("/api/v1/account/2fa").json()["enabled"] is False
        started = client.post("/api/v1/account/2fa")
        assert started.status_code == 201, started.text
        setup = started.json()
        secret = setup["secret"]
        assert pyotp.parse_uri(setup["otpauth_uri"]).secret == secret
        assert setup["qr_svg"].startswith("<svg")
        pending = client.get("/api/v1/account/2fa")
        assert pending.json()["pending"] is True
        assert secret not in pending.text
        wrong = client.post(
            "/api/v1/account/2fa/confirm", json={"code": "000000", "password": password}
        )
        assert error(wrong) == (422, "two-factor-code-invalid")
        code = next_code(owner, secret)
        no_password = client.post(
            "/api/v1/account/2fa/confirm", json={"code": code, "password": "not-it"}
        )
        assert error(no_password) == (401, "sign-in-failed")
        assert client.get("/api/v1/account/2fa").json()["enabled"] is False
        confirmed = client.post(
            "/api/v1/account/2fa/confirm", json={"code": code, "password": password}
        )
        assert confirmed.status_code == 200, confirmed.text
        assert len(set(confirmed.json()["recovery_codes"])) == 10
        shown = client.get("/api/v1/account/2fa").json()
        assert (shown["enabled"], shown["pending"], shown["recovery_codes_left"]) == (
            True,
            False,
            10,
        )
    wait_text(mail_relay, contact, "Two-factor authentication was turned on")
    with owner.client() as again:
        assert owner.sign_in(again, address, password)["stage"] == "second-factor"
        assert error(again.get("/api/v1/account")) == (403, "session-stage")
        reused = again.post("/api/v1/session/second-factor", json={"code": code})
        assert error(reused) == (410, "two-factor-code-reused")
        passed = again.post(
            "/api/v1/session/second-factor", json={"code": next_code(owner, secret)}
        )
        assert passed.status_code == 200, passed.text
        assert (passed.json()["stage"], passed.json()["method"]) == ("full", "totp")
        assert again.get("/api/v1/account").status_code == 200
        after = again.post("/api/v1/session/second-factor", json={"code": "123456"})
        assert error(after) == (403, "session-stage")


def test_old_and_reused_codes_are_refused_by_name(owner: OwnerSite) -> None:
    """A two-minute-old code is 'expired'; the code just used is 'reused'; both change nothing."""
    address, password = owner.mailbox()
    with owner.client() as client:
        owner.sign_in(client, address, password)
        secret, _ = enrol(owner, client, address)
    with owner.client() as again:
        owner.sign_in(again, address, password)
        owner.clock.offset += 300
        old = pyotp.TOTP(secret).at(server_time(owner) - 120)
        expired = again.post("/api/v1/session/second-factor", json={"code": old})
        assert error(expired) == (410, "two-factor-code-expired")
        assert again.get("/api/v1/session").json()["stage"] == "second-factor"
        fresh = next_code(owner, secret)
        assert again.post("/api/v1/session/second-factor", json={"code": fresh}).status_code == 200
    with owner.client() as third:
        owner.sign_in(third, address, password)
        answer = third.post("/api/v1/session/second-factor", json={"code": fresh})
        assert error(answer) == (410, "two-factor-code-reused")


def test_recovery_code_works_once(owner: OwnerSite, mail_relay: RelayRunner) -> None:
    """A recovery code passes the second step once (the owner is told); then it is 'reused'."""
    address, password = owner.mailbox()
    contact = add_contact(owner, address)
    with owner.client() as client:
        owner.sign_in(client, address, password)
        _, codes = enrol(owner, client, address)
    with owner.client() as again:
        owner.sign_in(again, address, password)
        typed = codes[3].upper().replace("-", " ")
        passed = again.post("/api/v1/session/second-factor", json={"code": typed})
        assert passed.status_code == 200, passed.text
        body = passed.json()
        assert (body["stage"], body["method"], body["recovery_codes_left"]) == (
            "full",
            "recovery-code",
            9,
        )
    wait_text(mail_relay, contact, "recovery code of")
    with owner.client() as third:
        owner.sign_in(third, address, password)
        reused = third.post("/api/v1/session/second-factor", json={"code": codes[3]})
        assert error(reused) == (410, "two-factor-code-reused")
        unknown = third.post("/api/v1/session/second-factor", json={"code": "aaaa-bbbb-cccc"})
        assert error(unknown) == (422, "two-factor-code-invalid")


def test_wrong_codes_lock_the_second_step(owner: OwnerSite, mail_relay: RelayRunner) -> None:
    """Five wrong codes: 423, the waiting session ends, even the right code waits out the lock."""
    address, password = owner.mailbox()
    contact = add_contact(owner, address)
    with owner.client() as client:
        owner.sign_in(client, address, password)
        secret, _ = enrol(owner, client, address)
    with owner.client() as again:
        owner.sign_in(again, address, password)
        answers = [
            again.post("/api/v1/session/second-factor", json={"code": "000000"}) for _ in range(5)
        ]
        assert [error(a) for a in answers[:4]] == [(422, "two-factor-code-invalid")] * 4
        assert error(answers[4]) == (423, "two-factor-locked")
        until = answers[4].json()["error"]["locked_until"]
        assert until >= server_time(owner) + 14 * 60
        assert error(again.get("/api/v1/session")) == (401, "not-signed-in")
    wait_text(mail_relay, contact, "was locked after too many failed attempts")
    with owner.client() as third:
        owner.sign_in(third, address, password)
        locked = third.post(
            "/api/v1/session/second-factor", json={"code": next_code(owner, secret)}
        )
        assert error(locked) == (423, "two-factor-locked")
        owner.clock.offset += 16 * 60
        owner.sign_in(third, address, password)
        passed = third.post(
            "/api/v1/session/second-factor", json={"code": next_code(owner, secret)}
        )
        assert passed.status_code == 200, passed.text


def test_turning_off_needs_a_code_or_the_password(owner: OwnerSite) -> None:
    """A wrong password changes nothing; the right one turns it off; sign-in is one step again."""
    address, password = owner.mailbox()
    with owner.client() as client:
        owner.sign_in(client, address, password)
        assert error(client.post("/api/v1/account/2fa/disable", json={"password": password})) == (
            409,
            "two-factor-state",
        )
        unstarted = client.post(
            "/api/v1/account/2fa/confirm", json={"code": "123456", "password": password}
        )
        assert error(unstarted) == (409, "two-factor-state")
        secret, _ = enrol(owner, client, address)
        assert error(client.post("/api/v1/account/2fa")) == (409, "two-factor-state")
        wrong = client.post("/api/v1/account/2fa/disable", json={"password": "not-it"})
        assert error(wrong) == (401, "sign-in-failed")
        both = client.post(
            "/api/v1/account/2fa/disable", json={"password": password, "code": "123456"}
        )
        assert error(both) == (400, "malformed-request")
        assert client.get("/api/v1/account/2fa").json()["enabled"] is True
        off = client.post("/api/v1/account/2fa/disable", json={"code": next_code(owner, secret)})
        assert off.status_code == 200, off.text
        assert off.json()["enabled"] is False
    with owner.client() as again:
        assert owner.sign_in(again, address, password)["stage"] == "full"


def test_renewed_recovery_codes_replace_the_old(owner: OwnerSite) -> None:
    """After renewing, an old recovery code is wrong and a new one passes."""
    address, password = owner.mailbox()
    with owner.client() as client:
        owner.sign_in(client, address, password)
        _, old = enrol(owner, client, address)
        renewed = client.post("/api/v1/account/2fa/recovery-codes", json={"password": password})
        assert renewed.status_code == 200, renewed.text
        new = renewed.json()["recovery_codes"]
        assert not set(new) & set(old)
    with owner.client() as again:
        owner.sign_in(again, address, password)
        stale = again.post("/api/v1/session/second-factor", json={"code": old[0]})
        assert error(stale) == (422, "two-factor-code-invalid")
        assert again.post("/api/v1/session/second-factor", json={"code": new[0]}).status_code == 200


def test_app_passwords_are_shown_once_listed_and_revoked(
    owner: OwnerSite, mail_relay: RelayRunner
) -> None:
    """Created with a label (shown once), listed without it, revoked; others' are out of reach."""
    address, password = owner.mailbox()
    contact = add_contact(owner, address)
    other, other_password = owner.mailbox()
    with owner.client() as client:
        owner.sign_in(client, address, password)
        made = client.post("/api/v1/account/app-passwords", json={"label": " Thunderbird "})
        assert made.status_code == 201, made.text
        created = made.json()
        assert created["label"] == "Thunderbird"
        assert len(created["password"].replace("-", "")) == 24
        listed = client.get("/api/v1/account/app-passwords")
        assert [p["label"] for p in listed.json()["app_passwords"]] == ["Thunderbird"]
        assert created["password"] not in listed.text
        assert "password" not in listed.json()["app_passwords"][0]
        again = client.post("/api/v1/account/app-passwords", json={"label": "Thunderbird"})
        assert error(again) == (409, "already-exists")
        control = client.post("/api/v1/account/app-passwords", json={"label": "a\u0007b"})
        assert error(control) == (422, "invalid-value")
        with owner.client() as stranger:
            owner.sign_in(stranger, other, other_password)
            theirs = stranger.delete(f"/api/v1/account/app-passwords/{created['id']}")
            assert error(theirs) == (404, "not-found")
        assert client.delete(f"/api/v1/account/app-passwords/{created['id']}").status_code == 204
        gone = client.delete(f"/api/v1/account/app-passwords/{created['id']}")
        assert error(gone) == (404, "not-found")
        assert error(client.delete("/api/v1/account/app-passwords/Thunderbird")) == (
            404,
            "not-found",
        )
        assert client.get("/api/v1/account/app-passwords").json() == {"app_passwords": []}
    wait_text(mail_relay, contact, "An app password was created")
    wait_text(mail_relay, contact, "was revoked")


def test_no_secret_reaches_the_audit_log(owner: OwnerSite) -> None:
    """The TOTP secret, recovery codes and app passwords appear in no audit record."""
    address, password = owner.mailbox()
    with owner.client() as client:
        owner.sign_in(client, address, password)
        secret, codes = enrol(owner, client, address)
        app = client.post("/api/v1/account/app-passwords", json={"label": "phone"}).json()
    with owner.services.store.read() as conn:
        records: list[Any] = list(
            conn.execute(select(audit_log).where(audit_log.c.target == address))
        )
    actions = {r.action for r in records}
    assert {"owner.2fa-setup", "owner.2fa-enabled", "owner.app-password-created"} <= actions
    dump = " ".join(str(tuple(r)) for r in records)
    for leaked in (secret, app["password"], *codes, *(c.replace("-", "") for c in codes)):
        assert leaked not in dump


def test_wrong_passwords_count_towards_the_lock(owner: OwnerSite) -> None:
    """Guessing the password to turn 2FA off is limited too: the fifth wrong one locks."""
    address, password = owner.mailbox()
    with owner.client() as client:
        owner.sign_in(client, address, password)
        enrol(owner, client, address)
        answers = [
            client.post("/api/v1/account/2fa/disable", json={"password": f"guess-{i}"})
            for i in range(5)
        ]
        assert [error(a) for a in answers] == [(401, "sign-in-failed")] * 4 + [
            (423, "two-factor-locked")
        ]
        right = client.post("/api/v1/account/2fa/disable", json={"password": password})
        assert error(right) == (423, "two-factor-locked")
        assert client.get("/api/v1/account/2fa").json()["enabled"] is True
