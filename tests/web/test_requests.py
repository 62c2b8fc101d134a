"""The requester's flow over real HTTP (httpx against ``mailprov serve``), on both store backends:
address check, open with a secret handle, proof by token or certificate, codes caught by the
``mail_relay`` fixture, credentials shown once, a notice to the recovery contact on every state
change, and no secret in the audit log, the server's logs or any URL."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import itertools
import json
import logging
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from mailprov.store.schema import requests
from mailprov.testing import RelayRunner
from tests.conftest import invoke
from tests.integration.identity.conftest import AUDIENCE, IssuerKey
from tests.integration.identity.test_certificate_rows import crl, ec_key, leaf, pem, sign
from tests.web.conftest import OwnerSite

HANDLE = "X-Request-Handle"
_counter = itertools.count(1)
#: Loggers of the test harness itself (the capture relay), not of the server under test.
HARNESS_LOGGERS = ("mail.log", "mailprov.relay", "mailprov.testing", "httpx", "httpcore")


# -- trust: a token issuer and a CA (with its CRL), built by the tests ------------------------


@dataclass
class Ca:
    """A CA made with cryptography (what test_certificate_rows' helpers call ``pki``)."""

    ca_cert: Any
    ca_key: Any


def make_ca() -> Ca:
    """A self-signed P-256 CA: basicConstraints CA, keyCertSign and cRLSign."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = ec_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "requests test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Ca(cert, key)


@dataclass
class Trust:
    """What the site trusts for requests: one token issuer and one CA."""

    issuer: IssuerKey
    ca: Ca


@pytest.fixture(scope="session")
def trust(owner_site: OwnerSite) -> Trust:
    """The owner site trusts a test issuer (JWKS) and a test CA with a fresh CRL."""
    from mailprov.services import trust as trust_service
    from mailprov.services.accounts import Actor

    folder = owner_site.folder / "requests-trust"
    folder.mkdir(exist_ok=True)
    actor = Actor("tester", int(time.time()))
    issuer = IssuerKey.new("https://idp.example/" + secrets.token_hex(3))
    (folder / "jwks.json").write_text(json.dumps(issuer.jwks()))
    trust_service.add_issuer(
        owner_site.services.store,
        iss=issuer.iss,
        jwks_file=folder / "jwks.json",
        audience=AUDIENCE,
        actor=actor,
    )
    ca = make_ca()
    (folder / "ca.pem").write_bytes(pem(ca.ca_cert))
    (folder / "ca.crl").write_bytes(crl(ca))  # type: ignore[arg-type]
    trust_service.add_ca(
        owner_site.services.store,
        ca_file=folder / "ca.pem",
        crl_files=[folder / "ca.crl"],
        actor=actor,
    )
    return Trust(issuer, ca)


# -- the requester: a real HTTP client, and what it must never leak -------------------------


@dataclass
class Requester:
    """One person applying over HTTP: their client, request number, handle and secrets."""

    site: OwnerSite
    relay: RelayRunner
    trust: Trust
    client: httpx.Client
    urls: list[str]
    local: str = field(default_factory=lambda: f"req{next(_counter)}-{secrets.token_hex(3)}")
    number: str = ""
    handle: str = ""
    nonce: str = ""
    secrets: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The mailbox applied for."""
        return f"{self.local}@example.test"

    @property
    def recovery(self) -> str:
        """Where codes and notices go."""
        return f"{self.local}@recovery.example"

    def open(self, **changes: Any) -> httpx.Response:
        """POST /api/v1/requests for a personal mailbox; keeps the number and the handle."""
        body = {
            "address": self.address,
            "kind": "personal",
            "recovery": self.recovery,
            "accept_terms": True,
            **changes,
        }
        answer = self.client.post("/api/v1/requests", json=body)
        if answer.status_code == 201:
            data = answer.json()
            self.number, self.handle = data["request"]["id"], data["handle"]
            self.nonce = data["request"]["nonce"]
            self.secrets.append(self.handle)
        return answer

    def call(
        self, method: str, suffix: str = "", json: Any = None, handle: str | None = None
    ) -> httpx.Response:
        """One call about the request, with the handle in its header (or ``handle``)."""
        headers = {HANDLE: self.handle if handle is None else handle}
        return self.client.request(
            method, f"/api/v1/requests/{self.number}{suffix}", json=json, headers=headers
        )

    def state(self) -> str:
        """The request's state, as GET shows it."""
        answer = self.call("GET")
        assert answer.status_code == 200, answer.text
        return str(answer.json()["request"]["state"])

    def token(self, **changes: Any) -> str:
        """A token for this request's nonce from the trusted test issuer."""
        raw = self.trust.issuer.token(self.nonce, sub=f"sub-{self.local}", **changes)
        self.secrets.append(raw)
        return raw

    def prove(self) -> httpx.Response:
        """POST …/identity/token with a good token."""
        return self.call("POST", "/identity/token", json={"token": self.token()})

    def wait(self, subject: str, count: int = 1) -> list[Any]:
        """Messages to the recovery contact whose subject contains ``subject`` (waits)."""
        deadline = time.monotonic() + 10
        while True:
            found = self.relay.messages(to=self.recovery, subject=subject)
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) >= count, f"{len(found)} of {count} '{subject}' messages"
                return found
            time.sleep(0.02)

    def code(self, count: int = 1) -> str:
        """The newest confirmation code mailed to the recovery contact."""
        newest = self.wait("Confirmation code", count)[-1]
        match = re.search(r"is (\d{6})\.", newest.text)
        assert match, newest.text
        self.secrets.append(match.group(1))
        return match.group(1)

    def notices(self) -> dict[str, str]:
        """Every notice so far (not the codes): subject -> body."""
        return {
            m.subject: m.text
            for m in self.relay.messages(to=self.recovery)
            if "Confirmation code" not in m.subject
        }


