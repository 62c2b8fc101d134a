"""Reset by proving the identity again, the bindings made at provisioning, phone contacts through
an SMS hook, and the administrator's ``mailbox contact`` commands.

Tokens are signed by the tests themselves (``IssuerKey`` of the identity gate's tests), and the
issuer is trusted in the session's site like any other.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from mailprov.model import Secret
from mailprov.services import contacts, provisioning
from mailprov.services.accounts import Actor
from mailprov.store.schema import mailboxes
from mailprov.system import notify
from mailprov.testing import RelayRunner
from tests.conftest import Cli
from tests.integration.identity.conftest import AUDIENCE, IssuerKey
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

NEW_PASSWORD = "Identity-Proven-Passw0rd!"


@pytest.fixture(scope="session")
def issuer(owner_site: OwnerSite, tmp_path_factory: pytest.TempPathFactory) -> IssuerKey:
    """A test identity provider trusted by the session's site."""
    from mailprov.services import trust

    key = IssuerKey.new("https://idp.example/" + secrets.token_hex(3))
    jwks = tmp_path_factory.mktemp("issuer") / "jwks.json"
    jwks.write_text(json.dumps(key.jwks()))
    trust.add_issuer(
        owner_site.services.store,
        iss=key.iss,
        jwks_file=jwks,
        audience=AUDIENCE,
        actor=Actor("tester", owner_site.services.now()),
    )
    return key


def provision(
    owner: OwnerSite, issuer: IssuerKey, relay: RelayRunner, contact: str, sub: str
) -> tuple[str, str]:
    """A mailbox made through the whole request flow (token, code); (address, temporary password)."""
    services = owner.services
    settings, store, pepper = services.settings, services.store, services.pepper

    def send(message: notify.Message) -> str:
        return notify.send(settings.notify, message, base_dir=settings.base_dir)

    actor = Actor("tester", services.now())
    address = f"gate-{secrets.token_hex(4)}@example.test"
    request = provisioning.open_request(
        store,
        settings,
        address=address,
        kind="personal",
        recovery=contact,
        accept_terms=True,
        send=send,
        actor=actor,
    )
    token = Secret(issuer.token(request.nonce, sub=sub))
    provisioning.verify_with_token(
        store, settings, request.id, token, pepper=pepper, send=send, actor=actor
    )
    code = Secret(code_in(relay, contact, "Confirmation code"))
    done = provisioning.confirm(
        store, settings, request.id, code, pepper=pepper, send=send, actor=actor
    )
    return address, done.password.reveal()


def _start_identity(client: object, address: str) -> str:
    answer = client.post(  # type: ignore[attr-defined]
        "/api/v1/password-reset", json={"address": address, "via": "identity"}
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["nonce"])


def test_provisioning_binds_the_identity_and_the_first_contact(
    owner: OwnerSite, issuer: IssuerKey, mail_relay: RelayRunner
) -> None:
    """The request's contact is the mailbox's first, verified contact; iss|sub is bound to it."""
    contact, sub = new_contact(), f"subject-{secrets.token_hex(4)}"
    address, _ = provision(owner, issuer, mail_relay, contact, sub)
    found = contacts.list_contacts(owner.services.store, address)
    assert [(c.contact, c.kind.value, c.verified_at is not None) for c in found] == [
        (contact, "email", True)
    ]
    with owner.services.store.read() as conn:
        bound = conn.execute(
            select(mailboxes.c.identity).where(mailboxes.c.address == address)
        ).scalar_one()
    assert bound == f"{issuer.iss}|{sub}"


def test_reset_by_identity_end_to_end(
    owner: OwnerSite, issuer: IssuerKey, mail_relay: RelayRunner
) -> None:
    """The bound subject's token, then the code to the contact, set a new password; the token
    cannot be used again."""
    contact, sub = new_contact(), f"subject-{secrets.token_hex(4)}"
    address, temporary = provision(owner, issuer, mail_relay, contact, sub)
    with anonymous(owner) as client:
        nonce = _start_identity(client, address)
        token = issuer.token(nonce, sub=sub)
        proven = client.post(
            "/api/v1/password-reset/identity", json={"address": address, "token": token}
        )
        assert proven.status_code == 202, proven.text
        code = code_in(mail_relay, contact, RESET_SUBJECT)
        grant = client.post(
            "/api/v1/password-reset/confirm", json={"address": address, "code": code}
        ).json()["grant"]
        done = client.put(
            "/api/v1/password-reset/password", json={"grant": grant, "new": NEW_PASSWORD}
        )
        assert done.status_code == 200, done.text
        owner.clock.offset = 61
        nonce = _start_identity(client, address)
        replayed = issuer.token(nonce, sub=sub, jti=_jti(token))
        again = client.post(
            "/api/v1/password-reset/identity", json={"address": address, "token": replayed}
        )
        assert (again.status_code, again.json()["error"]["idg"]) == (409, "IDG-T14"), again.text
        stale = client.post(
            "/api/v1/password-reset/identity", json={"address": address, "token": token}
        )
        assert stale.json()["error"]["idg"] == "IDG-T13", stale.text
    with owner.client() as client:
        assert (
            client.post(
                "/api/v1/session", json={"address": address, "password": temporary}
            ).status_code
            == 401
        )
        assert owner.sign_in(client, address, NEW_PASSWORD)["stage"] == "full"
    actions = audit_actions(owner, address)
    assert {"owner.reset-identity", "owner.reset-confirm", "owner.password-reset"} <= set(actions)
    assert token not in audit_text(owner, address)


