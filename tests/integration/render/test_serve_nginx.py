"""mailprov serve behind the rendered nginx snippet: checked by ``nginx -t`` and used for real.

A real nginx (loopback, free ports, a certificate from the test CA) includes the snippet
``deploy`` writes (``nginx-mailprov.conf``) and proxies to a real ``mailprov serve``;
curl, from its own loopback address, signs in through it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from mailprov.rules import hashing
from mailprov.services import accounts
from mailprov.services.accounts import Actor, NewPassword
from mailprov.services.clientconfig import write_web_files
from mailprov.settings import SiteConfig, load_settings
from mailprov.store import Store, open_store
from mailprov.store.migrate import upgrade
from mailprov.store.schema import owner_sessions
from tests.conftest import CertAuthority, free_port, require_or_skip
from tests.web.serving import serving

ADDRESS = "ann@example.test"
PASSWORD = "Behind-Nginx-Passw0rd!"
CLIENT_IP = "127.0.0.9"


def _tool(name: str) -> str:
    exe = shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if exe is None:
        require_or_skip(f"{name} is not installed (scripts/install-test-deps.sh installs it)")
    assert exe is not None
    return exe


@dataclass
class Proxied:
    """A site served by nginx (HTTPS and HTTP ports) in front of mailprov serve."""

    folder: Path
    settings: SiteConfig
    store: Store
    https: int
    http: int


def _site(folder: Path, test_ca: CertAuthority, extra: str = "") -> tuple[SiteConfig, Store]:
    test_ca.issue(folder / "tls", "mail.example.test", "portal.example.test")
    url = f"sqlite:///{folder / 'mailprov.sqlite'}"
    (folder / "mailprov.toml").write_text(
        f'[site]\nhostname = "mail.example.test"\n[store]\nurl = "{url}"\n'
        '[tls]\ncert_file = "tls/cert.pem"\nkey_file = "tls/key.pem"\n'
        '[passwords]\nscheme = "SHA512-CRYPT"\n'
        f"[dns]\nweb_https_port = {free_port()}\nweb_http_port = {free_port()}\n"
        f'[web]\nlisten = "127.0.0.1:{free_port()}"\n{extra}'
    )
    upgrade(url)
    settings = load_settings(config_file=folder / "mailprov.toml", env={})
    store = open_store(url)
    actor = Actor("test", int(time.time()))
    accounts.add_domain(store, "example.test", actor=actor)
    return settings, store


def _nginx_conf(folder: Path, snippet: Path) -> list[str]:
    """A minimal main config including ``snippet``; returns the nginx command line."""
    run = folder / "nginx"
    (run / "tmp").mkdir(parents=True, exist_ok=True)
    temps = "".join(
        f"    {kind}_temp_path {run / 'tmp' / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = run / "nginx.conf"
    conf.write_text(
        "user root;\nworker_processes 1;\n"
        f"pid {run / 'nginx.pid'};\nerror_log {run / 'error.log'} warn;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n    access_log off;\n{temps}    include {snippet};\n}}\n"
    )
    return [_tool("nginx"), "-p", f"{run}/", "-c", str(conf), "-e", str(run / "error.log")]


def _listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _checked(base: list[str]) -> None:
    done = subprocess.run([*base, "-t"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


@pytest.fixture(name="proxied")
def fixture_proxied(tmp_path: Path, test_ca: CertAuthority) -> Iterator[Proxied]:
    """nginx with the rendered snippet, and mailprov serve on [web] listen behind it."""
    settings, store = _site(tmp_path, test_ca)
    prepared = NewPassword(hashing.hash_password(PASSWORD, "SHA512-CRYPT"), None)
    accounts.add_mailbox(store, ADDRESS, prepared, actor=Actor("test", int(time.time())))
    write_web_files(store, settings, tmp_path / "www")
    base = _nginx_conf(tmp_path, tmp_path / "www" / "nginx-mailprov.conf")
    _checked(base)
    nginx = subprocess.Popen([*base, "-g", "daemon off;"])
    try:
        deadline = time.monotonic() + 10
        while not _listens(settings.dns.web_https_port):
            assert nginx.poll() is None, (tmp_path / "nginx" / "error.log").read_text()
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        with serving(settings, store, listen=settings.web.listen):
            yield Proxied(
                tmp_path,
                settings,
                store,
                settings.dns.web_https_port,
                settings.dns.web_http_port,
            )
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        store.close()


def _curl(site: Proxied, url: str, *args: str, body: bytes | None = None) -> tuple[int, str, str]:
    """curl from CLIENT_IP with Host and SNI the published name: (status, headers, body)."""
    name = url.split("/")[2]
    port = site.https if url.startswith("https:") else site.http
    done = subprocess.run(
        [
            _tool("curl"),
            "-sS",
            "--interface",
            CLIENT_IP,
            "--cacert",
            str(site.folder / "tls" / "ca.pem"),
            "--resolve",
            f"{name}:{port}:127.0.0.1",
            "-D",
            "-",
            *args,
            *(["-H", "Content-Type: application/json", "--data-binary", "@-"] if body else []),
            url.replace(name, f"{name}:{port}", 1),
        ],
        input=body,
        capture_output=True,
        check=False,
        timeout=20,
    )
    assert done.returncode == 0, done.stderr
    head, _, text = done.stdout.decode().replace("\r\n", "\n").partition("\n\n")
    return int(head.split()[1]), head.lower(), text


def test_sign_in_through_nginx(proxied: Proxied) -> None:
    """Through nginx: 201, a Secure cookie, HSTS, and the session records curl's own address
    (nginx replaced the X-Forwarded-For curl made up)."""
    body = json.dumps({"address": ADDRESS, "password": PASSWORD}).encode()
    status, headers, text = _curl(
        proxied,
        "https://mail.example.test/api/v1/session",
        "-H",
        "X-Forwarded-For: 192.0.2.66",
        body=body,
    )
    assert status == 201, text
    cookie = next(line for line in headers.splitlines() if line.startswith("set-cookie:"))
    assert "; secure" in cookie and "httponly" in cookie
    assert "strict-transport-security: max-age=31536000" in headers
    with proxied.store.read() as conn:
        clients = list(
            conn.execute(
                select(owner_sessions.c.client).where(owner_sessions.c.address == ADDRESS)
            ).scalars()
        )
    assert clients == [CLIENT_IP]


def test_plain_http_only_points_at_https(proxied: Proxied) -> None:
    """The HTTP port answers the portal's name with a redirect to the same path over HTTPS."""
    status, headers, _ = _curl(proxied, "http://mail.example.test/api/v1/openapi.json")
    assert status == 301
    assert f"location: https://mail.example.test:{proxied.https}/api/v1/openapi.json" in headers


