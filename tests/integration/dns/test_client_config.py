"""``mailprov client-config`` and the web files for client auto-configuration."""

from __future__ import annotations

import json
import plistlib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from mailprov.services.clientconfig import write_web_files
from mailprov.settings import load_settings
from mailprov.store import open_store
from tests.conftest import Cli

PASSWORD = "Corr3ct-Horse-42!"
AD_NS = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"


@pytest.fixture(name="alice")
def fixture_alice(mp: Cli) -> Cli:
    """The site with mailbox alice@example.test."""
    result: Any = mp(
        "mailbox",
        "add",
        "alice@example.test",
        "--name",
        "Alice A",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    return mp


def _doc(mp: Cli, fmt: str, address: str = "alice@example.test") -> str:
    result: Any = mp("client-config", address, "--format", fmt)
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.stdout
    return str(result.stdout)


def test_text_sheet_lists_the_four_services(alice: Cli) -> None:
    """The settings sheet names host, ports and TLS mode of IMAP, POP3 and both SMTP ports."""
    text = _doc(alice, "text")
    assert "User name:        alice@example.test" in text
    for line in (
        "IMAP (incoming)   mail.example.test  port 993  SSL/TLS",
        "POP3 (incoming)   mail.example.test  port 995  SSL/TLS",
        "SMTP (outgoing)   mail.example.test  port 465  SSL/TLS",
        "SMTP (outgoing)   mail.example.test  port 587  STARTTLS",
    ):
        assert line in text


def test_thunderbird_xml_has_the_fields_thunderbird_reads(alice: Cli) -> None:
    """config-v1.1.xml is well-formed with host, port, socketType, authentication, username."""
    root = ET.fromstring(_doc(alice, "thunderbird").encode())  # noqa: S314  (our own output)
    assert root.tag == "clientConfig"
    assert root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider is not None
    assert provider.findtext("domain") == "example.test"
    servers = [
        (
            s.tag,
            s.get("type"),
            s.findtext("hostname"),
            s.findtext("port"),
            s.findtext("socketType"),
            s.findtext("authentication"),
            s.findtext("username"),
        )
        for s in provider
        if s.tag in {"incomingServer", "outgoingServer"}
    ]
    user = "alice@example.test"
    assert servers == [
        ("incomingServer", "imap", "mail.example.test", "993", "SSL", "password-cleartext", user),
        ("incomingServer", "pop3", "mail.example.test", "995", "SSL", "password-cleartext", user),
        ("outgoingServer", "smtp", "mail.example.test", "465", "SSL", "password-cleartext", user),
        (
            "outgoingServer",
            "smtp",
            "mail.example.test",
            "587",
            "STARTTLS",
            "password-cleartext",
            user,
        ),
    ]


def test_autodiscover_xml_is_well_formed(alice: Cli) -> None:
    """autodiscover.xml parses and lists IMAP 993, POP3 995 and SMTP 465 with SSL on."""
    root = ET.fromstring(_doc(alice, "autodiscover").encode())  # noqa: S314  (our own output)
    protocols = root.findall(f".//{AD_NS}Protocol")
    got = [
        (
            p.findtext(f"{AD_NS}Type"),
            p.findtext(f"{AD_NS}Port"),
            p.findtext(f"{AD_NS}SSL"),
            p.findtext(f"{AD_NS}LoginName"),
        )
        for p in protocols
    ]
    assert got == [
        ("IMAP", "993", "on", "alice@example.test"),
        ("POP3", "995", "on", "alice@example.test"),
        ("SMTP", "465", "on", "alice@example.test"),
    ]


def test_mobileconfig_is_a_valid_plist_without_password(alice: Cli) -> None:
    """The .mobileconfig parses with plistlib, holds one IMAP account and no password key."""
    raw = _doc(alice, "mobileconfig").encode()
    profile = plistlib.loads(raw)
    assert profile["PayloadType"] == "Configuration"
    (account,) = profile["PayloadContent"]
    assert account["PayloadType"] == "com.apple.mail.managed"
    assert (account["IncomingMailServerHostName"], account["IncomingMailServerPortNumber"]) == (
        "mail.example.test",
        993,
    )
    assert account["IncomingMailServerUseSSL"] is True
    assert (account["OutgoingMailServerPortNumber"], account["OutgoingMailServerUseSSL"]) == (
        465,
        True,
    )
    assert account["IncomingMailServerUsername"] == "alice@example.test"
    assert not [
        k for k in account if "Password" in k and k != "OutgoingPasswordSameAsIncomingPassword"
    ]
    assert _doc(alice, "mobileconfig").encode() == raw


def test_ports_come_from_the_site_config(alice: Cli, site: Path) -> None:
    """[site] hostname and [ports] change what clients are told."""
    with (site / "mailprov.toml").open("a") as conf:
        conf.write("[ports]\nimaps = 10993\nsubmission = 10587\n")
    text = _doc(alice, "text")
    assert "port 10993" in text
    assert "port 10587  STARTTLS" in text


def test_json_output_and_unknown_mailbox(alice: Cli) -> None:
    """--json gives settings and the document; a mailbox that does not exist exits 3."""
    status, doc = alice.json("client-config", "alice@example.test", "--format", "thunderbird")
    assert status == 0
    assert doc["settings"]["username"] == "alice@example.test"
    assert doc["document"].startswith("<?xml")
    status, doc = alice.json("client-config", "nobody@example.test")
    assert (status, doc["error"]["code"]) == (3, "not-found")
    status, doc = alice.json("client-config", "bob@elsewhere.test")
    assert status == 3


def test_web_files_for_autoconfig_and_mta_sts(alice: Cli, site: Path) -> None:
    """Web files: per-domain autoconfig, autodiscover, MTA-STS policy, and an nginx snippet."""

    settings = load_settings(config_file=site / "mailprov.toml", env={})
    store = open_store(settings.store.url)
    try:
        web = site / "web"
        made = write_web_files(store, settings, web)
        again = write_web_files(store, settings, web)
    finally:
        store.close()
    assert again.changed == ()
    auto = ET.parse(web / "autoconfig" / "example.test" / "mail" / "config-v1.1.xml").getroot()  # noqa: S314  (our own output)
    assert {u.text for u in auto.iter("username")} == {"%EMAILADDRESS%"}
    ET.parse(web / "autodiscover" / "xn--bcher-kva.test" / "autodiscover" / "autodiscover.xml")  # noqa: S314  (our own output)
    policy = (web / "mta-sts" / "example.test" / ".well-known" / "mta-sts.txt").read_text()
    assert policy.splitlines()[:3] == ["version: STSv1", "mode: enforce", "mx: mail.example.test"]
    nginx = (web / "nginx-mailprov.conf").read_text()
    assert "server_name mta-sts.example.test;" in nginx
    assert "server_name autoconfig.xn--bcher-kva.test;" in nginx
    assert len(made.changed) == 7
    assert json.dumps(made.to_json())