def _jti(token: str) -> str:
    import base64

    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["jti"])


def test_reset_by_identity_refuses_another_subject(
    owner: OwnerSite, issuer: IssuerKey, mail_relay: RelayRunner
) -> None:
    """Another subject's valid token, a mailbox with no bound identity, an unknown address: all
    403 identity-mismatch, no code sent, the password unchanged."""
    contact, sub = new_contact(), f"subject-{secrets.token_hex(4)}"
    address, temporary = provision(owner, issuer, mail_relay, contact, sub)
    unbound, _, unbound_contact = with_contact(owner)
    unknown = f"nobody-{secrets.token_hex(4)}@example.test"
    mail_relay.purge()
    errors = {}
    with anonymous(owner) as client:
        for target in (address, unbound, unknown):
            nonce = _start_identity(client, target)
            other = issuer.token(nonce, sub=f"someone-else-{secrets.token_hex(4)}")
            answer = client.post(
                "/api/v1/password-reset/identity", json={"address": target, "token": other}
            )
            errors[target] = (answer.status_code, answer.json()["error"]["code"])
        wrong_nonce = client.post(
            "/api/v1/password-reset/identity",
            json={"address": address, "token": issuer.token("not-the-nonce", sub=sub)},
        )
    assert set(errors.values()) == {(403, "identity-mismatch")}
    assert (wrong_nonce.status_code, wrong_nonce.json()["error"]["idg"]) == (422, "IDG-T13")
    assert mail_relay.messages(to=contact, subject=RESET_SUBJECT) == []
    assert mail_relay.messages(to=unbound_contact, subject=RESET_SUBJECT) == []
    assert "owner.reset-identity-failed" in audit_actions(owner, address)
    with owner.client() as client:
        assert owner.sign_in(client, address, temporary)["stage"] == "change-password"


def _hook(tmp_path: Path) -> tuple[str, Path]:
    script, out = tmp_path / "sms-gateway.py", tmp_path / "sms.jsonl"
    script.write_text(
        "import json, sys\n"
        f"with open({str(out)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'argv': sys.argv, 'stdin': sys.stdin.read()}) + '\\n')\n"
    )
    return f"{sys.executable} {script}", out


def _texts(out: Path, to: str) -> list[tuple[list[str], str]]:
    if not out.exists():
        return []
    seen = [json.loads(line) for line in out.read_text().splitlines()]
    return [(s["argv"], s["stdin"]) for s in seen if s["stdin"].splitlines()[0] == to]


