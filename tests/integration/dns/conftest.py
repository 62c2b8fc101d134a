"""Fixtures for the DNS, DKIM and client-config tests: a session knot server, sites and zones."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailprov.store.migrate import upgrade
from tests.conftest import CertAuthority, Cli, free_port
from tests.integration.knot import Knot

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
def fixture_site(tmp_path: Path, test_ca: CertAuthority, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site folder: a certificate from the test CA, key folders and a config using them."""

    test_ca.issue(tmp_path, "mail.example.test")
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


@pytest.fixture(name="mp")
def fixture_mp(site: Path) -> Cli:
    """The CLI on the site, with an upgraded SQLite store holding example.test and bücher.test."""

    url = f"sqlite:///{site / 'mailprov.sqlite'}"
    with (site / "mailprov.toml").open("a") as conf:
        conf.write(f'[store]\nurl = "{url}"\n')
    upgrade(url)
    cli = Cli(site / "state", config=site / "mailprov.toml")
    for domain in ("example.test", "bücher.test"):
        assert cli("domain", "add", domain).exit_code == 0
    return cli


#: The reverse zones of the site fixture's [dns] ipv4 (192.0.2.10) and ipv6 (2001:db8::10).
REVERSE_V4 = "2.0.192.in-addr.arpa"
REVERSE_V6 = "8.b.d.0.1.0.0.2.ip6.arpa"


def load_reverse(
    knot: Knot, v4: str = "mail.example.test.", v6: str = "mail.example.test."
) -> None:
    """Serve PTRs of 192.0.2.10 and 2001:db8::10 naming ``v4``/``v6`` (empty: no PTR)."""
    from mailprov.rules.dnscheck import reverse_name

    for zone, address, target in (
        (REVERSE_V4, "192.0.2.10", v4),
        (REVERSE_V6, "2001:db8::10", v6),
    ):
        body = f"{reverse_name(address)} IN PTR {target}\n" if target else ""
        knot.load_zone(zone, zone_text(zone, body))
