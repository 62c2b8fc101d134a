"""Sign-in, the session, the forced first change and the API's gate, over real HTTP."""

from __future__ import annotations

import httpx

from tests.web.conftest import OwnerSite


def test_sign_in_gives_a_full_session_and_its_cookie(owner: OwnerSite) -> None:
    """A right password opens a 'full' session; the cookie is HttpOnly and SameSite=Strict."""
    address, password = owner.mailbox()
    with owner.client() as client:
        answer = client.post("/api/v1/session", json={"address": address, "password": password})
        assert answer.status_code == 201, answer.text
        assert answer.json()["stage"] == "full"
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert answer.headers["cache-control"] == "no-store"
        assert client.get("/api/v1/account").json()["address"] == address


def test_wrong_password_and_unknown_address_get_the_same_answer(owner: OwnerSite) -> None:
    """No account enumeration: the same status and document for both."""
    address, _ = owner.mailbox()
    with owner.client() as client:
        wrong = client.post("/api/v1/session", json={"address": address, "password": "nope"})
        unknown = client.post(
            "/api/v1/session", json={"address": "nobody@example.test", "password": "nope"}
        )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "sign-in-failed"
    assert "nope" not in wrong.text


def test_temporary_password_allows_only_the_change(owner: OwnerSite) -> None:
    """With a temporary password the session may only set a new one; then it is full."""
    address, temporary = owner.mailbox(temporary=True)
    with owner.client() as client:
        assert owner.sign_in(client, address, temporary)["stage"] == "change-password"
        refused = client.get("/api/v1/account")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "session-stage"
        same = client.put("/api/v1/account/password", json={"current": temporary, "new": temporary})
        assert same.status_code == 422, same.text
        weak = client.put("/api/v1/account/password", json={"current": temporary, "new": "short"})
        assert weak.status_code == 422
        assert weak.json()["error"]["code"] == "password-policy"
        new = "Own-Passw0rd!x"
        changed = client.put("/api/v1/account/password", json={"current": temporary, "new": new})
        assert changed.status_code == 200, changed.text
        assert changed.json()["stage"] == "full"
        assert client.get("/api/v1/account").status_code == 200
    with owner.client() as again:
        assert owner.sign_in(again, address, new)["stage"] == "full"


def test_cookie_writes_need_the_csrf_token(owner: OwnerSite) -> None:
    """A write with the cookie but without X-CSRF-Token is refused and changes nothing."""
    address, password = owner.mailbox()
    with owner.client() as client:
        owner.sign_in(client, address, password)
        del client.headers["X-CSRF-Token"]
        refused = client.put(
            "/api/v1/account/password", json={"current": password, "new": "An0ther-Passw0rd!"}
        )
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "csrf-refused"
    with owner.client() as again:
        assert owner.sign_in(again, address, password)["stage"] == "full"


def test_bearer_token_needs_no_csrf(owner: OwnerSite) -> None:
    """A script uses the token from sign-in as a bearer token; no cookie, no CSRF header."""
    address, password = owner.mailbox()
    with owner.client() as client:
        token = owner.sign_in(client, address, password)["token"]
    with owner.client(headers={"Authorization": f"Bearer {token}"}) as script:
        assert script.get("/api/v1/session").json()["address"] == address
        assert script.delete("/api/v1/session").status_code == 204
        assert script.get("/api/v1/session").status_code == 401


def test_idle_session_ends(owner: OwnerSite) -> None:
    """After [web] session_idle_minutes without a request the session is gone (401)."""
    address, password = owner.mailbox()
    with owner.client() as client:
        owner.sign_in(client, address, password)
        owner.clock.offset = 31 * 60
        answer = client.get("/api/v1/session")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "not-signed-in"


def test_gate_refuses_foreign_host_cross_site_writes_and_bad_bodies(owner: OwnerSite) -> None:
    """421 for another Host, 403 for a foreign Origin, 415 for non-JSON, 400 naming the field."""
    with owner.client() as client:
        assert client.get("/api/v1/openapi.json", headers={"Host": "evil.test"}).status_code == 421
        foreign = client.post(
            "/api/v1/session",
            json={"address": "a@example.test", "password": "x"},
            headers={"Origin": "https://evil.test"},
        )
        assert foreign.status_code == 403
        form = client.post(
            "/api/v1/session", content=b"address=a", headers={"Content-Type": "text/plain"}
        )
        assert form.status_code == 415
        missing = client.post("/api/v1/session", json={"address": "a@example.test"})
        assert missing.status_code == 400
        assert missing.json()["error"]["code"] == "malformed-request"
        extra = client.post(
            "/api/v1/session",
            json={"address": "a@example.test", "password": "s3cret-value", "x": 1},
        )
        assert extra.status_code == 400
        assert "s3cret-value" not in extra.text
        unknown = client.get("/api/v1/no-such-thing")
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "not-found"


def test_sign_in_and_change_are_audited_without_secrets(owner: OwnerSite) -> None:
    """The audit log records the sign-in and the change; no password appears in it."""
    from mailprov.services.audit import list_records

    address, temporary = owner.mailbox(temporary=True)
    new = "Audit-Passw0rd!q"
    with owner.client() as client:
        owner.sign_in(client, address, temporary)
        client.put("/api/v1/account/password", json={"current": temporary, "new": new})
    records = list_records(owner.services.store, target=address)
    actions = [r.action for r in records]
    assert "owner.sign-in" in actions and "owner.password-changed" in actions
    text = repr([r.details for r in records])
    assert temporary not in text and new not in text


def test_http_client_sees_json_errors_everywhere(owner: OwnerSite) -> None:
    """A wrong method is JSON too (405), with the security headers."""
    with owner.client() as client:
        answer = client.patch("/api/v1/session", json={})
    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "method-not-allowed"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


_ = httpx
