"""DMARC reports for every domain: the RFC 7489 7.1 authorization records, judged by checkdmarc."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from mailprov.store.migrate import upgrade
from tests.conftest import Cli, require_or_skip
from tests.integration.dns.isolated import run_isolated
from tests.integration.knot import Knot

pytestmark = pytest.mark.requires_dns_server

IDN = "xn--e1afmkfd.xn--p1ai"  # пример.рф
AUTH_NAME = f"{IDN}._report._dmarc.example.test."


@pytest.fixture(name="two")
def fixture_two(site: Path) -> Cli:
    """A site serving example.test and пример.рф whose DMARC reports go to dmarc@example.test."""
    conf = site / "mailprov.toml"
    conf.write_text(
        conf.read_text().replace("[dns]\n", '[dns]\ndmarc_rua = "mailto:dmarc@example.test"\n', 1)
        + f'[store]\nurl = "sqlite:///{site / "two.sqlite"}"\n'
    )
    upgrade(f"sqlite:///{site / 'two.sqlite'}")
    cli = Cli(site / "state", config=conf)
    for domain in ("example.test", "пример.рф"):
        assert cli("domain", "add", domain).exit_code == 0
    return cli


def _records(cli: Cli, domain: str) -> list[dict[str, Any]]:
    status, doc = cli.json("dns", "records", domain)
    assert status == 0, doc
    return list(doc["records"])


def _zone(cli: Cli, domain: str) -> str:
    result = cli("dns", "records", domain, "--standalone", "--no-tlsa")
    assert result.exit_code == 0, result.output
    return result.stdout


def checkdmarc_exe() -> str:
    """checkdmarc from the test environment (fails under CI when it is not installed)."""
    found = Path(sys.executable).with_name("checkdmarc")
    if found.exists():
        return str(found)
    exe = shutil.which("checkdmarc")
    if exe is None:
        require_or_skip("checkdmarc is not installed (pip install checkdmarc)")
    assert exe is not None
    return exe


def test_report_domain_lists_authorizations_for_the_others(two: Cli) -> None:
    """`dns records REPORTDOMAIN` holds DOMAIN._report._dmarc TXT "v=DMARC1" for the other domain."""
    auth = [r for r in _records(two, "example.test") if r["check"] == "dns.dmarc.report_auth"]
    assert [(r["name"], r["type"], r["value"], r["zone"]) for r in auth] == [
        (AUTH_NAME, "TXT", "v=DMARC1", "example.test.")
    ]
    lines = _zone(two, "example.test").splitlines()
    assert [line.split() for line in lines if line.startswith(f"{IDN}._report._dmarc ")] == [
        [f"{IDN}._report._dmarc", "3600", "IN", "TXT", '"v=DMARC1"']
    ]


def test_other_domain_names_the_zone_of_its_authorization(two: Cli) -> None:
    """The other domain's records show the authorization as a comment naming the report zone."""
    auth = [r for r in _records(two, "пример.рф") if r["check"] == "dns.dmarc.report_auth"]
    assert [(r["name"], r["zone"]) for r in auth] == [(AUTH_NAME, "example.test.")]
    lines = _zone(two, "пример.рф").splitlines()
    at = lines.index("; -- in zone example.test.")
    assert lines[at + 1].startswith(f"; {AUTH_NAME} 3600 IN TXT")


def test_dns_check_reports_a_missing_authorization(two: Cli, knot: Knot) -> None:
    """Without the authorization record `dns check` fails with dns.dmarc.report_auth_missing."""
    zone = "\n".join(
        line for line in _zone(two, "example.test").splitlines() if "_report._dmarc" not in line
    )
    knot.load_zone("example.test", zone + "\n")
    knot.load_zone(IDN, _zone(two, IDN))
    status, doc = two.json("dns", "check", IDN, "--nameserver", knot.address, "--no-tlsa")
    auth = [c for c in doc["checks"] if c["check"] == "dns.dmarc.report_auth"]
    assert [(c["name"], c["status"], c["finding"]) for c in auth] == [
        (AUTH_NAME, "missing", "dns.dmarc.report_auth_missing")
    ]
    assert status == 4
    knot.load_zone("example.test", _zone(two, "example.test"))
    status, doc = two.json("dns", "check", IDN, "--nameserver", knot.address, "--no-tlsa")
    assert {c["status"] for c in doc["checks"] if c["check"] == "dns.dmarc.report_auth"} == {"ok"}


def test_checkdmarc_finds_no_authorization_error(two: Cli, tmp_path: Path) -> None:
    """checkdmarc, asking knot serving exactly what `dns records` printed, finds every DMARC ok."""
    exe = checkdmarc_exe()
    zones = {d: _zone(two, d) for d in ("example.test", IDN)}
    done = run_isolated(
        tmp_path / "ns", zones, [exe, "-n", "127.0.0.1", "-f", "json", "example.test", IDN]
    )
    assert done.returncode == 0, done.stderr
    (tmp_path / "checkdmarc.json").write_text(done.stdout)
    results = {r["domain"]: r for r in json.loads(done.stdout)}
    assert set(results) == {"example.test", IDN}
    for domain, result in results.items():
        dmarc = result["dmarc"]
        assert dmarc["valid"] is True, (domain, dmarc)
        assert "error" not in dmarc, (domain, dmarc)
        # Before the fix: "example.test does not indicate that it accepts DMARC reports about
        # xn--e1afmkfd.xn--p1ai - Authorization record not found: ..."
        assert dmarc["warnings"] == [], (domain, dmarc)
        assert dmarc["tags"]["rua"]["value"][0]["address"] == "dmarc@example.test"
