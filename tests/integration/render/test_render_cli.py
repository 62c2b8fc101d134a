"""tls self-signed, sweep, and the systemd units (checked by systemd-analyze where installed)."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from sqlalchemy import update

from mailprov.render import Layout, render_bundle
from mailprov.settings import load_settings
from mailprov.store.schema import mailboxes
from tests.conftest import CertAuthority, Cli, invoke, require_or_skip


def test_self_signed_makes_private_key_and_matching_certificate(run: Any, tmp_path: Path) -> None:
    """tls self-signed writes a 0600 key and a certificate for the host, localhost and 127.0.0.1."""
    code, data = run.json(
        "tls", "self-signed", "--host", "mail.example.test", "--out", str(tmp_path / "tls")
    )
    assert (code, data["changed"]) == (0, True)
    key = Path(data["key_file"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(Path(data["cert_file"]).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mail.example.test", "localhost"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert "PRIVATE KEY" not in json.dumps(data)


def test_self_signed_never_overwrites_a_key(run: Any, tmp_path: Path) -> None:
    """A second run into the same folder is refused (file-exists) and the key is unchanged."""
    out = tmp_path / "tls"
    assert (
        run("tls", "self-signed", "--host", "mail.example.test", "--out", str(out)).exit_code == 0
    )
    before = (out / "key.pem").read_bytes()
    code, data = run.json("tls", "self-signed", "--host", "mail.example.test", "--out", str(out))
    assert (code, data["error"]["code"]) == (29, "file-exists")
    assert (out / "key.pem").read_bytes() == before


def test_self_signed_refuses_a_bad_host(run: Any, tmp_path: Path) -> None:
    """A host name with a space is refused before any file is written."""
    code, data = run.json(
        "tls", "self-signed", "--host", "mail example", "--out", str(tmp_path / "tls")
    )
    assert code == 20
    assert data["error"]["code"] == "invalid-address"
    assert not (tmp_path / "tls").exists()


def test_sweep_reports_expired_temporary_passwords(run: Any, store: Any) -> None:
    """sweep lists mailboxes whose temporary password expired, and changes nothing."""
    for name in ("fresh", "stale"):
        assert (
            run("mailbox", "add", f"{name}@example.test", "--generate", "--temporary").exit_code
            == 0
        )
    with store.begin() as conn:
        conn.execute(
            update(mailboxes)
            .where(mailboxes.c.address == "stale@example.test")
            .values(temp_password_expires_at=int(time.time()) - 10)
        )
    code, data = run.json("sweep")
    assert code == 0
    assert data["changed"] is False
    step, requests_step, reminders_step, sessions_step = data["steps"]
    assert step["step"] == "expired-temporary-passwords"
    assert (requests_step["step"], requests_step["count"]) == ("expired-requests", 0)
    assert (reminders_step["step"], reminders_step["count"]) == ("password-reminders", 0)
    assert (sessions_step["step"], sessions_step["count"]) == ("expired-sessions", 0)
    assert [i["address"] for i in step["items"]] == ["stale@example.test"]


def test_rendered_units_pass_systemd_analyze_verify(tmp_path: Path, test_ca: CertAuthority) -> None:
    """The relay, sweep and serve services and the sweep timer pass 'systemd-analyze verify'."""
    if shutil.which("systemd-analyze") is None:
        require_or_skip("systemd-analyze is not installed (package systemd)")

    made = test_ca.issue(tmp_path / "tls", "mail.example.test")
    cfg = load_settings(
        env={
            "MAILPROV_CONFIG": "",
            "MAILPROV_STORE_URL": "sqlite:////x.sqlite",
            "MAILPROV_TLS_CERT_FILE": str(made.cert_file),
            "MAILPROV_TLS_KEY_FILE": str(made.key_file),
            "MAILPROV_DEPLOY_MAILPROV_COMMAND": str(Path(sys.executable).with_name("mailprov")),
        }
    )
    units = [
        f for f in render_bundle(cfg, Layout.for_target(cfg, tmp_path)) if f.component == "systemd"
    ]
    for unit in units:
        unit.path.parent.mkdir(parents=True, exist_ok=True)
        unit.path.write_text(unit.content)
    assert sorted(u.path.name for u in units) == [
        "mailprov-relay.service",
        "mailprov-serve.service",
        "mailprov-sweep.service",
        "mailprov-sweep.timer",
    ]
    res = subprocess.run(
        ["systemd-analyze", "verify", *(str(u.path) for u in units)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (res.returncode, res.stderr) == (0, "")


def test_opendkim_units_pass_systemd_analyze_verify(tmp_path: Path, test_ca: CertAuthority) -> None:
    """With [dkim] sign and dual signing, both OpenDKIM units pass 'systemd-analyze verify'."""
    if shutil.which("systemd-analyze") is None:
        require_or_skip("systemd-analyze is not installed (package systemd)")

    made = test_ca.issue(tmp_path / "tls", "mail.example.test")
    cfg = load_settings(
        env={
            "MAILPROV_CONFIG": "",
            "MAILPROV_STORE_URL": "sqlite:////x.sqlite",
            "MAILPROV_TLS_CERT_FILE": str(made.cert_file),
            "MAILPROV_TLS_KEY_FILE": str(made.key_file),
            "MAILPROV_DKIM_SIGN": "true",
            "MAILPROV_DKIM_ALGORITHMS": "rsa-2048,ed25519",
        }
    )
    units = [
        f
        for f in render_bundle(cfg, Layout.for_target(cfg, tmp_path))
        if f.path.name.startswith("mailprov-opendkim")
    ]
    assert sorted(u.path.name for u in units) == [
        "mailprov-opendkim-ed25519.service",
        "mailprov-opendkim.service",
    ]
    for unit in units:
        unit.path.parent.mkdir(parents=True, exist_ok=True)
        unit.path.write_text(unit.content)
    res = subprocess.run(
        ["systemd-analyze", "verify", *(str(u.path) for u in units)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (res.returncode, res.stderr) == (0, "")


def test_self_signed_configure_wires_the_site_config(tmp_path: Path) -> None:
    """--configure points [tls] at the new files, keeps the file's comments, and a re-run
    with --keep-existing changes nothing; the settings then name the new files.
    """
    from mailprov.settings import load_settings

    site = tmp_path / "site"
    assert invoke("init", "--dir", str(site), "--domain", "example.test").exit_code == 0
    config = site / "mailprov.toml"
    config.write_text(config.read_text() + "# kept: a comment of the admin\n")
    cli = Cli(tmp_path / "state", config=config)
    args = ("tls", "self-signed", "--host", "mail.example.test", "--out", str(site / "tls"))
    code, data = cli.json(*args, "--configure")
    assert (code, data["changed"], data["configured"]) == (0, True, True), data
    text = config.read_text()
    assert "# kept: a comment of the admin" in text
    settings = load_settings(config_file=config, env={})
    assert Path(settings.tls.cert_file) == (site / "tls" / "cert.pem").resolve()
    assert Path(settings.tls.key_file) == (site / "tls" / "key.pem").resolve()
    code, again = cli.json(*args, "--configure", "--keep-existing")
    assert (code, again["changed"], again["configured"]) == (0, False, False)
    assert config.read_text() == text


def test_self_signed_configure_needs_a_config(tmp_path: Path) -> None:
    """Without a config file --configure is refused before any file is made."""
    result = invoke(
        "tls",
        "self-signed",
        "--host",
        "h.example.test",
        "--out",
        str(tmp_path / "t"),
        "--configure",
    )
    assert result.exit_code == 26
    assert not (tmp_path / "t").exists()
