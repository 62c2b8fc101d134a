"""The systemd units' sandbox values: what each unit may write and which IP peers it may reach."""

from __future__ import annotations

import pytest

from mailprov.render.contexts import Layout, build_context
from mailprov.settings import load_settings
from mailprov.system.tls import self_signed


@pytest.fixture(scope="module", name="tls_env")
def fixture_tls_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """MAILPROV_TLS_* variables naming a certificate and key made by the tls service."""
    made = self_signed(
        "mail.example.test", tmp_path_factory.mktemp("tls"), ips=[], now=1_800_000_000
    )
    return {
        "MAILPROV_TLS_CERT_FILE": str(made.cert_file),
        "MAILPROV_TLS_KEY_FILE": str(made.key_file),
    }


CASES = {
    "sqlite": (
        {},
        {"relay": "localhost", "sweep": None, "signer": "localhost", "serve": "localhost"},
    ),
    "postgresql by IP, smarthost by IP": (
        {
            "MAILPROV_STORE_URL": "postgresql+psycopg://mp@192.0.2.10:5432/mp",
            "MAILPROV_RELAY_MODE": "forward",
            "MAILPROV_RELAY_SMARTHOST_HOST": "198.51.100.7",
        },
        {
            "relay": "localhost 192.0.2.10 198.51.100.7",
            "sweep": "192.0.2.10",
            "signer": "localhost",
            "serve": "localhost 192.0.2.10",
        },
    ),
    "postgresql on loopback": (
        {"MAILPROV_STORE_URL": "postgresql+psycopg://mp@127.0.0.1:5432/mp"},
        {"relay": "localhost", "sweep": "localhost", "signer": "localhost", "serve": "localhost"},
    ),
    "postgresql by name, relay and milter beyond loopback": (
        {
            "MAILPROV_STORE_URL": "postgresql+psycopg://mp@db.example.org:5432/mp",
            "MAILPROV_RELAY_LISTEN": "0.0.0.0:2525",
            "MAILPROV_DKIM_MILTER_HOST": "192.0.2.1",
        },
        {"relay": "", "sweep": "", "signer": "", "serve": ""},
    ),
    "notices by a smarthost at an IP, serve with its own HTTPS": (
        {
            "MAILPROV_NOTIFY_SMARTHOST": "192.0.2.25",
            "MAILPROV_WEB_LISTEN": "0.0.0.0:8443",
            "MAILPROV_WEB_TLS": "true",
        },
        {"relay": "localhost", "sweep": "192.0.2.25", "signer": "localhost", "serve": ""},
    ),
    "notices by a hook": (
        {"MAILPROV_NOTIFY_HOOK": "/usr/local/bin/sms-gateway"},
        {"relay": "localhost", "sweep": "", "signer": "localhost", "serve": ""},
    ),
}


@pytest.mark.parametrize(("env", "allow"), CASES.values(), ids=CASES.keys())
def test_ip_allow_lists_follow_the_peers_each_unit_needs(
    tls_env: dict[str, str], env: dict[str, str], allow: dict[str, str | None]
) -> None:
    """Peers on loopback or given by IP make an allow-list; a peer by name or a public listener none; SQLite no network."""
    base = {"MAILPROV_CONFIG": "", "MAILPROV_STORE_URL": "sqlite:////var/lib/mailprov/m.sqlite"}
    cfg = load_settings(env={**base, **tls_env, **env})
    units = build_context(cfg, Layout.for_target(cfg, None))["systemd"]
    sweep = units["sweep"]["network"]
    assert allow == {
        "relay": units["relay"]["network"]["ip_allow"],
        "sweep": None if sweep["private"] else sweep["ip_allow"],
        "signer": units["signer"]["network"]["ip_allow"],
        "serve": units["serve"]["network"]["ip_allow"],
    }


def test_sweep_may_write_only_the_sqlite_store_folder(tls_env: dict[str, str]) -> None:
    """On SQLite the sweep's and serve's one writable folder is the store's; on PostgreSQL none."""
    sqlite = load_settings(
        env={"MAILPROV_CONFIG": "", "MAILPROV_STORE_URL": "sqlite:////srv/site/m.sqlite", **tls_env}
    )
    pg = load_settings(
        env={
            "MAILPROV_CONFIG": "",
            "MAILPROV_STORE_URL": "postgresql+psycopg://mp@127.0.0.1/mp",
            **tls_env,
        }
    )
    got = [
        [
            build_context(c, Layout.for_target(c, None))["systemd"][u]["read_write"]
            for c in (sqlite, pg)
        ]
        for u in ("sweep", "serve")
    ]
    assert [[["/srv/site"], []]] * 2 == got
