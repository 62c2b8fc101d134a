"""The portal's defences, over real HTTP (httpx) and in a real browser: headers and cookies,
CSRF tokens tampered with, missing or replayed, cross-site forms, double submits (nothing is
created twice), the credentials shown once, and no secret in a URL or the server's log."""

from __future__ import annotations

import logging
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailprov.services import provisioning
from mailprov.testing import RelayRunner
from tests.web.conftest import OwnerSite
from tests.web.portal.conftest import REPO

TEMPLATES = REPO / "templates" / "portal"
FIELD = re.compile(r'name="(csrf|once)" value="([^"]*)"')


def _fields(html: str, form: str | None = None) -> dict[str, str]:
    """The csrf and once fields of the first form (or of the form posting to ``form``)."""
    if form is not None:
        html = html[html.index(f'action="{form}"') :]
    found: dict[str, str] = {}
    for name, value in FIELD.findall(html):
        found.setdefault(name, value)
    return found


def _requests_for(owner: OwnerSite, address: str) -> list[Any]:
    return [r for r in provisioning.list_requests(owner.services.store) if r.address == address]


def _server_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        f"{r.name} {r.getMessage()}"
        for r in caplog.records
        if r.name.startswith("mailprov") and not r.name.startswith("mailprov.relay")
    )


def test_headers_cookies_and_no_inline_code(owner: OwnerSite) -> None:
    """Every page: a strict CSP without inline code, no framing, no-store, same-origin referrer;
    the form cookie is HttpOnly and SameSite=Strict (and Secure behind an HTTPS proxy); no
    template holds an inline script, style or event handler."""
    from mailprov.web.portal.core import PAGE_CSP

    with owner.client() as client:
        for path in ("/", "/apply", "/status", "/signin", "/no-such-page"):
            answer = client.get(path)
            assert answer.status_code == (404 if path == "/no-such-page" else 200)
            assert answer.headers["content-type"].startswith("text/html")
            assert PAGE_CSP == answer.headers["content-security-policy"]
            assert "unsafe-inline" not in PAGE_CSP
            assert "frame-ancestors 'none'" in PAGE_CSP
            assert "no-store" == answer.headers["cache-control"]
            assert "nosniff" == answer.headers["x-content-type-options"]
            assert "same-origin" == answer.headers["referrer-policy"]
        assert "text/css" in client.get("/static/portal.css").headers["content-type"]
        assert "javascript" in client.get("/static/portal.js").headers["content-type"]
    with owner.client() as fresh:
        cookie = fresh.get("/").headers["set-cookie"]
        assert "mailprov_form=" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Secure" not in cookie  # plain HTTP on loopback
    with owner.client(headers={"X-Forwarded-Proto": "https"}) as proxied:
        assert "Secure" in proxied.get("/").headers["set-cookie"]
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert not re.search(r"\sstyle=|<style|\son[a-z]+=", text), template.name


def test_csrf_tampered_missing_or_from_another_browser_is_refused(
    visit: Any, owner: OwnerSite
) -> None:
    """A form whose CSRF token was changed, removed, or taken from another browser's page is
    refused with a page that says nothing changed; no request is opened."""
    alice, mallory = visit("en"), visit("en")
    address = f"csrf-{secrets.token_hex(4)}@example.test"

    def fill(person: Any) -> None:
        person.open("/apply")
        person.page.fill("#local", address.partition("@")[0])
        person.page.fill("#recovery", f"r-{secrets.token_hex(3)}@home.example")
        person.page.check("#accept_terms")

    for tamper in (
        "document.querySelector('[name=csrf]').value = '0'.repeat(64)",
        "document.querySelector('[name=csrf]').remove()",
    ):
        fill(alice)
        alice.page.evaluate(tamper)
        alice.submit("button[value=apply]")
        assert "This form was not accepted" in alice.text()
        assert "Nothing was changed" in alice.text()
    fill(alice)
    stolen = alice.page.evaluate("document.querySelector('[name=csrf]').value")
    fill(mallory)
    mallory.page.evaluate(f"document.querySelector('[name=csrf]').value = '{stolen}'")
    mallory.submit("button[value=apply]")
    assert "This form was not accepted" in mallory.text()
    mallory.check_accessible()
    assert _requests_for(owner, address) == []
    alice.submit("button[value=apply]")  # her own, untouched form still works
    assert len(_requests_for(owner, address)) == 1


