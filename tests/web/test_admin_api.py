"""The admin API over real HTTP: scoped tokens, the CLI's semantics, no password leaves."""

from __future__ import annotations

import secrets
from typing import Any

from mailprov.services import tokens
from mailprov.services.accounts import Actor
from mailprov.services.audit import list_records
from tests.conftest import Cli
from tests.web.conftest import OwnerSite


def _token(site: OwnerSite, *scopes: str, expires_in: int | None = None) -> str:
    secret, _ = tokens.create(
        site.services.store,
        list(scopes),
        actor=Actor("tester", int(site.clock())),
        expires_in=expires_in,
    )
    return secret.reveal()


def _client(site: OwnerSite, token: str) -> Any:
    return site.client(headers={"Authorization": f"Bearer {token}"})


def _domain() -> str:
    return f"d{secrets.token_hex(4)}.test"


def test_write_token_manages_domains_mailboxes_aliases(owner: OwnerSite) -> None:
    """Create, re-create with exist_ok (changed false), change, alias, remove — as the CLI does."""
    domain = _domain()
    with _client(owner, _token(owner, "accounts:write")) as api:
        made = api.post("/api/v1/admin/domains", json={"name": domain})
        assert (made.status_code, made.json()["changed"]) == (200, True), made.text
        again = api.post("/api/v1/admin/domains", json={"name": domain, "exist_ok": True})
        assert again.json()["changed"] is False
        assert api.post("/api/v1/admin/domains", json={"name": domain}).status_code == 409

        box = f"ann@{domain}"
        created = api.post("/api/v1/admin/mailboxes", json={"address": box, "quota": "1G"})
        assert created.status_code == 200, created.text
        generated = created.json()["password"]
        assert len(generated) >= 12
        same = api.post(
            "/api/v1/admin/mailboxes", json={"address": box, "quota": "1G", "exist_ok": True}
        )
        assert same.json() == {"changed": False, "mailbox": same.json()["mailbox"]}
        assert "password" not in same.json()
        other = api.post(
            "/api/v1/admin/mailboxes", json={"address": box, "quota": "2G", "exist_ok": True}
        )
        assert (other.status_code, other.json()["error"]["code"]) == (409, "conflict")

        shown = api.get(f"/api/v1/admin/mailboxes/{box}").json()["mailbox"]
        assert generated not in str(shown) and "hash" not in str(shown).lower()
        patched = api.patch(f"/api/v1/admin/mailboxes/{box}", json={"quota": "2G"})
        assert patched.json()["changed"] is True
        assert (
            api.patch(f"/api/v1/admin/mailboxes/{box}", json={"quota": "2G"}).json()["changed"]
            is False
        )

        alias = api.post(
            "/api/v1/admin/aliases", json={"source": f"team@{domain}", "destinations": [box]}
        )
        assert alias.json()["changed"] is True
        busy = api.delete(f"/api/v1/admin/mailboxes/{box}")
        assert (busy.status_code, busy.json()["error"]["code"]) == (409, "in-use")
        assert api.delete(f"/api/v1/admin/aliases/team@{domain}").json()["changed"] is True
        assert api.delete(f"/api/v1/admin/mailboxes/{box}").json()["changed"] is True
        assert api.get(f"/api/v1/admin/mailboxes/{box}").status_code == 404
        assert api.delete(f"/api/v1/admin/domains/{domain}").json()["changed"] is True
    text = repr([r.details for r in list_records(owner.services.store, target=box)])
    assert generated not in text


def test_read_scope_cannot_write_and_bad_tokens_are_refused(owner: OwnerSite) -> None:
    """accounts:read lists but gets 403 on writes; unknown, revoked, expired tokens get 401."""
    read = _token(owner, "accounts:read")
    with _client(owner, read) as api:
        assert api.get("/api/v1/admin/domains").status_code == 200
        refused = api.post("/api/v1/admin/domains", json={"name": _domain()})
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "scope-refused")
    for bad in ("mpa_nope_nope", read[:-2] + "xx", "not-a-token"):
        with _client(owner, bad) as api:
            answer = api.get("/api/v1/admin/domains")
            assert (answer.status_code, answer.json()["error"]["code"]) == (
                401,
                "admin-token-refused",
            )
    token_id = read.split("_")[1]
    assert tokens.revoke(owner.services.store, token_id, actor=Actor("tester", 1))
    with _client(owner, read) as api:
        assert api.get("/api/v1/admin/domains").status_code == 401
    short = _token(owner, "accounts:read", expires_in=60)
    owner.clock.offset = 120
    with _client(owner, short) as api:
        assert api.get("/api/v1/admin/domains").status_code == 401


def test_owner_session_is_no_admin_token(owner: OwnerSite) -> None:
    """A mailbox owner's session token opens nothing under /api/v1/admin."""
    address, password = owner.mailbox()
    with owner.client() as client:
        token = owner.sign_in(client, address, password)["token"]
        assert client.get("/api/v1/admin/domains").status_code == 401
    with _client(owner, token) as api:
        assert api.get("/api/v1/admin/domains").status_code == 401


def test_token_cli_create_list_revoke(run: Cli) -> None:
    """The token is shown once; list never shows it; revoke is idempotent with --missing-ok."""
    status, made = run.json("token", "create", "--scope", "accounts:write", "--label", "ansible")
    assert status == 0 and made["token"].startswith("mpa_")
    status, listed = run.json("token", "list")
    assert made["token"] not in str(listed)
    assert listed["tokens"][0]["scopes"] == ["accounts:write"]
    assert run.json("token", "revoke", made["id"])[1]["changed"] is True
    assert run.json("token", "revoke", made["id"])[1]["changed"] is False
    assert run("token", "revoke", "nosuch").exit_code == 3
    assert run.json("token", "revoke", "nosuch", "--missing-ok")[0] == 0
    bad = run("token", "create", "--scope", "everything")
    assert bad.exit_code == 2
    audit = run.json("audit", "list")[1]
    assert made["token"].split("_")[2] not in str(audit)
