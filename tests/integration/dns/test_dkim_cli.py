"""``mailprov dkim``: key files, state, rotation rules and bad input (no DNS server needed)."""

from __future__ import annotations

import base64
import json
import os
import pwd
import stat
from pathlib import Path
from typing import Any

import pytest

from mailprov.services.accounts import Actor
from mailprov.services.dkim import activate, keygen, retire
from mailprov.settings import load_settings
from mailprov.store import open_store
from tests.conftest import Cli


def _key(site: Path, selector: str, domain: str = "example.test") -> Path:
    return site / "dkim" / domain / f"{selector}.private"


def test_keygen_writes_private_key_0600_and_never_prints_it(mp: Cli, site: Path) -> None:
    """keygen writes a 0600 PEM key file, records its state, and prints only the public record."""
    result: Any = mp("dkim", "keygen", "example.test", "--selector", "s1", "--json")
    assert result.exit_code == 0, result.output
    path = _key(site, "s1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    if os.geteuid() == 0:  # as root, the key is handed to the signer's user
        assert path.stat().st_uid == pwd.getpwnam("opendkim").pw_uid
    pem = path.read_text()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")
    body = pem.splitlines()[1]
    assert body not in result.output
    doc = json.loads(result.stdout)
    assert doc["changed"] is True
    assert doc["key"]["status"] == "next"
    assert doc["key"]["record"].startswith("v=DKIM1; k=rsa; p=MII")
    state = json.loads((site / "dkim" / "example.test" / "selectors.json").read_text())
    assert [s["selector"] for s in state["selectors"]] == ["s1"]


def test_ed25519_key_record(mp: Cli) -> None:
    """An Ed25519 key's record carries the raw 32-byte public key (RFC 8463)."""

    status, doc = mp.json("dkim", "keygen", "example.test", "--algorithm", "ed25519")
    assert status == 0
    record = doc["key"]["record"]
    assert record.startswith("v=DKIM1; k=ed25519; p=")
    assert len(base64.b64decode(record.rpartition("p=")[2])) == 32
    assert doc["key"]["selector"].endswith("e")


def test_unknown_domain_is_refused(mp: Cli, site: Path) -> None:
    """keygen for a domain not in the store fails with not-found and writes no file."""
    status, doc = mp.json("dkim", "keygen", "nowhere.test")
    assert status == 3
    assert doc["error"]["code"] == "not-found"
    assert not (site / "dkim" / "nowhere.test").exists()


@pytest.mark.parametrize("selector", ["bad_sel", "-lead", "a.b", "sp ace", "x" * 64, "ünï"])
def test_selector_with_illegal_characters_is_refused(mp: Cli, selector: str) -> None:
    """A selector that is not one DNS label of letters, digits and hyphens exits 73."""
    status, doc = mp.json("dkim", "keygen", "example.test", "--selector", selector)
    assert status == 73
    assert doc["error"]["code"] == "selector-invalid"


def test_key_file_readable_by_others_is_named(mp: Cli, site: Path) -> None:
    """A key file with mode 0644 makes dkim list fail naming the file, and dns records too."""
    assert mp("dkim", "keygen", "example.test", "--selector", "s1").exit_code == 0
    path = _key(site, "s1")
    os.chmod(path, 0o644)
    status, doc = mp.json("dkim", "list", "example.test")
    assert status == 70
    assert doc["error"]["code"] == "dkim-key-unsafe"
    assert str(path) in doc["error"]["message"]
    status, doc = mp.json("dns", "records", "example.test")
    assert (status, doc["error"]["code"]) == (70, "dkim-key-unsafe")


@pytest.mark.parametrize("damage", ["garbage", "missing", "directory"])
def test_unreadable_key_file_is_named(mp: Cli, site: Path, damage: str) -> None:
    """A key file that is not a PEM key, is gone, or is a folder fails with its path named."""
    assert mp("dkim", "keygen", "example.test", "--selector", "s1").exit_code == 0
    path = _key(site, "s1")
    path.unlink()
    if damage == "garbage":
        path.write_text("not a key\n")
        os.chmod(path, 0o600)
    elif damage == "directory":
        path.mkdir(mode=0o700)
    status, doc = mp.json("dkim", "list", "example.test")
    assert status == 70
    assert doc["error"]["code"] == "dkim-key-unusable"
    assert str(path) in doc["error"]["message"]


def test_rotate_is_idempotent(mp: Cli) -> None:
    """rotate makes one next key per algorithm; a second rotate shows the same keys unchanged."""
    status, first = mp.json("dkim", "rotate", "example.test")
    assert status == 0
    assert first["changed"] is True
    assert sorted(k["algorithm"] for k in first["keys"]) == ["ed25519", "rsa-2048"]
    status, again = mp.json("dkim", "rotate", "example.test")
    assert again["changed"] is False
    assert [k["selector"] for k in again["keys"]] == [k["selector"] for k in first["keys"]]


def test_activate_without_dns_is_refused(mp: Cli, silent_port: int) -> None:
    """activate refuses (exit 71) when DNS cannot confirm the record; signing does not switch."""
    assert mp("dkim", "keygen", "example.test", "--selector", "s1").exit_code == 0
    status, doc = mp.json(
        "dkim",
        "activate",
        "example.test",
        "s1",
        "--nameserver",
        f"127.0.0.1:{silent_port}",
        "--timeout",
        "0.1",
        "--retries",
        "0",
    )
    assert status == 71
    assert doc["error"]["check"]["status"] == "unknown"
    _, listed = mp.json("dkim", "list", "example.test")
    assert listed["keys"][0]["status"] == "next"


def test_force_activate_renders_signer_tables(mp: Cli, site: Path) -> None:
    """activate --force switches signing and writes KeyTable/SigningTable naming the key."""
    assert mp("dkim", "keygen", "example.test", "--selector", "s1").exit_code == 0
    status, doc = mp.json("dkim", "activate", "example.test", "s1", "--skip-dns-check")
    assert status == 0
    assert doc["key"]["signing"] is True
    assert "KeyTable" in doc["signer"]["changed_files"]
    table = (site / "opendkim" / "KeyTable").read_text()
    assert f"s1._domainkey.example.test example.test:s1:{_key(site, 's1')}" in table
    assert (
        "*@example.test s1._domainkey.example.test"
        in (site / "opendkim" / "SigningTable").read_text()
    )
    status, again = mp.json("dkim", "activate", "example.test", "s1", "--skip-dns-check")
    assert (status, again["changed"]) == (0, False)


def test_retire_rules(mp: Cli, site: Path) -> None:
    """A signing key cannot retire; a replaced one waits; --force retires and deletes the key."""
    for sel in ("s1", "s2"):
        assert mp("dkim", "keygen", "example.test", "--selector", sel).exit_code == 0
        assert mp("dkim", "activate", "example.test", sel, "--skip-dns-check").exit_code == 0
    status, doc = mp.json("dkim", "retire", "example.test", "s2")
    assert (status, doc["error"]["code"]) == (22, "in-use")
    status, doc = mp.json("dkim", "retire", "example.test", "s1")
    assert status == 22
    assert "in transit" in doc["error"]["message"]
    status, doc = mp.json("dkim", "retire", "example.test", "s1", "--skip-checks")
    assert status == 0
    assert doc["key"]["status"] == "retired"
    assert not _key(site, "s1").exists()
    status, doc = mp.json("dkim", "activate", "example.test", "s1", "--skip-dns-check")
    assert status == 28


def test_retire_after_waiting_period(mp: Cli, site: Path) -> None:
    """Once retire_after_days have passed since a key was replaced, retire accepts it."""

    settings = load_settings(config_file=site / "mailprov.toml", env={})
    store = open_store(settings.store.url)
    try:
        t0 = 1_800_000_000
        for sel, at in (("s1", t0), ("s2", t0 + 10)):
            keygen(store, settings, "example.test", actor=Actor("t", at), selector=sel)
            activate(
                store, settings, "example.test", sel, actor=Actor("t", at), lookup=None, force=True
            )
        later = Actor("t", t0 + 10 + settings.dkim.retire_after_days * 86_400)
        key, changed = retire(store, settings, "example.test", "s1", actor=later)
    finally:
        store.close()
    assert (key.status, changed) == ("retired", True)


def test_dns_records_omit_retired_and_show_next(mp: Cli) -> None:
    """dns records lists next and active selectors, not retired ones."""
    for sel in ("s1", "s2"):
        assert mp("dkim", "keygen", "example.test", "--selector", sel).exit_code == 0
    assert mp("dkim", "retire", "example.test", "s1").exit_code == 0
    _, doc = mp.json("dns", "records", "example.test")
    names = [r["name"] for r in doc["records"] if r["check"] == "dns.dkim.selector"]
    assert names == ["s2._domainkey.example.test."]


def test_certificate_file_that_is_not_a_certificate(mp: Cli, site: Path) -> None:
    """dns records with a [tls] cert_file that holds no certificate exits 72 naming the file."""
    (site / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    status, doc = mp.json("dns", "records", "example.test")
    assert status == 72
    assert doc["error"]["code"] == "certificate-invalid"
    assert str(site / "cert.pem") in doc["error"]["message"]
    status, _ = mp.json("dns", "records", "example.test", "--no-tlsa")
    assert status == 0


def test_audit_log_records_dkim_changes(mp: Cli) -> None:
    """keygen and activate are recorded in the audit log without any key material."""
    assert mp("dkim", "keygen", "example.test", "--selector", "s1").exit_code == 0
    assert mp("dkim", "activate", "example.test", "s1", "--skip-dns-check").exit_code == 0
    result: Any = mp("audit", "list", "--json")
    text = result.stdout
    assert "dkim.keygen" in text
    assert "dkim.activate" in text
    assert "PRIVATE" not in text


def test_dry_run_writes_nothing(mp: Cli, site: Path) -> None:
    """--dry-run on keygen, rotate, activate and retire reports the change and writes no file."""
    folder = site / "dkim" / "example.test"
    status, doc = mp.json("dkim", "keygen", "example.test", "--selector", "s1", "--dry-run")
    assert (status, doc["changed"], doc["key"]["selector"]) == (0, False, "s1")
    status, doc = mp.json("dkim", "rotate", "example.test", "--dry-run")
    assert status == 0
    assert [k["made"] for k in doc["keys"]] == [True, True]
    assert not folder.exists()
    assert mp("dkim", "keygen", "example.test", "--selector", "s1").exit_code == 0
    state = (folder / "selectors.json").read_text()
    status, doc = mp.json("dkim", "activate", "example.test", "s1", "--skip-dns-check", "--dry-run")
    assert (status, doc["would_change"], doc["key"]["signing"]) == (0, True, True)
    status, doc = mp.json("dkim", "retire", "example.test", "s1", "--dry-run")
    assert (status, doc["would_change"]) == (0, True)
    assert (folder / "selectors.json").read_text() == state
    assert _key(site, "s1").exists()
    assert not (site / "opendkim").exists()


def test_rotate_prints_a_record_a_zone_accepts(mp: Cli, tmp_path: Path) -> None:
    """rotate's RSA record is split into strings of at most 255 bytes; kzonecheck accepts it."""
    import shutil
    import subprocess

    from tests.conftest import require_or_skip
    from tests.integration.dns.conftest import zone_text

    result = mp("dkim", "rotate", "example.test", "--algorithm", "rsa-2048")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if "publish:" in x)
    record = line.split("publish:", 1)[1].strip()
    strings = record.split('"')[1::2]
    assert len(strings) >= 2
    assert all(len(s) <= 255 for s in strings)
    exe = shutil.which("kzonecheck")
    if exe is None:
        require_or_skip("kzonecheck is not installed (package knot-dnssecutils)")
    assert exe is not None
    zone = tmp_path / "example.test.zone"
    zone.write_text(zone_text("example.test", record + "\n", ns="ns.example.net."))
    done = subprocess.run(
        [exe, "-o", "example.test.", str(zone)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
