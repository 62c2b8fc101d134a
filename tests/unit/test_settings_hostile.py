"""Hostile setting values: refused where the settings load, or harmless in everything rendered.

Every string setting (and every element of a list-of-strings setting), found from
the section types so a new setting is covered without editing this file, is fed
hostile values through the TOML file, ``MAILPROV_*`` variables and flags. A value
is either refused by ``load_settings`` with ConfigInvalid naming the setting and
its layer, or it renders (deploy's files for a ``--target``, the ``dns records``
zone, OpenDKIM's files with signing on, client config, the relay's options)
without any file gaining a line over the render of a harmless value.
"""

from __future__ import annotations

import json
import shutil
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailprov.errors import ConfigInvalid, MailprovError
from mailprov.relay.options import options_from_settings
from mailprov.render import Layout
from mailprov.rules.dnsrecords import to_zone
from mailprov.services import clientconfig, dkim
from mailprov.services.accounts import Actor, NewPassword, add_domain, add_mailbox
from mailprov.services.deploy import rendered_files
from mailprov.services.dns import record_set
from mailprov.settings import SiteConfig, load_settings
from mailprov.settings.loader import field_types, section_types
from mailprov.store import Store, open_store
from mailprov.system.tls import self_signed

NOW = 1_800_000_000
DOMAIN = "example.test"
ADDRESS = f"ann@{DOMAIN}"
#: A value each setting whose default is empty accepts, to put hostile text around.
SAMPLES = {
    "site.domain": DOMAIN,
    "postfix.maillog_file": "/var/log/mail.log",
    "postfix.relayhost": "[smtp.example.org]:587",
    "dovecot.log_path": "/var/log/dovecot.log",
    "notify.smarthost": "smtp.example.org",
    "notify.username": "mailprov",
    "notify.password_file": "notify-password",
    "notify.hook": "/usr/local/bin/sms-gateway --stdin",
    "relay.hostname": "relay.example.test",
    "relay.credentials_file": "relay-users",
    "relay.tls_cert_file": "relay-cert.pem",
    "relay.tls_key_file": "relay-key.pem",
    "relay.tls_listen": "127.0.0.1:2465",
    "relay.faults": "rcpt:*=450 4.0.0 try later",
    "relay.local_domains": "example.org",
    "postfix.unauthenticated_sender_domains": "news.example.test",
    "relay.lmtp": "127.0.0.1:24",
    "relay.smarthost_host": "smtp.example.org",
    "relay.smarthost_username": "relay",
    "relay.smarthost_password_file": "smarthost-password",
    "relay.smarthost_ca_file": "smarthost-ca.pem",
    "relay.api_hosts": "relay.example.test",
    "web.listen": "127.0.0.1:8443",
    "web.hosts": "mail.example.test",
    "web.trusted_proxies": "127.0.0.1",
    "web.public_url": "https://portal.example.test/",
    "web.test_issuer": "test-issuer",
    "dns.ipv4": "192.0.2.10",
    "dns.ipv6": "2001:db8::10",
    "dns.dmarc_rua": "mailto:dmarc@example.test",
    "dns.dmarc_ruf": "mailto:dmarc@example.test!10m",
    "dns.mta_sts_mx": "*.example.net",
    "dns.tls_rpt_rua": "mailto:tls@example.test,https://tlsrpt.example.test/v1",
    "dns.web_host": "www.example.test",
    "dns.tlsa_next_file": "tls/cert.pem",  # relative to the site folder
    "dns.check_nameserver": "127.0.0.1:5353",
    "dkim.trusted_hosts": "192.0.2.0/24",
    "rspamd.nameservers": "127.0.0.1:5353",
    "rspamd.log_file": "/var/log/rspamd.log",
    "identity.extra_ekus": "1.3.6.1.5.5.7.3.4",
    "oidc.issuer": "https://id.example.test",
    "oidc.client_id": "mailprov",
    "oidc.client_secret_file": "oidc-client-secret",
    "oidc.redirect_url": "https://mail.example.test/api/v1/identity/oidc/callback",
    "oidc.ca_file": "oidc-ca.pem",
    "check.host": "127.0.0.1",
    "check.server_name": "mail.example.test",
    "check.ca_file": "ca.pem",
    "store.read_hosts": "db2.example.test:5432",
    "cluster.backends": "backend-1=10.0.0.2",
    "cluster.name": "backend-1",
    "cluster.default_backend": "backend-1",
    "cluster.frontends": "10.0.0.1/32",
    "cluster.source_address": "10.0.0.1",
}
PG_URL = "postgresql+psycopg://mailprov@db.example.test/mp"
#: Settings that need others to make sense, and those others (read hosts need PostgreSQL;
#: rendering only writes the URL into the maps, so no server is needed).
COMPANIONS: dict[str, dict[str, dict[str, Any]]] = {
    "store.read_hosts": {"store": {"url": PG_URL}},
    "cluster.backends": {"store": {"url": PG_URL}, "cluster": {"role": "frontend"}},
    **{
        f"cluster.{key}": {
            "store": {"url": PG_URL},
            "cluster": {
                "role": "backend",
                "name": "backend-1",
                "backends": ["backend-1=10.0.0.2"],
                "frontends": ["10.0.0.1/32"],
            },
        }
        for key in ("name", "default_backend")
    },
}
#: Line breaks and other control characters: refused in every string setting.
CONTROLS = ["\n", "\r", "\x00", "\t", "\x0b", "\x85", "\u2028"]
#: What config formats, shells and templates treat specially, and a 10 kB string.
#: Files checked on this host where they are used (they must exist and hold a certificate).
HOST_CHECKED = {"dns.tlsa_next_file"}
SPECIALS = ['"', "'", ";", "{", "}", "%", "$", "\\", "#", " ", "=", "*", "x" * 10_240]