def test_phone_contacts_through_the_sms_hook(
    owner: OwnerSite, mail_relay: RelayRunner, tmp_path: Path
) -> None:
    """With [notify] hook set, a phone number is a contact: its codes and notices go to the hook
    on stdin (never argv), mail contacts still by SMTP; without a hook, phones are refused."""
    address, password, mail_contact = with_contact(owner)
    typed = f"+7 (916) {secrets.randbelow(900) + 100}-{secrets.randbelow(9000) + 1000}"
    phone = "+" + "".join(c for c in typed if c.isdigit())
    hook, out = _hook(tmp_path)
    with owner.client() as client:
        owner.sign_in(client, address, password)
        refused = client.post("/api/v1/account/contacts", json={"contact": typed})
        assert refused.status_code == 422
        assert "no SMS gateway" in refused.json()["error"]["message"]
        with site_settings(owner, notify={"hook": hook}):
            added = client.post("/api/v1/account/contacts", json={"contact": typed})
            assert added.status_code == 202, added.text
            assert (added.json()["contact"]["contact"], added.json()["contact"]["kind"]) == (
                phone,
                "phone",
            )
            [(argv, text)] = _texts(out, phone)
            code = text.split(" is ")[1][:6]
            assert code.isdigit()
            assert CONTACT_SUBJECT in text
            assert not any(code in arg for arg in argv)
            confirmed = client.post(
                "/api/v1/account/contacts/confirm", json={"contact": phone, "code": code}
            )
            assert confirmed.status_code == 200, confirmed.text
            assert any(NOTICE_SUBJECT in t for _, t in _texts(out, phone))
            mail_relay.wait_for(to=mail_contact, subject=NOTICE_SUBJECT)
            with anonymous(owner) as anon:
                body = {"address": address, "via": "contact"}
                assert anon.post("/api/v1/password-reset", json=body).status_code == 202
                code_in(mail_relay, mail_contact, RESET_SUBJECT)
            assert mail_relay.messages(to=phone) == []
    deadline = time.monotonic() + 10  # the reset code goes out after the answer
    while not any(RESET_SUBJECT in t for _, t in _texts(out, phone)):
        assert time.monotonic() < deadline, "the reset code did not reach the phone's hook"
        time.sleep(0.05)
    with owner.client() as client:
        owner.sign_in(client, address, password)
        # '+' stands for itself in a URL path (and may be sent as %2B).
        removed = client.delete(f"/api/v1/account/contacts/{phone.replace('+', '%2B')}")
        assert removed.status_code == 200, removed.text
        assert removed.json()["removed"]["contact"] == phone
        assert client.delete(f"/api/v1/account/contacts/{phone}").status_code == 404


def test_request_takes_a_phone_only_with_a_hook(owner: OwnerSite, tmp_path: Path) -> None:
    """A request's recovery contact may be a phone number when an SMS hook is set (issue 11):
    refused without one, accepted (normalised) with one, and its notices go to the hook."""
    phone = f"+4915{secrets.randbelow(10**8):08d}"
    typed = f"{phone[:3]} {phone[3:7]} {phone[7:]}"

    def open_request(client: httpx.Client) -> httpx.Response:
        body = {
            "address": f"req-{secrets.token_hex(4)}@example.test",
            "kind": "personal",
            "recovery": typed,
            "accept_terms": True,
        }
        return client.post("/api/v1/requests", json=body)

    with anonymous(owner) as client:
        refused = open_request(client)
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, "recovery-invalid")
        assert "no SMS gateway" in refused.json()["error"]["message"]
        hook, out = _hook(tmp_path)
        with site_settings(owner, notify={"hook": hook}):
            opened = open_request(client)
        assert opened.status_code == 201, opened.text
        assert opened.json()["request"]["recovery"] == phone
    assert _texts(out, phone), "the 'opened' notice did not reach the hook"


def test_admin_contact_commands(owner: OwnerSite, mail_relay: RelayRunner, tmp_path: Path) -> None:
    """list, add (with a code, or --verified, audited as the admin), remove (not the last
    verified one without --allow-last; --missing-ok), each with --json."""
    cli = Cli(tmp_path / "state", config=owner.config)
    address, _ = owner.mailbox()
    first, second = new_contact(), new_contact()
    status, data = cli.json("mailbox", "contact", "list", address)
    assert (status, data["contacts"]) == (0, [])
    status, data = cli.json(
        "--actor", "admin-ann", "mailbox", "contact", "add", address, first, "--verified"
    )
    assert (status, data["changed"], data["contact"]["verified"]) == (0, True, True), data
    assert (
        cli.json("mailbox", "contact", "add", address, first, "--verified")[1]["changed"] is False
    )
    status, data = cli.json("mailbox", "contact", "add", address, second)
    assert (status, data["contact"]["verified"]) == (0, False), data
    code_in(mail_relay, second, CONTACT_SUBJECT)
    status, data = cli.json("mailbox", "contact", "add", address, "+79161234567", "--dry-run")
    assert (status, data["error"]["code"]) == (16, "recovery-invalid")
    status, data = cli.json("mailbox", "contact", "remove", address, first)
    assert (status, data["error"]["code"]) == (118, "last-contact")
    status, data = cli.json("mailbox", "contact", "remove", address, second, "--dry-run")
    assert (status, data["changed"], data["dry_run"]) == (0, False, True)
    assert cli.json("mailbox", "contact", "remove", address, second)[0] == 0
    assert cli.json("mailbox", "contact", "remove", address, first, "--allow-last")[0] == 0
    status, data = cli.json("mailbox", "contact", "remove", address, first, "--missing-ok")
    assert (status, data["changed"]) == (0, False)
    assert cli.json("mailbox", "contact", "remove", address, first)[0] == 3
    assert cli.json("mailbox", "contact", "list", address)[1]["contacts"] == []
    text = audit_text(owner, address)
    assert "'actor': 'admin-ann', 'action': 'owner.contact-added'" in text
    assert "'verified_by': 'administrator'" in text
