"""``dns check``'s warning for a site that forwards mail outside while its own DMARC policy
is quarantine or reject and no ARC seal is on, against the real knot server."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli
from tests.integration.dns.conftest import load_reverse
from tests.integration.knot import Knot

pytestmark = pytest.mark.requires_dns_server

WARNING = "dns.dmarc.forwarding_unsealed"


def _publish(mp: Cli, knot: Knot, *, policy: str | None = None) -> None:
    """Serve the zone ``dns records --standalone`` prints (its DMARC p= replaced by
    ``policy`` when given)."""
    result: Any = mp("dns", "records", "example.test", "--standalone", "--no-tlsa")
    assert result.exit_code == 0, result.output
    zone = str(result.stdout)
    if policy is not None:
        assert "p=quarantine" in zone
        zone = zone.replace("p=quarantine", f"p={policy}")
    knot.load_zone("example.test", zone)
    load_reverse(knot)


def _check(mp: Cli, knot: Knot, **env: str) -> tuple[int, dict[str, Any]]:
    result: Any = mp(
        "dns",
        "check",
        "example.test",
        "--nameserver",
        knot.address,
        "--no-tlsa",
        "--json",
        env=env,
    )

    return result.exit_code, json.loads(result.stdout)


def test_no_forwarding_no_warning(mp: Cli, knot: Knot) -> None:
    """p=quarantine (the default) but aliases deliver only to the site's own domains (an
    IDN one too): no warning."""
    _publish(mp, knot)
    added = mp(
        "mailbox", "add", "anna@bücher.test", "--password-stdin", input="Quiet-Harbor-pw-7\n"
    )
    assert added.exit_code == 0, added.output
    assert mp("alias", "add", "team@example.test", "anna@bücher.test").exit_code == 0
    status, doc = _check(mp, knot)
    assert status == 0, doc
    assert doc["warnings"] == []


def test_forwarding_alias_under_quarantine_warns_without_failing(mp: Cli, knot: Knot) -> None:
    """An alias to another domain while DNS serves p=quarantine: a warning naming the alias
    and saying how to seal with ARC; the exit status stays 0 (every record is right)."""
    _publish(mp, knot)
    assert mp("alias", "add", "team@example.test", "friend@elsewhere.test").exit_code == 0
    status, doc = _check(mp, knot)
    assert status == 0, doc
    assert doc["ok"] is True
    (warning,) = doc["warnings"]
    assert warning["id"] == WARNING
    assert "p=quarantine" in warning["message"]
    assert "team@example.test -> friend@elsewhere.test" in warning["message"]
    assert "arc_seal = true" in warning["action"]
    text: Any = mp("dns", "check", "example.test", "--nameserver", knot.address, "--no-tlsa")
    assert text.exit_code == 0
    assert f"warn  {WARNING}: example.test publishes DMARC p=quarantine" in text.stdout
    assert "      -> seal forwarded mail with ARC" in text.stdout


def test_policy_served_by_dns_decides(mp: Cli, knot: Knot) -> None:
    """The warning follows the policy DNS serves: p=reject warns (refused, it says),
    p=none does not."""
    assert mp("alias", "add", "team@example.test", "friend@elsewhere.test").exit_code == 0
    _publish(mp, knot, policy="reject")
    _, doc = _check(mp, knot)
    assert [w["id"] for w in doc["warnings"]] == [WARNING]
    assert "receivers reject it" in doc["warnings"][0]["message"]
    _publish(mp, knot, policy="none")
    _, doc = _check(mp, knot)
    assert doc["warnings"] == []


def test_arc_sealing_silences_the_warning(mp: Cli, knot: Knot) -> None:
    """With [rspamd] enabled and arc_seal on, the same forwarding gives no warning."""
    _publish(mp, knot)
    assert mp("alias", "add", "team@example.test", "friend@elsewhere.test").exit_code == 0
    _, doc = _check(mp, knot, MAILPROV_RSPAMD_ENABLED="true", MAILPROV_RSPAMD_ARC_SEAL="true")
    assert doc["warnings"] == []
    _, doc = _check(mp, knot, MAILPROV_RSPAMD_ENABLED="true")
    assert [w["id"] for w in doc["warnings"]] == [WARNING]


def test_doctor_repeats_the_warning(mp: Cli, knot: Knot) -> None:
    """doctor's DNS summary carries the same warning, per domain, as
    doctor.dns.dmarc.forwarding_unsealed."""
    _publish(mp, knot)
    assert mp("alias", "add", "team@example.test", "friend@elsewhere.test").exit_code == 0
    result: Any = mp("doctor", "--json", env={"MAILPROV_DNS_CHECK_NAMESERVER": knot.address})
    doc = json.loads(result.stdout)
    report = doc["error"]["doctor"] if "error" in doc else doc
    found = [f for f in report["findings"] if f["id"] == f"doctor.{WARNING}"]
    assert [(f["severity"], f["subject"]) for f in found] == [("warning", "example.test")], found
    assert "arc_seal = true" in found[0]["action"]


def test_owners_forwarding_counts_too(mp: Cli, knot: Knot, site: Path) -> None:
    """An owner's forwarding form to another domain warns (named by mailbox and address);
    an owner's own script that redirects is named as such; forwarding inside the site
    does not warn."""
    _publish(mp, knot)
    for local in ("bob", "carol", "dave"):
        added = mp(
            "mailbox",
            "add",
            f"{local}@example.test",
            "--password-stdin",
            input="Quiet-Harbor-pw-7\n",
        )
        assert added.exit_code == 0, added.output
    specs = {
        "bob@example.test": {"kind": "forms", "forms": {"forwarding": {"to": ["b@gmail.test"]}}},
        "carol@example.test": {"kind": "script", "script": 'redirect "x@elsewhere.test";'},
        "dave@example.test": {
            "kind": "forms",
            "forms": {"forwarding": {"to": ["bob@example.test"]}},
        },
    }
    with sqlite3.connect(site / "mailprov.sqlite") as db:
        db.executemany(
            "INSERT INTO owner_filters (address, spec, updated_at) VALUES (?, ?, 0)",
            [(a, json.dumps(s)) for a, s in specs.items()],
        )
    _, doc = _check(mp, knot)
    (warning,) = doc["warnings"]
    assert "bob@example.test -> b@gmail.test" in warning["message"]
    assert "carol@example.test -> (its own Sieve script)" in warning["message"]
    assert "dave@example.test" not in warning["message"]