@dataclass(frozen=True)
class Setting:
    """One string setting (or the element of a list-of-strings setting)."""

    section: str
    key: str
    is_list: bool

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def env_name(self) -> str:
        return f"MAILPROV_{self.section}_{self.key}".upper()


def _is_text(tp: Any) -> bool:
    base = typing.get_args(tp)[0] if typing.get_origin(tp) is typing.Annotated else tp
    return base is str or typing.get_origin(base) is Literal


def string_settings() -> list[Setting]:
    """Every setting whose value (or list element) is a string, from the section types."""
    out = []
    for section, section_type in section_types().items():
        for key, tp in field_types(section_type).items():
            if typing.get_origin(tp) is list:
                if _is_text(typing.get_args(tp)[0]):
                    out.append(Setting(section, key, is_list=True))
            elif _is_text(tp):
                out.append(Setting(section, key, is_list=False))
    return out


SETTINGS = string_settings()


@dataclass
class Site:
    """A site folder with a store, a certificate, a domain, a mailbox and a DKIM key."""

    root: Path
    base: dict[str, dict[str, Any]] = field(repr=False)
    store: Store = field(repr=False)
    baselines: dict[tuple[str, str], dict[str, int]] = field(repr=False)


def toml_value(value: Any) -> str:
    """A TOML literal for a str, bool, int or list of str (JSON's escapes are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


def write_config(path: Path, data: dict[str, dict[str, Any]]) -> Path:
    """``data`` as a TOML file."""
    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def base_value(setting: Setting) -> str:
    """A harmless value of the setting: its default, or a sample when that is empty."""
    default = getattr(section_types()[setting.section](), setting.key)
    if setting.is_list:
        default = default[0] if default else ""
    return str(default) or SAMPLES.get(setting.dotted, "")


def load(site: Site, setting: Setting, value: str, layer: str) -> SiteConfig:
    """The site's settings with ``value`` for ``setting`` given through ``layer``."""
    data = {section: dict(values) for section, values in site.base.items()}
    env = {"MAILPROV_CONFIG": ""}
    flags: dict[str, Any] = {}
    given: Any = [value] if setting.is_list else value
    for section, values in COMPANIONS.get(setting.dotted, {}).items():
        data.setdefault(section, {}).update(values)
    if layer == "file":
        data.setdefault(setting.section, {})[setting.key] = given
    elif layer == "env":
        env[setting.env_name] = value
    else:
        flags[setting.dotted] = given
    config = site.root / "base.toml"
    if layer == "file":
        config = write_config(site.root / "file.toml", data)
    elif setting.dotted in COMPANIONS:
        config = write_config(site.root / "companion.toml", data)
    return load_settings(config_file=config, env=env, flags=flags)


