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
    assert made["token"].split("_", 2)[2] not in str(audit)


def _state(domain: str) -> dict[str, Any]:
    return {
        "version": 1,
        "domains": {domain: {}},
        "mailboxes": {f"ann@{domain}": {"name": "Ann", "quota": "1G", "generate_password": True}},
        "aliases": {f"postmaster@{domain}": {"destinations": [f"ann@{domain}"]}},
    }


def test_apply_and_export_over_http(owner: OwnerSite) -> None:
    """apply plans, applies once (a generated password once), then is changed: false; the
    export applies back with no change; deploy needs its own scope; read cannot apply.
    """
    domain = _domain()
    with _client(owner, _token(owner, "accounts:write")) as api:
        check = api.post("/api/v1/admin/apply", json={"state": _state(domain), "check": True})
        assert (check.status_code, check.json()["changed"]) == (200, True), check.text
        assert api.get(f"/api/v1/admin/mailboxes/ann@{domain}").status_code == 404
        done = api.post("/api/v1/admin/apply", json={"state": _state(domain)})
        assert done.json()["changed"] is True
        generated = done.json()["passwords"][f"ann@{domain}"]
        again = api.post("/api/v1/admin/apply", json={"state": _state(domain)})
        assert again.json()["changed"] is False and "passwords" not in again.json()
        exported = api.get("/api/v1/admin/export")
        assert exported.status_code == 200
        assert generated not in exported.text and "password_hash" not in exported.text
        back = api.post("/api/v1/admin/apply", json={"state": exported.json(), "check": True})
        assert back.json()["changed"] is False, back.json()["plan"]
        bad = api.post(
            "/api/v1/admin/apply",
            json={"state": {"version": 1, "mailboxes": {"x@nowhere.test": {"quota": "lots"}}}},
        )
        assert (bad.status_code, bad.json()["error"]["code"]) == (422, "state-invalid")
        deploy = api.post("/api/v1/admin/apply", json={"state": _state(domain), "deploy": True})
        assert (deploy.status_code, deploy.json()["error"]["code"]) == (403, "scope-refused")
    with _client(owner, _token(owner, "accounts:read")) as reader:
        assert reader.get("/api/v1/admin/export").status_code == 200
        refused = reader.post("/api/v1/admin/apply", json={"state": _state(domain)})
        assert refused.status_code == 403


def test_home_backend_on_a_one_host_site(owner: OwnerSite) -> None:
    """A one-host site has no backends: a mailbox or domain naming one is refused (422,
    unknown-backend) and nothing is made; clearing a domain's backend changes nothing."""
    domain = _domain()
    with _client(owner, _token(owner, "accounts:write", "accounts:read")) as api:
        refused = api.post("/api/v1/admin/domains", json={"name": domain, "backend": "b1"})
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, "unknown-backend")
        listed = api.get("/api/v1/admin/domains").json()["domains"]
        assert domain not in {d["name"] for d in listed}
        assert api.post("/api/v1/admin/domains", json={"name": domain}).status_code == 200
        box = f"ann@{domain}"
        refused = api.post("/api/v1/admin/mailboxes", json={"address": box, "backend": "b1"})
        assert refused.json()["error"]["code"] == "unknown-backend"
        made = api.post("/api/v1/admin/mailboxes", json={"address": box}).json()["mailbox"]
        assert (made["backend"], made["home"], made["home_from"]) == (None, None, "site")
        kept = api.patch(f"/api/v1/admin/domains/{domain}", json={"backend": None})
        assert kept.json() == {"changed": False, "domain": kept.json()["domain"]}
