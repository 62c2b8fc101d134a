"""The nginx snippet served by a real nginx on loopback, and doctor's certificate-name check."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailprov.services.clientconfig import write_web_files
from mailprov.services.doctor import ERROR, WARNING, certificate_names
from mailprov.settings import load_settings
from mailprov.store import open_store
from tests.conftest import CertAuthority, Cli, free_port, require_or_skip

DOMAINS = ("example.test", "xn--bcher-kva.test")
WEB_NAMES = [f"{label}.{d}" for d in DOMAINS for label in ("mta-sts", "autoconfig", "autodiscover")]


def _tool(name: str) -> str:
    exe = shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if exe is None:
        require_or_skip(f"{name} is not installed (scripts/install-test-deps.sh installs it)")
    assert exe is not None
    return exe


def _findings(site: Path) -> list[Any]:
    settings = load_settings(config_file=site / "mailprov.toml", env={})
    store = open_store(settings.store.url)
    try:
        return certificate_names(store, settings)
    finally:
        store.close()


def _set_dns(site: Path, extra: str) -> None:
    conf = site / "mailprov.toml"
    conf.write_text(conf.read_text().replace("[dns]\n", "[dns]\n" + extra, 1))


def _checkhost(cert: Path, name: str) -> bool:
    out = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-checkhost", name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return "does match" in out


@pytest.fixture(name="web_site")
def fixture_web_site(mp: Cli, site: Path, test_ca: CertAuthority) -> dict[str, Any]:
    """The two-domain site with a web certificate for every published name and free web ports."""
    test_ca.issue(site / "web", "mail.example.test", *WEB_NAMES)
    ports = {"http": free_port(), "https": free_port()}
    _set_dns(
        site,
        'web_cert_file = "web/cert.pem"\nweb_key_file = "web/key.pem"\n'
        f"web_http_port = {ports['http']}\nweb_https_port = {ports['https']}\n",
    )
    return {"site": site, "cli": mp, **ports}


def test_doctor_names_each_web_name_the_certificate_misses(mp: Cli, site: Path) -> None:
    """[tls] cert_file naming only the mail host: one warning per web name, as openssl agrees."""
    found = _findings(site)
    assert sorted((f.id, f.severity, f.subject) for f in found) == sorted(
        ("doctor.tls.name_missing", WARNING, name) for name in WEB_NAMES
    )
    cert = site / "cert.pem"
    assert [n for n in WEB_NAMES if _checkhost(cert, n)] == []
    assert _checkhost(cert, "mail.example.test")


def test_mail_host_missing_from_the_certificate_is_an_error(
    mp: Cli, site: Path, test_ca: CertAuthority
) -> None:
    """A [tls] certificate that does not name [site] hostname is an error naming the host."""
    test_ca.issue(site, "other.example.test", *WEB_NAMES)
    found = _findings(site)
    assert [(f.id, f.severity, f.subject) for f in found] == [
        ("doctor.tls.name_missing", ERROR, "mail.example.test")
    ]
    assert not _checkhost(site / "cert.pem", "mail.example.test")


def test_web_certificate_covering_every_name_has_no_finding(web_site: dict[str, Any]) -> None:
    """With [dns] web_cert_file naming every web name, doctor finds nothing missing."""
    assert _findings(web_site["site"]) == []


@pytest.fixture(name="nginx")
def fixture_nginx(web_site: dict[str, Any], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """nginx on loopback with a minimal main config that includes the rendered snippet."""
    exe = _tool("nginx")
    site = web_site["site"]
    settings = load_settings(config_file=site / "mailprov.toml", env={})
    store = open_store(settings.store.url)
    try:
        write_web_files(store, settings, site / "www")
    finally:
        store.close()
    run = tmp_path / "nginx"
    (run / "tmp").mkdir(parents=True)
    conf = run / "nginx.conf"
    temps = "".join(
        f"    {kind}_temp_path {run / 'tmp' / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf.write_text(
        "user root;\nworker_processes 1;\n"
        f"pid {run / 'nginx.pid'};\nerror_log {run / 'error.log'} warn;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n    access_log off;\n{temps}"
        f"    include {site / 'www' / 'nginx-mailprov.conf'};\n}}\n"
    )
    base = [exe, "-p", f"{run}/", "-c", str(conf), "-e", str(run / "error.log")]
    checked = subprocess.run([*base, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen([*base, "-g", "daemon off;"])
    try:
        deadline = time.monotonic() + 10
        while not (run / "nginx.pid").exists():
            assert process.poll() is None, (run / "error.log").read_text()
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        time.sleep(0.2)
        yield {**web_site, "www": site / "www", "ca": site / "web" / "ca.pem"}
    finally:
        process.terminate()
        process.wait(timeout=10)


def _fetch(web: dict[str, Any], url: str, *, post: bool = False) -> tuple[int, str, str]:
    """curl with Host and SNI the published name, resolved to 127.0.0.1: status, type, body."""
    name = url.split("/")[2]
    https = url.startswith("https:")
    port = web["https"] if https else web["http"]
    done = subprocess.run(
        [
            _tool("curl"),
            "-sS",
            "--cacert",
            str(web["ca"]),
            "--resolve",
            f"{name}:{port}:127.0.0.1",
            *(["--data", "<Autodiscover/>"] if post else []),
            "-w",
            "\n%{http_code} %{content_type}",
            url.replace(name, f"{name}:{port}", 1),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=20,
    )
    assert done.returncode == 0, done.stderr
    body, _, tail = done.stdout.rpartition("\n")
    code, _, ctype = tail.partition(" ")
    return int(code), ctype, body


def test_nginx_serves_every_file_the_records_point_at(nginx: dict[str, Any]) -> None:
    """Each published name serves its file over verified HTTPS; the SRV target serves autodiscover."""
    www = nginx["www"]
    for domain in DOMAINS:
        policy = (www / "mta-sts" / domain / ".well-known" / "mta-sts.txt").read_text()
        auto = (www / "autoconfig" / domain / "mail" / "config-v1.1.xml").read_text()
        disc = (www / "autodiscover" / domain / "autodiscover" / "autodiscover.xml").read_text()
        got = _fetch(nginx, f"https://mta-sts.{domain}/.well-known/mta-sts.txt")
        assert got == (200, "text/plain", policy)
        for scheme in ("https", "http"):
            got = _fetch(nginx, f"{scheme}://autoconfig.{domain}/mail/config-v1.1.xml")
            assert got == (200, "application/xml", auto)
        for post in (False, True):
            got = _fetch(
                nginx, f"https://autodiscover.{domain}/autodiscover/autodiscover.xml", post=post
            )
            assert got == (200, "application/xml", disc)
    # The _autodiscover._tcp SRV record points Outlook at the mail host name.
    disc = (www / "autodiscover" / DOMAINS[0] / "autodiscover" / "autodiscover.xml").read_text()
    got = _fetch(nginx, "https://mail.example.test/Autodiscover/Autodiscover.xml", post=True)
    assert got == (200, "application/xml", disc)
    assert _fetch(nginx, "https://mail.example.test/.well-known/mta-sts.txt")[0] == 404


def test_autodiscover_srv_names_the_served_port(web_site: dict[str, Any]) -> None:
    """The _autodiscover._tcp SRV record carries [dns] web_https_port and the mail host."""
    status, doc = web_site["cli"].json("dns", "records", "example.test")
    assert status == 0
    srv = [r["value"] for r in doc["records"] if r["check"] == "dns.srv.autodiscover"]
    assert srv == [f"0 1 {web_site['https']} mail.example.test."]