@pytest.fixture
def person(
    owner: OwnerSite, mail_relay: RelayRunner, trust: Trust, caplog: pytest.LogCaptureFixture
) -> Iterator[Requester]:
    """A requester with a fresh client whose every URL is recorded; logs captured at DEBUG."""
    caplog.set_level(logging.DEBUG)
    urls: list[str] = []
    hooks = {"request": [lambda request: urls.append(str(request.url))]}
    with owner.client(event_hooks=hooks) as client:
        yield Requester(owner, mail_relay, trust, client, urls)


def server_log(caplog: pytest.LogCaptureFixture) -> str:
    """Everything the server side logged (the capture relay's own records left out)."""
    return "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if not r.name.startswith(HARNESS_LOGGERS)
    )


def assert_no_leaks(person: Requester, caplog: pytest.LogCaptureFixture) -> None:
    """No secret of ``person`` in any URL, the server's log, the audit log, or a notice."""
    from mailprov.services.audit import list_records

    audit_log = json.dumps([r.to_json() for r in list_records(person.site.services.store)])
    log_text = server_log(caplog)
    notices = "\n".join(person.notices().values())
    assert person.secrets
    for secret in person.secrets:
        assert not any(secret in url for url in person.urls)
        assert secret not in log_text
        assert secret not in audit_log
        if not secret.isdigit():  # a 6-digit code could occur by chance in a date; codes
            assert secret not in notices  # travel in their own messages, checked below
    for subject in person.notices():
        assert "code" not in subject.lower()


# -- the whole flow -------------------------------------------------------------------------


