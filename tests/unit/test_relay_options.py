"""The [relay] section: checked where settings load, turned into RelayOptions, no open relay."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailprov.errors import ConfigInvalid, OpenRelayRefused
from mailprov.relay.options import RelayOptions, options_from_settings, parse_listen
from mailprov.rules.sizes import parse_size
from mailprov.settings import RelaySection, load_settings


def settings_from(tmp_path: Path, text: str, env: dict[str, str] | None = None):
    config = tmp_path / "mailprov.toml"
    config.write_text(text)
    return load_settings(config_file=config, env=env or {})


def test_file_env_and_flags_build_the_options(tmp_path: Path) -> None:
    """Values come from the file, the environment and flags, paths relative to the file."""
    settings = settings_from(
        tmp_path,
        '[relay]\nmode = "forward"\nsmarthost_host = "127.0.0.1"\nsmarthost_username = "u"\n'
        'smarthost_password_file = "secret"\nsize_limit = "1M"\nfaults = ["rcpt:*=450 4.0.0 x"]\n',
        env={"MAILPROV_RELAY_MAX_RECIPIENTS": "7"},
    )
    options = options_from_settings(settings, listen="127.0.0.2:0")
    assert (options.host, options.port, options.mode, options.max_recipients) == (
        "127.0.0.2",
        0,
        "forward",
        7,
    )
    assert options.size_limit == 1 << 20
    assert options.smarthost is not None
    assert options.smarthost.password_file == tmp_path / "secret"
    assert options.storage_dir == tmp_path / "relay"
    assert options.faults == ("rcpt:*=450 4.0.0 x",)
    assert settings.origins["relay.max_recipients"] == "env MAILPROV_RELAY_MAX_RECIPIENTS"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[relay]\nmode = "mirror"\n', "relay.mode"),
        ('[relay]\nlisten = "nowhere"\n', "relay.listen"),
        ("[relay]\nworkers = 0\n", "relay.workers"),
        ('[relay]\nmode = "forward"\n', "smarthost_host"),
        (
            '[relay]\nmode = "forward"\nsmarthost_host = "h"\nsmarthost_username = "u"\n',
            "password_file",
        ),
        ('[relay]\ntls = "files"\n', "tls_cert_file"),
        ('[relay]\nsize_limit = "lots"\n', "size_limit"),
    ],
)
def test_bad_values_name_the_setting(tmp_path: Path, text: str, words: str) -> None:
    """Each unusable value is a ConfigInvalid that names the setting."""
    with pytest.raises(ConfigInvalid) as err:
        settings_from(tmp_path, text)
    assert words in err.value.message


@pytest.mark.parametrize(
    ("flag", "value", "named"),
    [
        ("listen", "127.0.0.1:2525\n", "--listen"),
        ("storage_dir", "relay\x00", "--storage"),
        ("mode", "mirror", "--mode"),
        ("workers", 0, "--workers"),
        ("faults", ["rcpt:*=450 4.0.0 x\r\nRSET"], "--fault"),
    ],
)
def test_flags_are_checked_like_the_file(
    tmp_path: Path, flag: str, value: object, named: str
) -> None:
    """A relay serve flag goes through the same checks as the file, and the error names it."""
    settings = settings_from(tmp_path, "")
    with pytest.raises(ConfigInvalid) as err:
        options_from_settings(settings, **{flag: value})
    assert f"relay.{flag} (flag {named})" in err.value.message


def test_defaults_come_from_the_settings_section() -> None:
    """RelayOptions' defaults are the [relay] section's, not a second copy."""
    section, options = RelaySection(), RelayOptions()
    assert section.listen == f"{options.host}:{options.port}"
    assert (section.mode, section.tls, section.workers) == (
        options.mode,
        options.tls,
        options.workers,
    )
    assert parse_size(section.size_limit) == options.size_limit
    assert section.max_age_hours * 3600 == options.max_age_s


def test_open_relay_is_refused_unless_auth_is_required(tmp_path: Path) -> None:
    """Listening beyond loopback needs require_auth; the API beyond loopback needs a token."""
    settings = settings_from(tmp_path, '[relay]\nlisten = "0.0.0.0:2525"\n')
    with pytest.raises(OpenRelayRefused):
        options_from_settings(settings)
    assert options_from_settings(settings, require_auth=True).host == "0.0.0.0"  # noqa: S104
    with pytest.raises(OpenRelayRefused, match=r"relay\.api_token_file"):
        options_from_settings(settings, require_auth=True, api_listen="0.0.0.0:8025")


def test_an_api_beyond_loopback_is_allowed_with_a_token_file(tmp_path: Path) -> None:
    """With relay.api_token_file set, the API may listen beyond loopback; hosts carry over."""
    settings = settings_from(
        tmp_path, '[relay]\napi_token_file = "token"\napi_hosts = ["relay.lan", "10.0.0.5"]\n'
    )
    options = options_from_settings(settings, api_listen="0.0.0.0:8025")
    assert options.api == ("0.0.0.0", 8025)  # noqa: S104
    assert options.api_token_file == tmp_path / "token"
    assert options.api_hosts == ("relay.lan", "10.0.0.5")


def test_listen_forms() -> None:
    """HOST:PORT and [V6]:PORT parse; anything else is refused."""
    assert parse_listen("[::1]:25", "x") == ("::1", 25)
    assert parse_listen("localhost:0", "x") == ("localhost", 0)
    with pytest.raises(ConfigInvalid):
        parse_listen("127.0.0.1:99999", "x")
