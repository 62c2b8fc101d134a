"""``dns records`` and ``dns check`` against a real knot server on loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.integration.dns.conftest import load_reverse, zone_text
from tests.integration.knot import Knot

pytestmark = pytest.mark.requires_dns_server


def _zone(mp: Cli, domain: str = "example.test") -> str:
    result: Any = mp("dns", "records", domain, "--format", "zone")
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def _by_check(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {(c["check"] + " " + c["type"] + " " + c["name"]): c for c in doc["checks"]}


def _status(doc: dict[str, Any], check: str, rtype: str | None = None) -> set[str]:
    return {
        c["status"] for c in doc["checks"] if c["check"] == check and rtype in (None, c["type"])
    }


def test_published_zone_checks_ok(mp: Cli, knot: Knot) -> None:
    """The zone `dns records --standalone` prints loads into knot and every check of it is ok."""
    assert mp("dkim", "rotate", "example.test").exit_code == 0
    result: Any = mp("dns", "records", "example.test", "--standalone")
    knot.load_zone("example.test", result.stdout)
    load_reverse(knot)
    status, doc = mp.json("dns", "check", "example.test", "--nameserver", knot.address)
    assert {c["status"] for c in doc["checks"]} == {"ok"}, [
        c for c in doc["checks"] if c["status"] != "ok"
    ]
    assert status == 0
    assert doc["counts"]["ok"] == len(doc["checks"]) >= 20
    assert _status(doc, "dns.dkim.selector") == {"ok"}
    assert _status(doc, "dns.tlsa.current") == {"ok"}


def test_fragment_loads_through_include(mp: Cli, knot: Knot, tmp_path: Any) -> None:
    """The default zone output is a fragment a real zone can $INCLUDE; checks pass on it."""
    fragment = tmp_path / "mail-records.zone"
    fragment.write_text(_zone(mp))
    knot.load_zone("example.test", zone_text("example.test", f"$INCLUDE {fragment}\n"))
    load_reverse(knot)
    status, doc = mp.json("dns", "check", "example.test", "--nameserver", knot.address)
    assert status == 0
    assert doc["ok"] is True


def test_missing_records_fail_with_ids(mp: Cli, knot: Knot) -> None:
    """An empty zone makes each record 'missing' with a stable finding ID and exit status 4."""
    assert mp("dkim", "keygen", "example.test", "--selector", "s1").exit_code == 0
    knot.load_zone("example.test", zone_text("example.test", ""))
    status, doc = mp.json("dns", "check", "example.test", "--nameserver", knot.address)
    assert status == 4
    found = _by_check(doc)
    dkim = found["dns.dkim.selector TXT s1._domainkey.example.test."]
    assert (dkim["status"], dkim["finding"]) == ("missing", "dns.dkim.selector_missing")
    assert found["dns.mx MX example.test."]["finding"] == "dns.mx_missing"
    assert dkim["attempts"] == 2


def test_wrong_records_show_expected_and_found(mp: Cli, knot: Knot) -> None:
    """An MX elsewhere is 'wrong' (expected and found shown) and breaks MTA-STS coverage."""
    body = _zone(mp).replace("10 mail.example.test.", "10 mx.elsewhere.test.", 1)
    knot.load_zone("example.test", zone_text("example.test", body))
    status, doc = mp.json("dns", "check", "example.test", "--nameserver", knot.address)
    assert status == 4
    mx = _by_check(doc)["dns.mx MX example.test."]
    assert mx["status"] == "wrong"
    assert mx["expected"] == "10 mail.example.test."
    assert mx["found"] == ["10 mx.elsewhere.test."]
    coverage = _by_check(doc)["dns.mta_sts.mx_coverage MX example.test."]
    assert coverage["finding"] == "dns.mta_sts.mx_not_covered"


def test_ipv4_and_ipv6_checked_separately(mp: Cli, knot: Knot) -> None:
    """A host with its A record but no AAAA is ok for IPv4 and missing for IPv6."""
    body = "\n".join(line for line in _zone(mp).splitlines() if " AAAA " not in line)
    knot.load_zone("example.test", zone_text("example.test", body + "\n"))
    status, doc = mp.json("dns", "check", "example.test", "--nameserver", knot.address)
    assert status == 4
    assert _status(doc, "dns.host.ipv4") == {"ok"}
    assert _status(doc, "dns.host.ipv6") == {"missing"}


def test_dkim_record_with_other_key_is_wrong(mp: Cli, knot: Knot) -> None:
    """A selector whose published key differs from ours is 'wrong', not ok."""
    assert mp("dkim", "keygen", "example.test", "--selector", "s1").exit_code == 0
    body = _zone(mp)
    knot.load_zone("example.test", zone_text("example.test", body))
    mp("dkim", "retire", "example.test", "s1")
    assert mp("dkim", "keygen", "example.test", "--selector", "s2").exit_code == 0
    body = body.replace("s1._domainkey", "s2._domainkey")
    knot.load_zone("example.test", zone_text("example.test", body))
    _, doc = mp.json("dns", "check", "example.test", "--nameserver", knot.address)
    assert _by_check(doc)["dns.dkim.selector TXT s2._domainkey.example.test."]["status"] == "wrong"


def test_silent_server_is_unknown_not_missing(mp: Cli, silent_port: int) -> None:
    """A server that never answers makes every check 'unknown' and the command exit 0."""
    status, doc = mp.json(
        "dns",
        "check",
        "example.test",
        "--nameserver",
        f"127.0.0.1:{silent_port}",
        "--timeout",
        "0.2",
        "--retries",
        "1",
    )
    assert {c["status"] for c in doc["checks"]} == {"unknown"}
    assert status == 0
    assert "no answer" in doc["checks"][0]["detail"]


def test_refused_zone_is_unknown(mp: Cli, knot: Knot) -> None:
    """Asking a server that does not serve the zone (REFUSED) reports unknown, never missing."""
    _, doc = mp.json("dns", "check", "bücher.test", "--nameserver", knot.address, "--retries", "0")
    own = [c for c in doc["checks"] if c["name"].endswith("xn--bcher-kva.test.")]
    assert len(own) > 10
    assert {c["status"] for c in own} == {"unknown"}
    assert "REFUSED" in own[0]["detail"]


def test_idn_domain_records_are_a_labels(mp: Cli, knot: Knot) -> None:
    """An IDN domain's records use A-labels, load into knot and check ok."""
    zone = _zone(mp, "bücher.test")
    assert "$ORIGIN xn--bcher-kva.test." in zone
    assert "ü" not in zone
    knot.load_zone("xn--bcher-kva.test", zone_text("xn--bcher-kva.test", zone))
    status, doc = mp.json("dns", "check", "bücher.test", "--nameserver", knot.address, "--no-tlsa")
    assert status == 0, [c for c in doc["checks"] if c["status"] != "ok"]