def render_everything(site: Site, config: SiteConfig) -> dict[str, str]:
    """Every text mailprov writes from the settings, by name."""
    target = site.root / "target"
    layout = Layout.for_target(config, target)
    out = {
        str(f.path.relative_to(target)): f.content
        for f in rendered_files(config, layout, site.store)
    }
    records = record_set(site.store, config, DOMAIN)
    out["dns records"] = to_zone(records, header="zone", soa=(config.site.hostname, NOW))
    out["mta-sts.txt"] = records.mta_sts_policy
    cs = clientconfig.client_settings(site.store, config, ADDRESS, now=NOW)
    for fmt in clientconfig.FORMATS:
        out[f"client {fmt}"] = clientconfig.document(cs, fmt)
    relay = asdict(options_from_settings(config))
    out["relay options"] = "\n".join(f"{key} = {value}" for key, value in relay.items())
    return out


T = TypeVar("T")


def attempt(call: Callable[[], T]) -> T | MailprovError:
    """The result of ``call``, or the MailprovError it raised."""
    try:
        return call()
    except MailprovError as exc:
        return exc


def line_counts(files: dict[str, str]) -> dict[str, int]:
    """Lines per file, counted the way the strictest reader would (every line break)."""
    return {name: len(text.splitlines()) for name, text in files.items()}


