"""Rendering by [cluster] role: what a frontend and a backend get that one host does not, and
the home rules behind it (the real servers judge the files in test_cluster_stack.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailprov.errors import InvalidValue, UnknownBackend
from mailprov.render import Layout, render_bundle
from mailprov.rules.backends import home_origin, known_backend
from mailprov.settings import SiteConfig, load_settings
from tests.conftest import CertAuthority

PG = "postgresql+psycopg://mailprov@db.example.test/mailprov"
BACKENDS = 'backends = ["b1=10.0.0.3", "b2=2001:db8::4"]\n'


@pytest.fixture(scope="module", name="tls")
def fixture_tls(tmp_path_factory: pytest.TempPathFactory, test_ca: CertAuthority) -> str:
    """Where a certificate and key from the test CA are (the files must exist to render)."""
    folder = tmp_path_factory.mktemp("tls")
    test_ca.issue(folder, "mail.example.test")
    return str(folder)


def _render(tmp_path: Path, tls: str, cluster: str) -> dict[str, str]:
    config_file = tmp_path / "mailprov.toml"
    config_file.write_text(
        f'[site]\nhostname = "mail.example.test"\n[store]\nurl = "{PG}"\n'
        f'[tls]\ncert_file = "{tls}/cert.pem"\nkey_file = "{tls}/key.pem"\n'
        f"[cluster]\n{cluster}"
    )
    config: SiteConfig = load_settings(config_file=config_file, env={"MAILPROV_CONFIG": ""})
    layout = Layout.for_target(config, tmp_path / "out")
    return {f.path.name: f.content for f in render_bundle(config, layout)}


def test_a_frontend_proxies_and_routes_by_home(tmp_path: Path, tls: str) -> None:
    """A frontend's passdbs name the home's host and port, its Postfix routes by an SQL
    transport map (IPv6 bracketed for Postfix), and it has no mail storage, LMTP or quotas."""
    out = _render(tmp_path, tls, 'role = "frontend"\n' + BACKENDS)
    transport = out["sql-transport.cf"]
    assert "WHEN 'b1' THEN 'lmtp:inet:[10.0.0.3]:24'" in transport
    assert "WHEN 'b2' THEN 'lmtp:inet:[ipv6:2001:db8::4]:24'" in transport
    assert "'retry:4.3.5 home backend '" in transport
    for name in ("dovecot-sql.conf.ext", "dovecot-app-passwords.conf.ext"):
        assert "'Y' AS proxy" in out[name]
        assert "WHEN 'b2' THEN '2001:db8::4'" in out[name]
        assert "WHEN 'imap' THEN '143'" in out[name]
    assert "user_query" not in out["dovecot-sql.conf.ext"]
    main, dovecot = out["main.cf"], out["dovecot.conf"]
    assert "transport_maps = pgsql:" in main
    assert "quota_check" not in main
    assert "quota_1 = check_policy_service inet:10.0.0.3:12340\n" in main
    assert "quota_2 = check_policy_service inet:[2001:db8::4]:12340\n" in main
    assert "WHEN 'b2' THEN 'quota_2'" in out["sql-quota-limited.cf"]
    assert "protocols = imap pop3 sieve\n" in dovecot
    for absent in ("service lmtp", "quota-status", "mail_location", "driver = static"):
        assert absent not in dovecot
    assert "driver = prefetch" in dovecot


def test_a_backend_trusts_only_its_frontends(tmp_path: Path, tls: str) -> None:
    """A backend trusts the frontends' networks, listens for LMTP at its own address and
    serves only its own mailboxes (another's lookup fails on purpose)."""
    out = _render(
        tmp_path,
        tls,
        'role = "backend"\nname = "b1"\nfrontends = ["10.0.0.2/32", "[2001:db8::2]/128"]\n'
        + BACKENDS,
    )
    dovecot, sql = out["dovecot.conf"], out["dovecot-sql.conf.ext"]
    assert "allow_real_nets=10.0.0.2/32, 2001:db8::2/128" in dovecot
    assert "login_trusted_networks = 10.0.0.2/32, 2001:db8::2/128" in dovecot
    assert "address = 10.0.0.3\n" in dovecot
    assert "port = 12340\n" in dovecot.split("service quota-status")[1]
    assert "protocols = imap pop3 lmtp sieve" in dovecot
    assert "THEN 5000" in sql
    assert "ELSE CAST('home backend is '" in sql
    assert "= 'b1'" in sql.split("iterate_query")[1]
    assert "sql-transport.cf" not in out
    assert "'Y' AS proxy" not in sql


def test_home_origin_and_known_backends() -> None:
    """Where a home comes from, and names checked against the site's list."""
    assert home_origin("b1", "b2") == "mailbox"
    assert home_origin(None, "b2") == "domain"
    assert home_origin(None, None) == "site"
    assert known_backend("b2", ["b1", "b2"]) == "b2"
    with pytest.raises(UnknownBackend, match="b1, b2"):
        known_backend("b3", ["b1", "b2"])
    with pytest.raises(UnknownBackend, match="no backends"):
        known_backend("b1", [])
    with pytest.raises(InvalidValue):
        known_backend("B 1", ["b1"])