def test_mail_host_in_another_zone(mp: Cli, knot: Knot, site: Any) -> None:
    """A mail host outside the domain: the zone loads, and the host's lines are comments."""
    config = site / "mailprov.toml"
    config.write_text(config.read_text().replace('"mail.example.test"', '"mx.provider.test"'))
    result: Any = mp("dns", "records", "example.test", "--standalone")
    assert result.exit_code == 0, result.output
    assert "; _25._tcp.mx.provider.test." in result.stdout
    knot.load_zone("example.test", result.stdout)
    _, doc = mp.json("dns", "check", "example.test", "--nameserver", knot.address, "--retries", "0")
    assert _status(doc, "dns.mx") == {"ok"}
    assert _status(doc, "dns.spf") == {"ok"}


def test_installed_entry_point(site: Any, mp: Cli) -> None:
    """The installed `mailprov` script prints the records as JSON (a subprocess smoke test)."""

    exe = shutil.which("mailprov") or str(Path(sys.executable).with_name("mailprov"))
    done = subprocess.run(
        [exe, "--json", "dns", "records", "example.test"],
        capture_output=True,
        text=True,
        env={**mp.env, "PATH": "/usr/bin:/bin"},
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["domain"] == "example.test"
    assert {r["type"] for r in doc["records"]} >= {"MX", "TXT", "TLSA", "SRV", "CNAME"}