@pytest.fixture(scope="module", name="site")
def fixture_site(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Site:
    """The site every hostile value is tried on: dual signing on, an active Ed25519 key,
    rspamd on."""
    root = tmp_path_factory.mktemp("hostile")
    tls = self_signed("mail.example.test", root / "tls", ips=["127.0.0.1"], now=NOW)
    database = root / "mailprov.sqlite"
    shutil.copyfile(sqlite_template, database)
    base: dict[str, dict[str, Any]] = {
        "site": {"hostname": "mail.example.test", "domain": DOMAIN},
        "store": {"url": f"sqlite:///{database}"},
        "passwords": {"scheme": "SHA512-CRYPT"},
        "tls": {"cert_file": str(tls.cert_file), "key_file": str(tls.key_file)},
        "dns": {"ipv4": ["192.0.2.10"], "ipv6": ["2001:db8::10"]},
        "dkim": {
            "sign": True,
            "algorithms": ["rsa-2048", "ed25519"],
            "key_dir": str(root / "dkim"),
        },
        # So that relay.smarthost_username's sample value is a consistent config.
        "relay": {"smarthost_password_file": "smarthost-password"},
        # So that oidc.issuer's sample value is too.
        "oidc": {
            "client_id": "mailprov",
            "redirect_url": "https://mail.example.test/api/v1/identity/oidc/callback",
        },
        # rspamd's files are rendered too, so its settings reach its templates.
        "rspamd": {"enabled": True},
    }
    config = load_settings(
        config_file=write_config(root / "base.toml", base), env={"MAILPROV_CONFIG": ""}
    )
    store = open_store(config.store.url)
    actor = Actor("tester", NOW)
    add_domain(store, DOMAIN, actor=actor)
    add_mailbox(store, ADDRESS, NewPassword("{SHA512-CRYPT}$6$x$y", None), actor=actor)
    # One Ed25519 key: both instances render, and no RSA key is parsed (60 ms) at every render.
    key = dkim.keygen(store, config, DOMAIN, actor=actor, algorithm="ed25519")
    dkim.activate(store, config, DOMAIN, key.selector, actor=actor, lookup=None, force=True)
    write_config(root / "base.toml", base)
    yield Site(root, base, store, {})
    store.close()


def test_every_string_setting_is_covered() -> None:
    """The discovery finds the settings the attacks went through, lists included."""
    found = {s.dotted: s.is_list for s in SETTINGS}
    assert {
        "dkim.signer_user": False,
        "dkim.trusted_hosts": True,
        "dns.mta_sts_mx": True,
        "dns.spf": False,
        "dns.dmarc_rua": False,
        "dns.dmarc_ruf": False,
        "dns.tls_rpt_rua": False,
        "postfix.relayhost": False,
        "dovecot.instance_name": False,
        "deploy.listen": True,
        "relay.mode": False,
    }.items() <= found.items()
    by_value = {
        f"{name}.{f.name}"
        for name, section_type in section_types().items()
        for f in fields(section_type)
        if isinstance(getattr(section_type(), f.name), str | list)
    }
    assert by_value == set(found)


@pytest.mark.parametrize("layer", ["file", "env", "flag"])
def test_control_characters_are_refused_everywhere(site: Site, layer: str) -> None:
    """A line break or other control character anywhere in any string setting is refused."""
    for number, setting in enumerate(SETTINGS):
        base = base_value(setting) or "x"
        # A trailing line break (what a regex's '$' lets through), a leading NUL, a line
        # separator inside, and at the end each other control character in turn.
        values = [
            base + "\n",
            "\x00" + base,
            base[:1] + "\u2028" + base[1:],
            base + CONTROLS[number % len(CONTROLS)],
        ]
        for value in values:
            with pytest.raises(ConfigInvalid) as caught:
                load(site, setting, value, layer)
            message = caught.value.message
            assert setting.dotted in message, (setting, value, message)
            where = {"file": "file.toml, line", "env": setting.env_name, "flag": "flag"}
            assert where[layer] in message, message


def test_the_harmless_values_load(site: Site) -> None:
    """Each setting's base value loads through every layer (so the property below means something)."""
    for setting in SETTINGS:
        for layer in ("file", "env", "flag"):
            config = load(site, setting, base_value(setting), layer)
            assert config.origins[setting.dotted] != "default" or layer == "file"


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    setting=st.sampled_from(SETTINGS),
    fragment=st.sampled_from(CONTROLS + SPECIALS),
    placement=st.sampled_from(["alone", "append", "prepend", "middle"]),
    layer=st.sampled_from(["file", "env", "flag"]),
)
def test_hostile_values_are_refused_or_add_no_line(
    site: Site, setting: Setting, fragment: str, placement: str, layer: str
) -> None:
    """A hostile value is refused naming its setting, or no rendered file gains a line."""
    base = base_value(setting)
    half = len(base) // 2
    value = {
        "alone": fragment,
        "append": base + fragment,
        "prepend": fragment + base,
        "middle": base[:half] + fragment + base[half:],
    }[placement]
    outcome = attempt(lambda: load(site, setting, value, layer))
    if isinstance(outcome, MailprovError):
        assert isinstance(outcome, ConfigInvalid), outcome
        assert setting.dotted in outcome.message, outcome.message
        return
    assert fragment not in CONTROLS, f"{setting.dotted} accepted a control character"
    files = attempt(lambda: render_everything(site, outcome))
    if isinstance(files, MailprovError):
        # Only a file that must exist on this host may fail here, and the error names it.
        assert setting.dotted in HOST_CHECKED, files.message
        assert setting.key in files.message, files.message
        return
    key = (setting.dotted, base)
    if key not in site.baselines:
        site.baselines[key] = line_counts(render_everything(site, load(site, setting, base, layer)))
    baseline = site.baselines[key]
    for name, lines in line_counts(files).items():
        assert name in baseline, f"{setting.dotted}={value[:40]!r} adds the file {name}"
        assert lines <= baseline[name], f"{setting.dotted}={value[:40]!r} adds lines to {name}"