def test_portal_does_not_answer_for_the_mta_sts_policy(proxied: Proxied) -> None:
    """The API is proxied, but the mail host never serves an MTA-STS policy (RFC 8461 3.3)."""
    assert _curl(proxied, "https://mail.example.test/api/v1/openapi.json")[0] == 200
    assert _curl(proxied, "https://mail.example.test/.well-known/mta-sts.txt")[0] == 404


@pytest.mark.parametrize(
    "extra",
    [
        'public_url = "https://portal.example.test:8443/mail/"\n',
        "tls = true\n",
    ],
    ids=["portal on its own name", "serve does its own TLS"],
)
def test_other_shapes_pass_nginx_t(tmp_path: Path, test_ca: CertAuthority, extra: str) -> None:
    """A portal name of its own gets its own server (and redirect); with [web] tls the snippet
    has no proxy. nginx -t accepts both."""
    settings, store = _site(tmp_path, test_ca, extra)
    try:
        written = write_web_files(store, settings, tmp_path / "www")
    finally:
        store.close()
    snippet = written.files[tmp_path / "www" / "nginx-mailprov.conf"]
    _checked(_nginx_conf(tmp_path, tmp_path / "www" / "nginx-mailprov.conf"))
    if "tls" in extra:
        assert "proxy_pass" not in snippet
    else:
        assert "listen 8443 ssl;\n    server_name portal.example.test;" in snippet
        assert "return 301 https://$host:8443$request_uri;" in snippet
        assert f"proxy_pass http://{settings.web.listen};" in snippet