def test_personal_mailbox_from_check_to_first_sign_in(
    person: Requester, caplog: pytest.LogCaptureFixture
) -> None:
    """Check, open, prove by token, confirm: the credentials come once, the temporary password
    signs in at stage change-password, every state change is mailed, no secret leaks."""
    check = person.client.get("/api/v1/addresses/check", params={"address": person.address})
    assert check.status_code == 200, check.text
    assert check.json() == {"address": person.address, "available": True, "suggestions": []}

    opened = person.open()
    assert opened.status_code == 201, opened.text
    data = opened.json()
    assert data["warnings"] == []
    assert data["request"]["state"] == "open"
    assert data["request"]["next"]["action"] == "prove-identity"
    assert opened.headers["location"] == f"/api/v1/requests/{person.number}"
    assert opened.headers["cache-control"] == "no-store"
    assert len(person.handle) >= 40
    assert person.handle not in json.dumps(data["request"])

    verified = person.prove()
    assert verified.status_code == 200, verified.text
    assert verified.json()["request"]["state"] == "identity-verified"
    assert verified.json()["request"]["next"]["action"] == "confirm"
    assert verified.json()["request"]["nonce"] is None
    code = person.code()

    confirmed = person.call("POST", "/confirm", json={"code": code})
    assert confirmed.status_code == 200, confirmed.text
    answer = confirmed.json()
    credentials = answer["credentials"]
    password = credentials["temporary_password"]
    person.secrets.append(password)
    assert credentials["login"] == person.address
    assert credentials["expires_at"]
    assert answer["request"]["state"] == "provisioned"
    assert answer["request"]["next"]["action"] == "sign-in"

    again = person.call("POST", "/confirm", json={"code": code})
    assert again.status_code == 410
    assert again.json()["error"]["code"] == "code-used"
    assert again.json()["error"]["request_id"] == person.number
    assert password not in again.text

    shown = person.call("GET")
    assert shown.status_code == 200
    status = shown.json()["request"]
    assert status["state"] == "provisioned"
    assert [e["event"] for e in status["history"]][:4] == [
        "open",
        "verify",
        "confirm",
        "provision",
    ]
    assert password not in shown.text
    assert code not in shown.text

    with person.site.client() as fresh:
        session = fresh.post(
            "/api/v1/session", json={"address": person.address, "password": password}
        )
        assert session.status_code == 201, session.text
        assert session.json()["stage"] == "change-password"

    person.wait("is ready")
    subjects = set(person.notices())
    assert {
        f"Mail request {person.number} opened",
        f"Mail request {person.number}: identity verified",
        f"Your mailbox {person.address} is ready",
    } == subjects
    assert_no_leaks(person, caplog)


