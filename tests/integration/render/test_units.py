"""The rendered systemd units: scored by systemd-analyze, and started under their sandbox.

The sandbox is emulated by ``tests/integration/sandbox.py`` (its docstring says what it
models and what it does not). Each site here lives in folders playing /etc (config),
/var/lib (store, state) and /run, as on a host (README, "File layout on a host").
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from mailprov.render import Layout, render_bundle
from mailprov.render.units import CONFIG_GROUP
from mailprov.rules import hashing
from mailprov.services import dkim, signer
from mailprov.services.accounts import Actor, NewPassword, add_mailbox
from mailprov.services.site import init_site
from mailprov.settings import load_settings
from mailprov.store import open_store
from mailprov.store.schema import owner_sessions, seen_token
from mailprov.system.tls import self_signed
from tests.conftest import require_or_skip
from tests.integration import sandbox

MAX_EXPOSURE = 3.0
EXPOSURE_RE = re.compile(r"Overall exposure level for \S+: (\d+\.\d)")


def _require_tools() -> None:
    for tool in ("systemd-analyze", "setpriv", "unshare"):
        if shutil.which(tool) is None:
            require_or_skip(f"{tool} is not installed (scripts/install-test-deps.sh)")
    try:
        grp.getgrnam(CONFIG_GROUP)
    except KeyError:
        require_or_skip(f"no group {CONFIG_GROUP} (scripts/install-test-deps.sh makes it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Site:
    """A site laid out as on a host, and its rendered units (file name -> text)."""

    roles: dict[str, Path]
    config_file: Path
    store_url: str
    units: dict[str, str]


def make_site(
    tmp_path: Path,
    *,
    store_in_etc: bool = False,
    extra_toml: str = "",
    env: dict[str, str] | None = None,
) -> Site:
    """'mailprov init' a site into the folder playing /etc/mailprov, then render its units."""
    roles = {name: tmp_path / "host" / name.strip("/") for name in ("/etc", "/var/lib", "/run")}
    for folder in roles.values():
        folder.mkdir(parents=True)
    store_dir = roles["/etc"] / "mailprov" if store_in_etc else roles["/var/lib"] / "mailprov"
    store_dir.mkdir(parents=True)
    made = init_site(
        roles["/etc"] / "mailprov",
        actor=Actor("test", int(time.time())),
        domain="example.test",
        store_url=f"sqlite:///{store_dir}/mailprov.sqlite",
    )
    with made.config_file.open("a", encoding="utf-8") as config:
        config.write(extra_toml)
    tls = self_signed("mail.example.test", tmp_path / "tls", ips=[], now=int(time.time()))
    cfg = load_settings(
        config_file=made.config_file,
        env={
            "MAILPROV_TLS_CERT_FILE": str(tls.cert_file),
            "MAILPROV_TLS_KEY_FILE": str(tls.key_file),
            "MAILPROV_DEPLOY_MAILPROV_COMMAND": str(Path(sys.executable).with_name("mailprov")),
            **(env or {}),
        },
    )
    units = {
        f.path.name: f.content
        for f in render_bundle(cfg, Layout.for_target(cfg, None))
        if f.component == "systemd"
    }
    return Site(roles, made.config_file, made.store_url, units)


def test_init_gives_the_config_to_the_group_the_relay_unit_joins(tmp_path: Path) -> None:
    """'mailprov init' writes the config 0640 with group mailprov, the relay's SupplementaryGroups."""
    _require_tools()
    site = make_site(tmp_path)
    info = site.config_file.stat()
    assert (0o640, CONFIG_GROUP) == (stat.S_IMODE(info.st_mode), grp.getgrgid(info.st_gid).gr_name)
    assert f"SupplementaryGroups={CONFIG_GROUP}\n" in site.units["mailprov-relay.service"]


DKIM = "[dkim]\nsign = true\nalgorithms = ['rsa-2048', 'ed25519']\n"
SCORED_SITES = {
    "sqlite, dkim signing": (DKIM, {}),
    "postgresql and smarthost by IP": (
        DKIM + "[relay]\nmode = 'forward'\nsmarthost_host = '198.51.100.7'\n",
        {"MAILPROV_STORE_URL": "postgresql+psycopg://mp@192.0.2.10:5432/mp"},
    ),
    "postgresql by name, relay and milter beyond loopback": (
        DKIM.replace("sign =", "milter_host = '192.0.2.1'\nsign =")
        + "[relay]\nlisten = '0.0.0.0:2525'\nrequire_auth = true\n",
        {"MAILPROV_STORE_URL": "postgresql+psycopg://mp@db.example.org:5432/mp"},
    ),
}


