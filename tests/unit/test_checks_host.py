"""Where ``check delivery`` and ``doctor`` connect: [check] host, else the listen address."""

from __future__ import annotations

import pytest

from mailprov.services.checks import check_host, server_name
from mailprov.settings import load_settings


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "127.0.0.1"),  # listen = ["all"]
        ({"MAILPROV_DEPLOY_LISTEN": "192.0.2.7,::1"}, "192.0.2.7"),
        ({"MAILPROV_DEPLOY_LISTEN": "::"}, "::1"),
        ({"MAILPROV_DEPLOY_LISTEN": "192.0.2.7", "MAILPROV_CHECK_HOST": "127.0.0.2"}, "127.0.0.2"),
    ],
)
def test_check_host(env: dict[str, str], expected: str) -> None:
    """The explicit [check] host wins; otherwise the first listen address (loopback for 'all')."""
    assert check_host(load_settings(env={"MAILPROV_CONFIG": "", **env})) == expected


def test_server_name_defaults_to_the_site_hostname() -> None:
    """The certificate is verified against [site] hostname unless [check] server_name is set."""
    base = {"MAILPROV_CONFIG": "", "MAILPROV_SITE_HOSTNAME": "mx.example.org"}
    assert server_name(load_settings(env=base)) == "mx.example.org"
    named = load_settings(env={**base, "MAILPROV_CHECK_SERVER_NAME": "mail.example.org"})
    assert server_name(named) == "mail.example.org"
