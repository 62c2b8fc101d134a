"""Fixtures for the DNS, DKIM and client-config tests: a session knot server, sites and zones."""

from __future__ import annotations

import itertools
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner

from mailprov.cli.app import cli
from mailprov.store.migrate import upgrade
from tests.integration.knot import free_port

_SERIALS = itertools.count(1000)


def zone_text(origin: str, body: str, *, ns: str = "ns.invalid.") -> str:
    """A complete zone: SOA (with a new serial each call) and NS, then ``body``."""
    serial = next(_SERIALS)
    return (
        f"$ORIGIN {origin.rstrip('.')}.\n$TTL 300\n"
        f"@ IN SOA {ns} hostmaster ( {serial} 3600 900 1209600 300 )\n@ IN NS {ns}\n{body}"
    )


@pytest.fixture(name="silent_port")
def fixture_silent_port() -> Iterator[int]:
    """A UDP port on 127.0.0.1 that is bound but never answers (a DNS server that times out)."""

    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))
        yield port


@pytest.fixture(name="site")
def fixture_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site folder: a self-signed certificate, key folders and a config using them."""

    ca = trustme.CA()
    cert = ca.issue_cert("mail.example.test")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    (tmp_path / "mailprov.toml").write_text(
        '[site]\nhostname = "mail.example.test"\n'
        '[tls]\ncert_file = "cert.pem"\nkey_file = "key.pem"\n'
        '[dns]\nipv4 = ["192.0.2.10"]\nipv6 = ["2001:db8::10"]\n'
        "check_timeout = 0.5\ncheck_retries = 1\ncheck_retry_delay = 0.05\n"
        '[dkim]\nkey_dir = "dkim"\nopendkim_dir = "opendkim"\npid_file = "opendkim.pid"\n'
        'algorithms = ["rsa-2048", "ed25519"]\n'
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


class SiteCli:
    """Runs ``mailprov`` in-process against the site folder's config and store."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env = {
            "MAILPROV_CONFIG": str(folder / "mailprov.toml"),
            "XDG_STATE_HOME": str(folder / "state"),
        }

    def __call__(self, *args: str, input: str | None = None) -> object:
        """Run one command; the click Result."""

        return CliRunner().invoke(
            cli, list(args), input=input, env=self.env, catch_exceptions=False
        )

    def json(self, *args: str) -> tuple[int, dict[str, object]]:
        """Exit status and the one JSON document on stdout."""

        result = self(*args, "--json")
        return result.exit_code, json.loads(result.stdout)  # type: ignore[attr-defined]


@pytest.fixture(name="mp")
def fixture_mp(site: Path) -> SiteCli:
    """The CLI on the site, with an upgraded SQLite store holding example.test and bücher.test."""

    url = f"sqlite:///{site / 'mailprov.sqlite'}"
    with (site / "mailprov.toml").open("a") as conf:
        conf.write(f'[store]\nurl = "{url}"\n')
    upgrade(url)
    cli = SiteCli(site)
    for domain in ("example.test", "bücher.test"):
        assert cli("domain", "add", domain).exit_code == 0  # type: ignore[attr-defined]
    return cli
