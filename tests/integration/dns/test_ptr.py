"""Reverse DNS of the mail host (`dns.ptr.ipv4`/`dns.ptr.ipv6`) against knot serving reverse zones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.integration.dns.conftest import load_reverse
from tests.integration.knot import Knot

pytestmark = pytest.mark.requires_dns_server


def _ptr(mp: Cli, knot: Knot) -> tuple[int, dict[str, dict[str, Any]]]:
    status, doc = mp.json("dns", "check", "example.test", "--nameserver", knot.address)
    return status, {c["check"]: c for c in doc["checks"] if c["check"].startswith("dns.ptr.")}


@pytest.fixture(name="published")
def fixture_published(mp: Cli, knot: Knot) -> Cli:
    """example.test published as `dns records --standalone` prints it."""
    result = mp("dns", "records", "example.test", "--standalone")
    assert result.exit_code == 0, result.output
    knot.load_zone("example.test", result.stdout)
    return mp


def test_forward_confirmed_ptr_is_ok(published: Cli, knot: Knot) -> None:
    """PTRs naming [site] hostname, whose A/AAAA hold the addresses, are ok; the check passes."""
    load_reverse(knot)
    status, ptr = _ptr(published, knot)
    assert {k: (c["status"], c["found"]) for k, c in ptr.items()} == {
        "dns.ptr.ipv4": ("ok", ["mail.example.test."]),
        "dns.ptr.ipv6": ("ok", ["mail.example.test."]),
    }
    assert ptr["dns.ptr.ipv4"]["name"] == "10.2.0.192.in-addr.arpa."
    assert status == 0


def test_missing_ptr_fails(published: Cli, knot: Knot) -> None:
    """A reverse zone without the PTR makes dns.ptr.* missing and dns check exit 4."""
    load_reverse(knot, v4="", v6="")
    status, ptr = _ptr(published, knot)
    assert {k: c["finding"] for k, c in ptr.items()} == {
        "dns.ptr.ipv4": "dns.ptr.ipv4_missing",
        "dns.ptr.ipv6": "dns.ptr.ipv6_missing",
    }
    assert status == 4


def test_ptr_naming_another_host_is_wrong(published: Cli, knot: Knot) -> None:
    """A PTR naming another host than [site] hostname is wrong, with what it names."""
    load_reverse(knot, v4="other.example.test.")
    status, ptr = _ptr(published, knot)
    v4 = ptr["dns.ptr.ipv4"]
    assert (v4["status"], v4["finding"], v4["found"]) == (
        "wrong",
        "dns.ptr.ipv4_wrong_name",
        ["other.example.test."],
    )
    assert ptr["dns.ptr.ipv6"]["status"] == "ok"
    assert status == 4


def test_ptr_not_forward_confirmed_is_wrong(mp: Cli, knot: Knot) -> None:
    """A PTR to the hostname whose A record holds another address is not forward-confirmed."""
    result = mp("dns", "records", "example.test", "--standalone")
    knot.load_zone("example.test", result.stdout.replace("192.0.2.10", "192.0.2.99"))
    load_reverse(knot)
    status, ptr = _ptr(mp, knot)
    v4 = ptr["dns.ptr.ipv4"]
    assert (v4["status"], v4["finding"]) == ("wrong", "dns.ptr.ipv4_not_confirmed")
    assert "192.0.2.99" in v4["detail"]
    assert ptr["dns.ptr.ipv6"]["status"] == "ok"
    assert status == 4


def test_unaskable_reverse_zone_is_unknown(published: Cli, knot: Knot, site: Path) -> None:
    """An address whose reverse zone the server refuses is unknown: reported, not failed."""
    conf = site / "mailprov.toml"
    conf.write_text(conf.read_text().replace('ipv6 = ["2001:db8::10"]', "ipv6 = []"))
    conf.write_text(conf.read_text().replace("192.0.2.10", "203.0.113.5"))
    result = published("dns", "records", "example.test", "--standalone")
    knot.load_zone("example.test", result.stdout)
    status, ptr = _ptr(published, knot)
    assert list(ptr) == ["dns.ptr.ipv4"]
    v4 = ptr["dns.ptr.ipv4"]
    assert (v4["status"], v4["name"]) == ("unknown", "5.113.0.203.in-addr.arpa.")
    assert "REFUSED" in v4["detail"]
    assert status == 0


def test_doctor_names_the_missing_ptr(published: Cli, knot: Knot) -> None:
    """doctor's DNS summary names dns.ptr.ipv4_missing instead of reporting all ok."""
    load_reverse(knot, v4="")
    _, doc = published.json("doctor", env={"MAILPROV_DNS_CHECK_NAMESERVER": knot.address})
    report = doc["error"]["doctor"] if "error" in doc else doc
    problems = {
        f["subject"]: f["message"] for f in report["findings"] if f["id"] == "doctor.dns.problems"
    }
    assert "dns.ptr.ipv4_missing" in problems["example.test"]
    assert "doctor.dns.ok" not in {f["id"] for f in report["findings"]}