def test_taken_address_gets_suggestions(person: Requester) -> None:
    """An address held by a mailbox or by a pending request is not available; 3+ free
    suggestions come with the check (GET and POST) and with the refused open."""
    taken, _ = person.site.mailbox()
    for answer in (
        person.client.get("/api/v1/addresses/check", params={"address": taken}),
        person.client.post("/api/v1/addresses/check", json={"address": taken}),
    ):
        assert answer.status_code == 200, answer.text
        data = answer.json()
        assert (data["address"], data["available"]) == (taken, False)
        assert len(data["suggestions"]) >= 3
        assert taken not in data["suggestions"]
    refused = person.open(address=taken)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "address-taken"
    assert len(refused.json()["error"]["suggestions"]) >= 3

    assert person.open().status_code == 201
    pending = person.client.post("/api/v1/addresses/check", json={"address": person.address})
    assert pending.json()["available"] is False
    assert len(pending.json()["suggestions"]) >= 3
    bad = person.client.get("/api/v1/addresses/check", params={"address": "no..dots@example.test"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid-address")


def test_wrong_handle_answers_like_an_unknown_number(person: Requester) -> None:
    """A wrong handle, no handle, a handle in the query string and an unknown number all get
    the same 404; nothing is changed by a refused call."""
    assert person.open().status_code == 201

    def stripped(answer: httpx.Response) -> tuple[int, dict[str, Any]]:
        error = dict(answer.json()["error"])
        error.pop("request_id", None)
        return answer.status_code, error

    wrong = person.call("GET", handle=secrets.token_urlsafe(32))
    missing = person.client.get(f"/api/v1/requests/{person.number}")
    in_query = person.client.get(
        f"/api/v1/requests/{person.number}", params={"handle": person.handle}
    )
    unknown_number = "ZZZZ-ZZZ2" if person.number != "ZZZZ-ZZZ2" else "ZZZZ-ZZZ3"
    unknown = person.client.get(
        f"/api/v1/requests/{unknown_number}", headers={HANDLE: person.handle}
    )
    assert stripped(wrong)[0] == 404
    assert stripped(wrong)[1]["code"] == "request-unknown"
    assert stripped(wrong) == stripped(missing) == stripped(in_query) == stripped(unknown)
    assert wrong.json()["error"]["request_id"] == person.number
    assert unknown.json()["error"]["request_id"] == unknown_number
    cancel = person.call("POST", "/cancel", handle="not-the-handle")
    assert cancel.status_code == 404
    assert person.state() == "open"


def test_five_wrong_codes_lock_the_request_and_tell_the_contact(
    person: Requester, caplog: pytest.LogCaptureFixture
) -> None:
    """Five wrong codes lock the request (notice sent); the right code is then refused with 423
    naming the request; a resent code unlocks it and provisions."""
    assert person.open().status_code == 201
    assert person.prove().status_code == 200
    code = person.code()
    wrong = "000000" if code != "000000" else "111111"
    for left in (4, 3, 2, 1, 0):
        answer = person.call("POST", "/confirm", json={"code": wrong})
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["attempts_left"] == left
        assert answer.json()["error"]["request_id"] == person.number
    assert person.state() == "locked"
    person.wait(f"Mail request {person.number} locked")
    refused = person.call("POST", "/confirm", json={"code": code})
    assert refused.status_code == 423
    assert refused.json()["error"]["code"] == "request-locked"
    assert refused.json()["error"]["request_id"] == person.number

    person.site.clock.offset = 61  # a new code is allowed a minute after the last
    resent = person.call("POST", "/resend")
    assert resent.status_code == 200, resent.text
    assert resent.json()["request"]["state"] == "identity-verified"
    fresh = person.code(count=2)
    done = person.call("POST", "/confirm", json={"code": fresh})
    assert done.status_code == 200, done.text
    person.secrets.append(done.json()["credentials"]["temporary_password"])
    assert_no_leaks(person, caplog)


def test_expired_request_is_marked_and_told(person: Requester) -> None:
    """A request past its lifetime shows as expired (its contact is told) and takes no proof."""
    assert person.open().status_code == 201
    person.site.clock.offset = 25 * 3600
    shown = person.call("GET").json()["request"]
    assert (shown["state"], shown["reason"]["code"]) == ("expired", "expired")
    assert shown["next"]["action"] == "open-new"
    assert "has expired" in person.wait(f"Mail request {person.number} expired")[0].text
    late = person.prove()
    assert (late.status_code, late.json()["error"]["code"]) == (409, "request-state")


def test_cancel_is_told_and_final(person: Requester) -> None:
    """Cancelling tells the recovery contact; a cancelled request cannot be cancelled again."""
    assert person.open().status_code == 201
    cancelled = person.call("POST", "/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["request"]["state"] == "cancelled"
    person.wait(f"Mail request {person.number} cancelled")
    again = person.call("POST", "/cancel")
    assert (again.status_code, again.json()["error"]["request_id"]) == (409, person.number)


def test_name_mismatch_rejects_with_its_reason(person: Requester) -> None:
    """A verified identity that is not the named owner rejects the request (IDG-V05); the
    status names the reason and the contact is told."""
    assert person.open(name="Boris Petrov").status_code == 201
    refused = person.prove()
    assert refused.status_code == 422
    assert refused.json()["error"]["idg"] == "IDG-V05"
    shown = person.call("GET").json()["request"]
    assert shown["state"] == "rejected"
    assert shown["reason"]["code"] == "IDG-V05"
    assert "does not match" in shown["reason"]["message"]
    notice = person.wait(f"Mail request {person.number} rejected")[0]
    assert "IDG-V05" in notice.text


def test_certificate_route(person: Requester, caplog: pytest.LogCaptureFixture) -> None:
    """A fresh challenge signed with the certificate's key proves identity; a .p12 (which would
    carry the private key) is refused; then the code provisions."""
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

    assert person.open().status_code == 201
    key = ec_key()
    cert = leaf(person.trust.ca, key, cn="Cert Holder")  # type: ignore[arg-type]
    challenge = person.call("POST", "/challenge")
    assert challenge.status_code == 200, challenge.text
    text = challenge.json()["request"]["challenge"]
    assert person.number in text

    p12 = pkcs12.serialize_key_and_certificates(
        b"holder", key, cert, None, BestAvailableEncryption(b"container-pw")
    )
    refused = person.call(
        "POST",
        "/identity/certificate",
        json={
            "certificate": base64.b64encode(p12).decode(),
            "signature": base64.b64encode(sign(key, text)).decode(),
        },
    )
    assert refused.status_code == 422
    assert (refused.json()["error"]["idg"], refused.json()["error"]["request_id"]) == (
        "IDG-C04",
        person.number,
    )

    proved = person.call(
        "POST",
        "/identity/certificate",
        json={
            "certificate": pem(cert).decode(),
            "signature": base64.b64encode(sign(key, text)).decode(),
        },
    )
    assert proved.status_code == 200, proved.text
    assert proved.json()["request"]["state"] == "identity-verified"
    done = person.call("POST", "/confirm", json={"code": person.code()})
    assert done.status_code == 200, done.text
    person.secrets.append(done.json()["credentials"]["temporary_password"])
    assert done.json()["request"]["name"] == "Cert Holder"
    assert_no_leaks(person, caplog)


def test_a_notice_that_cannot_be_sent_is_a_warning(
    person: Requester, caplog: pytest.LogCaptureFixture
) -> None:
    """The recovery contact's server refusing the notices changes nothing: the request opens
    and is cancelled, each answer carries a warning, and the server logs it (no address)."""
    person.relay.fault(f"rcpt:{person.recovery}=550 5.1.1 no such user")
    opened = person.open()
    assert opened.status_code == 201, opened.text
    assert "'opened' notice" in opened.json()["warnings"][0]
    cancelled = person.call("POST", "/cancel")
    assert cancelled.status_code == 200
    assert "'cancelled' notice" in cancelled.json()["warnings"][0]
    assert person.state() == "cancelled"
    log_text = server_log(caplog)
    assert f"request {person.number}: the cancelled notice was not sent" in log_text
    assert person.recovery not in log_text


def test_the_cli_path_notifies_too(person: Requester, tmp_path: Path) -> None:
    """'request open' and 'request cancel' on the same site mail their notices; a request
    opened by the CLI has no handle, so over HTTP it is as unknown as any other number."""
    site = person.site
    opened = invoke(
        "request",
        "open",
        person.address,
        "--kind",
        "personal",
        "--recovery",
        person.recovery,
        "--accept-terms",
        config=site.config,
        state_dir=tmp_path,
        json=True,
    )
    assert opened.exit_code == 0, opened.output
    person.number = opened.data["request"]["id"]
    person.wait(f"Mail request {person.number} opened")
    assert person.call("GET", handle="").status_code == 404
    cancelled = invoke(
        "request", "cancel", person.number, config=site.config, state_dir=tmp_path, json=True
    )
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.data["warnings"] == []
    person.wait(f"Mail request {person.number} cancelled")


def test_one_client_opens_a_bounded_number_of_requests(owner: OwnerSite) -> None:
    """[web] requests_per_client_hour: beyond it a client is refused (nothing is created) with
    how long to wait; another client still can, and an hour later this one can again."""
    from mailprov.errors import RateLimited
    from mailprov.services import requester
    from mailprov.services.accounts import Actor

    services = owner.services
    web = dataclasses.replace(services.settings.web, requests_per_client_hour=2)
    settings = dataclasses.replace(services.settings, web=web)
    now = int(owner.clock())
    ip, other = f"198.51.100.{secrets.randbelow(250) + 1}", "203.0.113.7"

    def open_one(client: str, at: int) -> str:
        req, _handle = requester.open_request(
            services.store,
            settings,
            services.pepper,
            send=lambda message: None,
            actor=Actor(f"requester:{client}", at),
            address=f"rate-{secrets.token_hex(4)}@example.test",
            kind="personal",
            recovery=f"back-{secrets.token_hex(3)}@example.org",
            accept_terms=True,
        )
        return req.id

    open_one(ip, now)
    open_one(ip, now + 10)
    with services.store.read() as conn:
        before = conn.execute(select(func.count()).select_from(requests)).scalar()
    with pytest.raises(RateLimited) as refused:
        open_one(ip, now + 20)
    assert "2 requests" in refused.value.message
    assert refused.value.code == "client-rate-limited"  # words of its own in the portal
    assert refused.value.hint is not None and "wait 3580 s" in refused.value.hint
    with services.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(requests)).scalar() == before
    assert open_one(other, now + 20)
    assert open_one(ip, now + 3601)