@pytest.mark.parametrize(("extra_toml", "env"), SCORED_SITES.values(), ids=SCORED_SITES.keys())
def test_every_rendered_unit_scores_ok_in_systemd_analyze_security(
    tmp_path: Path, extra_toml: str, env: dict[str, str]
) -> None:
    """Every rendered service has an exposure of at most 3.0 ('OK') in systemd-analyze security."""
    _require_tools()
    site = make_site(tmp_path, extra_toml=extra_toml, env=env)
    services = sorted(name for name in site.units if name.endswith(".service"))
    assert [
        "mailprov-opendkim-ed25519.service",
        "mailprov-opendkim.service",
        "mailprov-relay.service",
        "mailprov-serve.service",
        "mailprov-sweep.service",
    ] == services
    scores = {}
    for name in services:
        path = tmp_path / name
        path.write_text(site.units[name])
        res = subprocess.run(
            ["systemd-analyze", "security", "--offline=true", "--threshold=30", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        found = EXPOSURE_RE.search(res.stdout)
        assert found, res.stdout + res.stderr
        scores[name] = float(found.group(1))
        assert res.returncode == 0, res.stdout
    assert {n: s for n, s in scores.items() if s > MAX_EXPOSURE} == {}


def test_relay_unit_answers_smtp_and_stores_in_its_state_folder(tmp_path: Path) -> None:
    """As its DynamicUser in its sandbox, the relay answers SMTP on loopback and stores the message under StateDirectory."""
    _require_tools()
    port, api = _free_port(), _free_port()
    site = make_site(
        tmp_path,
        extra_toml=f"[relay]\nlisten = '127.0.0.1:{port}'\napi_listen = '127.0.0.1:{api}'\n",
    )
    unit = site.units["mailprov-relay.service"]
    assert "--storage %S/mailprov-relay" in unit
    proc = sandbox.popen(unit, site.roles, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                smtp = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10)
                break
            except OSError:
                assert time.monotonic() < deadline, "the relay did not listen"
                time.sleep(0.1)
        with smtp:
            refused = smtp.sendmail(
                "app@example.test",
                ["ann@example.test"],
                b"Subject: sandboxed hello\r\n\r\nbody\r\n",
            )
        assert refused == {}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    state = site.roles["/var/lib"] / "mailprov-relay"
    segments = list((state / "messages").glob("*.seg"))
    assert any(b"Subject: sandboxed hello" in s.read_bytes() for s in segments), (out, err)
    owners = {p.stat().st_uid for p in [state, *segments]}
    assert len(owners) == 1
    assert owners != {0}


def test_serve_unit_answers_and_writes_the_store(tmp_path: Path) -> None:
    """In its sandbox (root without capabilities, the config folder read-only) serve answers
    HTTP on [web] listen and a sign-in writes its session into the SQLite store."""
    _require_tools()
    port = _free_port()
    site = make_site(tmp_path, extra_toml=f"[web]\nlisten = '127.0.0.1:{port}'\n")
    store = open_store(site.store_url)
    password = "Sandboxed-Passw0rd!"
    try:
        prepared = NewPassword(hashing.hash_password(password, "SHA512-CRYPT"), None)
        add_mailbox(store, "ann@example.test", prepared, actor=Actor("test", int(time.time())))
    finally:
        store.close()
    unit = site.units["mailprov-serve.service"]
    assert "\nReadWritePaths=" in unit and "\nCapabilityBoundingSet=\n" in unit
    proc = sandbox.popen(unit, site.roles, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/api/v1/session",
                    json={"address": "ann@example.test", "password": password},
                    timeout=10,
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve did not listen"
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert answer.status_code == 201, (answer.text, out, err)
    assert proc.returncode == 0, err
    store = open_store(site.store_url)
    try:
        with store.read() as conn:
            assert conn.execute(select(owner_sessions.c.address)).scalars().all() == [
                "ann@example.test"
            ]
    finally:
        store.close()


def _stale_token(url: str) -> None:
    store = open_store(url)
    try:
        with store.begin() as conn:
            conn.execute(seen_token.insert().values(iss="i", jti="j", exp=1, used_at=1))
    finally:
        store.close()


def _tokens(url: str) -> list[str]:
    store = open_store(url)
    try:
        with store.read() as conn:
            return [r.jti for r in conn.execute(select(seen_token.c.jti))]
    finally:
        store.close()


@pytest.mark.parametrize("store_in_etc", [False, True], ids=["store in /var/lib", "store in /etc"])
def test_sweep_unit_writes_the_store(tmp_path: Path, store_in_etc: bool) -> None:
    """In its sandbox the sweep runs and writes the store (here: drops a stale replay row), wherever init put it."""
    _require_tools()
    site = make_site(tmp_path, store_in_etc=store_in_etc)
    _stale_token(site.store_url)
    res = sandbox.run(site.units["mailprov-sweep.service"], site.roles)
    assert (res.returncode, res.stderr) == (0, "")
    assert "expired-requests: 0" in res.stdout
    assert [] == _tokens(site.store_url)


def test_sweep_without_read_write_paths_fails_on_a_readonly_store(tmp_path: Path) -> None:
    """The emulated ProtectSystem=strict bites: without ReadWritePaths= the sweep hits issue 10's error."""
    _require_tools()
    site = make_site(tmp_path)
    unit = site.units["mailprov-sweep.service"]
    assert "\nReadWritePaths=" in unit
    res = sandbox.run(unit.replace("\nReadWritePaths=", "\n#"), site.roles)
    assert res.returncode != 0
    assert "attempt to write a readonly database" in res.stderr


def test_opendkim_units_start_as_the_signer_user(tmp_path: Path) -> None:
    """Both OpenDKIM units start in their sandbox as the signer's user, write their PID file and listen."""
    _require_tools()
    if shutil.which("opendkim") is None:
        require_or_skip("opendkim is not installed (scripts/install-test-deps.sh)")
    ports = {"rsa": _free_port(), "ed": _free_port()}
    key_dir = tmp_path / "host" / "var" / "lib" / "mailprov" / "dkim"
    run_dir = tmp_path / "host" / "run" / "opendkim"
    site = make_site(
        tmp_path,
        extra_toml=(
            "[dkim]\nsign = true\nalgorithms = ['rsa-2048', 'ed25519']\n"
            f"key_dir = '{key_dir}'\nopendkim_dir = '{tmp_path}/host/etc/opendkim'\n"
            f"milter_port = {ports['rsa']}\ned25519_milter_port = {ports['ed']}\n"
            f"pid_file = '{run_dir}/opendkim.pid'\n"
            f"ed25519_pid_file = '{run_dir}/opendkim-ed25519.pid'\n"
        ),
    )
    settings = load_settings(config_file=site.config_file, env={})
    store = open_store(site.store_url)
    actor = Actor("test", int(time.time()))
    try:
        for algorithm in ("rsa-2048", "ed25519"):
            key = dkim.keygen(store, settings, "example.test", actor=actor, algorithm=algorithm)
            dkim.activate(
                store, settings, "example.test", key.selector, actor=actor, lookup=None, force=True
            )
        folder = Path(settings.dkim.opendkim_dir)
        folder.mkdir(parents=True)
        for name, text in signer.plan(store, settings, folder)[1].items():
            (folder / name).write_text(text)
    finally:
        store.close()
    procs = []
    try:
        for name, port in (
            ("mailprov-opendkim.service", ports["rsa"]),
            ("mailprov-opendkim-ed25519.service", ports["ed"]),
        ):
            procs.append(sandbox.popen(site.units[name], site.roles, stderr=subprocess.PIPE))
            deadline = time.monotonic() + 20
            while True:
                assert procs[-1].poll() is None, procs[-1].communicate()
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"{name} did not listen"
                    time.sleep(0.1)
        pids = sorted(int(p.read_text().split()[0]) for p in run_dir.glob("*.pid"))
        assert sorted(p.pid for p in procs) == pids
        user = pwd.getpwnam(settings.dkim.signer_user)
        owners = {(os.stat(f"/proc/{pid}").st_uid, os.stat(f"/proc/{pid}").st_gid) for pid in pids}
        assert {(user.pw_uid, user.pw_gid)} == owners
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
