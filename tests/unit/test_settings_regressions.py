"""Regressions: the settings an attacker used to inject lines are refused by every command.

Each value below once reached a rendered file (an OpenDKIM directive, a line of the
MTA-STS policy, a broken zone) or slipped a trailing newline past a regex's ``$``.
Through the config file and through ``MAILPROV_*`` alike, ``config show``,
``deploy apply`` and ``dns records`` now exit 23 naming the setting and its
layer, and nothing is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli

INJECTED = "\nInternalHosts 0.0.0.0/0"
ZONE_LINE = "\nevil 300 IN A 192.0.2.66"
#: (setting, hostile value): a str, or a list whose element is hostile.
HOSTILE: list[tuple[str, Any]] = [
    ("dkim.signer_user", "opendkim" + INJECTED),
    ("dkim.trusted_hosts", ["192.0.2.0/24" + INJECTED]),
    ("dns.mta_sts_mx", ["mx.example.org\nmode: none"]),
    ("dns.spf", "v=spf1 mx -all" + ZONE_LINE),
    ("dns.dmarc_rua", "mailto:dmarc@example.test" + ZONE_LINE),
    ("dns.dmarc_ruf", "mailto:dmarc@example.test" + ZONE_LINE),
    ("dns.tls_rpt_rua", "mailto:tls@example.test" + ZONE_LINE),
    ("postfix.relayhost", "[smtp.example.org]:587\n"),
    ("dovecot.instance_name", "dovecot\n"),
    ("dovecot.vmail_user", "vmail\n"),
    ("dovecot.auth_worker_vsz_limit", "1G\n"),
    ("deploy.listen", ["127.0.0.1\n"]),
    ("postfix.mynetworks", ["127.0.0.0/8\n"]),
    ("dkim.milter_host", "127.0.0.1\n"),
]


def toml(value: Any) -> str:
    """A TOML string or list of strings (JSON's escapes are TOML's)."""
    return json.dumps(value)


@pytest.fixture(name="site_dir")
def fixture_site_dir(tmp_path: Path) -> Path:
    """A folder for the config file and the deploy target."""
    folder = tmp_path / "site"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("layer", ["file", "env"])
@pytest.mark.parametrize(("dotted", "value"), HOSTILE, ids=[d for d, _ in HOSTILE])
def test_hostile_setting_is_refused_by_every_command(
    run: Cli, site_dir: Path, layer: str, dotted: str, value: Any
) -> None:
    """config show, deploy apply and dns records exit 23 naming the setting; nothing is written."""
    section, _, key = dotted.partition(".")
    config = site_dir / "mailprov.toml"
    lines = ["[dkim]", "sign = true"]
    env = dict(run.env, MAILPROV_CONFIG=str(config))
    if layer == "file":
        if section == "dkim":
            lines.append(f"{key} = {toml(value)}")
        else:
            lines += [f"[{section}]", f"{key} = {toml(value)}"]
    else:
        env_name = f"MAILPROV_{section}_{key}".upper()
        env[env_name] = ",".join(value) if isinstance(value, list) else value
    config.write_text("\n".join(lines) + "\n", "utf-8")
    cli = Cli(run.state_dir, config=config, store_url=run.store_url, env=env)
    target = site_dir / "target"
    where = "env " + f"MAILPROV_{section}_{key}".upper()
    if layer == "file":
        where = f"file {config}, line {len(lines)}"
    for argv in (
        ["config", "show"],
        ["deploy", "apply", "--target", str(target)],
        ["deploy", "plan", "--target", str(target)],
        ["dns", "records", "example.test", "--no-tlsa"],
    ):
        status, doc = cli.json(*argv)
        assert 23 == status, (argv, doc)
        assert "config-invalid" == doc["error"]["code"]
        assert dotted in doc["error"]["message"]
        assert where in doc["error"]["message"], doc["error"]["message"]
    assert not target.exists()
    assert ["mailprov.toml"] == sorted(p.name for p in site_dir.iterdir())