def test_a_session_token_does_not_outlive_its_session(owner: OwnerSite) -> None:
    """The signed-in forms' CSRF token is bound to the session: after signing out and in
    again, a form made in the old session is refused."""
    address, password = owner.mailbox()
    with owner.client() as client:
        signin = _fields(client.get("/signin").text)
        signed = client.post("/signin", data={**signin, "address": address, "password": password})
        assert (signed.status_code, signed.headers["location"]) == (303, "/account")
        old = _fields(client.get("/account").text, "/signout")
        assert client.post("/signout", data=old).status_code == 303
        again = _fields(client.get("/signin").text)
        client.post("/signin", data={**again, "address": address, "password": password})
        replayed = client.post(
            "/account/password",
            data={
                **old,
                "current": password,
                "new": "Other-Pass-99!x",
                "repeat": "Other-Pass-99!x",
            },
        )
        assert replayed.status_code == 403
        assert "This form was not accepted" in replayed.text
        assert client.get("/account").status_code == 200  # still signed in, nothing changed


def test_cross_site_form_is_refused(owner: OwnerSite) -> None:
    """A form sent from another site (its Origin) is refused before anything runs."""
    local = f"xsite-{secrets.token_hex(4)}"
    with owner.client() as client:
        fields = _fields(client.get("/apply").text)
        answer = client.post(
            "/apply",
            data={**fields, "local": local, "domain": "example.test", "recovery": "a@b.example"},
            headers={"Origin": "https://evil.example"},
        )
    assert answer.status_code == 403
    assert _requests_for(owner, f"{local}@example.test") == []


def test_double_submits_create_nothing_twice_and_credentials_show_once(
    owner: OwnerSite, mail_relay: RelayRunner, caplog: pytest.LogCaptureFixture
) -> None:
    """The same application form sent twice at once opens one request (both answers lead to it);
    the same code sent twice provisions once and the credentials page shows the password once;
    no handle, code or password reaches a URL or the server's log."""
    caplog.set_level(logging.DEBUG)
    local = f"twice-{secrets.token_hex(4)}"
    recovery = f"{local}@home.example"
    urls: list[str] = []
    hooks = {"request": [lambda request: urls.append(str(request.url))]}
    with owner.client(event_hooks=hooks) as client:
        form = {
            **_fields(client.get("/apply").text),
            "kind": "personal",
            "local": local,
            "domain": "example.test",
            "recovery": recovery,
            "accept_terms": "yes",
            "action": "apply",
        }
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda _: client.post("/apply", data=form), range(2)))
        assert [a.status_code for a in answers] == [303, 303]
        cookies = {
            a.headers["set-cookie"].split(";")[0]
            for a in answers
            if "mailprov_application" in a.headers.get("set-cookie", "")
        }
        assert len(cookies) == 1
        assert len(_requests_for(owner, f"{local}@example.test")) == 1
        handle = cookies.pop().partition(":")[2]

        provider = client.get("/identity/test-provider")
        proved = client.post(
            "/identity/test-provider",
            data={
                **_fields(provider.text),
                "given_name": "Twice",
                "family_name": secrets.token_hex(3),
                "birthdate": "1990-01-01",
                "level": "ial2",
            },
        )
        assert proved.headers["location"] == "/application"
        code = mail_relay.wait_for(to=recovery, subject="Confirmation code").code(r"is (\d{6})\.")
        confirm = {**_fields(client.get("/application").text, "/application/confirm"), "code": code}
        with ThreadPoolExecutor(2) as pool:
            confirmed = list(
                pool.map(lambda _: client.post("/application/confirm", data=confirm), range(2))
            )
        assert [a.headers["location"] for a in confirmed] == ["/application/credentials"] * 2
        first = client.get("/application/credentials")
        assert first.status_code == 200
        password = re.search(r'id="temporary-password">([^<]+)<', first.text)
        assert password is not None
        second = client.get("/application/credentials")
        assert second.status_code == 410
        assert password.group(1) not in second.text
    log_text = _server_log(caplog)
    for secret in (handle, code, password.group(1)):
        assert not any(secret in url for url in urls)
        assert secret not in log_text


def test_language_switch_and_its_redirect_stay_on_this_site(owner: OwnerSite) -> None:
    """The switch remembers the language in a cookie over Accept-Language and goes back only
    to a page of this site."""
    with owner.client(headers={"Accept-Language": "en"}) as client:
        switched = client.get("/language", params={"to": "ru", "next": "/apply"})
        assert (switched.status_code, switched.headers["location"]) == (303, "/apply")
        assert '<html lang="ru">' in client.get("/apply").text
        for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
            away = client.get("/language", params={"to": "en", "next": target})
            assert away.headers["location"] == "/"
        assert '<html lang="en">' in client.get("/").text


def test_static_files_ship_in_the_package_tree() -> None:
    """The portal's templates, style sheet and script are where the wheel takes them from."""
    from mailprov.web.portal.core import STATIC
    from mailprov.web.portal.core import TEMPLATES as LOADED

    assert Path(LOADED).is_dir()
    assert {"portal.css", "portal.js"} <= {p.name for p in Path(STATIC).iterdir()}
    assert httpx  # the client the tests above use
