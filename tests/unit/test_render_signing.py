"""The DKIM milter lines and OpenDKIM units in the rendered bundle, from [dkim] settings only."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailprov.errors import ConfigInvalid
from mailprov.render import Layout, render_bundle
from mailprov.settings import SiteConfig, load_settings
from tests.conftest import CertAuthority


@pytest.fixture(scope="module", name="tls_files")
def fixture_tls_files(
    tmp_path_factory: pytest.TempPathFactory, test_ca: CertAuthority
) -> tuple[str, str]:
    """A certificate and key from the test CA."""
    made = test_ca.issue(tmp_path_factory.mktemp("tls"), "mail.example.test", "127.0.0.1")
    return str(made.cert_file), str(made.key_file)


def config(tls_files: tuple[str, str], **env: str) -> SiteConfig:
    """Settings from defaults plus MAILPROV_* variables."""
    base = {
        "MAILPROV_CONFIG": "",
        "MAILPROV_TLS_CERT_FILE": tls_files[0],
        "MAILPROV_TLS_KEY_FILE": tls_files[1],
        "MAILPROV_STORE_URL": "sqlite:////var/lib/mailprov/mailprov.sqlite",
    }
    return load_settings(env={**base, **env})


def rendered(cfg: SiteConfig) -> dict[str, str]:
    """File name -> text of the bundle rendered under /srv/t."""
    return {
        f.path.name: f.content for f in render_bundle(cfg, Layout.for_target(cfg, Path("/srv/t")))
    }


def test_signing_off_renders_no_milters(tls_files: tuple[str, str]) -> None:
    """Without [dkim] sign, main.cf has no milter and no OpenDKIM unit is rendered."""
    out = rendered(config(tls_files))
    assert "milters" not in out["main.cf"]
    assert not [n for n in out if n.startswith("mailprov-opendkim")]


def test_dual_signing_renders_both_milters_and_units(tls_files: tuple[str, str]) -> None:
    """Dual signing gives two milters (RSA first), tempfail, and one unit per instance."""
    out = rendered(
        config(
            tls_files,
            MAILPROV_DKIM_SIGN="true",
            MAILPROV_DKIM_ALGORITHMS="rsa-2048,ed25519",
            MAILPROV_DKIM_MILTER_PORT="18891",
            MAILPROV_DKIM_ED25519_MILTER_PORT="18892",
        )
    )
    main_cf = out["main.cf"]
    assert "smtpd_milters = inet:127.0.0.1:18891, inet:127.0.0.1:18892\n" in main_cf
    assert "non_smtpd_milters = $smtpd_milters\n" in main_cf
    assert "milter_default_action = tempfail\n" in main_cf
    assert "milter_protocol = 6\n" in main_cf
    unit = out["mailprov-opendkim-ed25519.service"]
    assert "ExecStart=/usr/sbin/opendkim -f -x /srv/t/opendkim/opendkim-ed25519.conf\n" in unit
    assert "mailprov-opendkim.service" in out


def test_bad_milter_host_is_refused(tls_files: tuple[str, str]) -> None:
    """A milter host that is not an IP address is config-invalid naming dkim.milter_host."""
    for host in ("x\ny", "milter.example.test"):
        with pytest.raises(ConfigInvalid, match=r"dkim\.milter_host"):
            config(tls_files, MAILPROV_DKIM_SIGN="true", MAILPROV_DKIM_MILTER_HOST=host)
