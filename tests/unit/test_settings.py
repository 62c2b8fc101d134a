"""Site config: lookup order, layering with provenance, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailprov.errors import ConfigInvalid
from mailprov.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.write_text(text, "utf-8")
    return path


class TestLayers:
    """defaults < file < environment < flags, each value knowing its origin."""

    def test_each_layer_wins_over_the_one_below(self, tmp_path: Path) -> None:
        """A flag beats env, env beats the file, the file beats the default."""
        cfg = write(
            tmp_path / "m.toml",
            '[site]\nhostname = "mail.file.example"\n[passwords]\nscheme = "BLF-CRYPT"\n',
        )
        env = {"MAILPROV_SITE_HOSTNAME": "mail.env.example", "MAILPROV_PASSWORDS_MIN_LENGTH": "12"}
        config = load_settings(config_file=cfg, env=env, flags={"site.hostname": "mail.flag.example"})
        assert "mail.flag.example" == config.site.hostname
        assert "flag" == config.origins["site.hostname"]
        assert 12 == config.passwords.min_length
        assert "env MAILPROV_PASSWORDS_MIN_LENGTH" == config.origins["passwords.min_length"]
        assert "BLF-CRYPT" == config.passwords.scheme
        assert f"file {cfg}" == config.origins["passwords.scheme"]
        assert "default" == config.origins["passwords.policy"]

    def test_relative_sqlite_path_is_relative_to_the_file(self, tmp_path: Path) -> None:
        """sqlite:///x.sqlite in a config file means the file's own folder."""
        cfg = write(tmp_path / "m.toml", '[store]\nurl = "sqlite:///x.sqlite"\n')
        assert (
            f"sqlite:///{tmp_path / 'x.sqlite'}" == load_settings(config_file=cfg, env={}).store.url
        )

    def test_example_config_loads(self) -> None:
        """configs/example.toml is valid and sets every section it documents."""
        config = load_settings(config_file=REPO / "configs" / "example.toml", env={})
        assert "mail.example.org" == config.site.hostname
        assert 2 * 1024**3 == __import__("mailprov.rules.sizes", fromlist=["x"]).parse_size(
            config.accounts.default_quota
        )
        assert all(
            not origin.startswith("default")
            for key, origin in config.origins.items()
            if key.startswith("ports.")
        )


class TestLookup:
    """The documented search order for the config file."""

    def test_env_variable_names_the_file(self, tmp_path: Path) -> None:
        """MAILPROV_CONFIG is used when --config is absent."""
        cfg = write(tmp_path / "m.toml", '[site]\nhostname = "mail.from.env"\n')
        assert "mail.from.env" == load_settings(env={"MAILPROV_CONFIG": str(cfg)}).site.hostname

    def test_current_directory_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """./mailprov.toml is found when neither --config nor MAILPROV_CONFIG is set."""
        write(tmp_path / "mailprov.toml", '[site]\nhostname = "mail.from.cwd"\n')
        monkeypatch.chdir(tmp_path)
        assert "mail.from.cwd" == load_settings(env={}).site.hostname

    def test_missing_explicit_file(self, tmp_path: Path) -> None:
        """A --config that does not exist is an error naming it."""
        with pytest.raises(ConfigInvalid, match="does not exist"):
            load_settings(config_file=tmp_path / "nope.toml", env={})


class TestErrors:
    """Invalid config files are refused with the file, the line or the setting named."""

    def test_bad_toml_names_file_and_line(self, tmp_path: Path) -> None:
        """A TOML syntax error names the file and the line."""
        cfg = write(tmp_path / "m.toml", '[site]\nhostname = "a"\nbroken line\n')
        with pytest.raises(ConfigInvalid) as caught:
            load_settings(config_file=cfg, env={})
        assert str(cfg) in caught.value.message
        assert "line 3" in caught.value.message

    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            ("[sitex]\n", "unknown section [sitex]"),
            ('[store]\nulr = "x"\n', "unknown setting 'store.ulr'"),
            ('[passwords]\nmin_length = "ten"\n', "passwords.min_length"),
            ('[passwords]\nscheme = "MD5"\n', "passwords.scheme"),
            ('[passwords]\npolicy = "lax"\n', "passwords.policy"),
            ('[accounts]\ndefault_quota = "lots"\n', "accounts.default_quota"),
            ("[ports]\nimap = 70000\n", "ports.imap"),
            ("site = 3\n", "[site] must be a table"),
        ],
    )
    def test_bad_values_name_the_setting(self, tmp_path: Path, text: str, fragment: str) -> None:
        """Unknown names, wrong types and invalid values each name the setting."""
        cfg = write(tmp_path / "m.toml", text)
        with pytest.raises(ConfigInvalid) as caught:
            load_settings(config_file=cfg, env={})
        assert fragment in caught.value.message

    def test_bad_env_value(self) -> None:
        """An environment value of the wrong type names the variable."""
        with pytest.raises(ConfigInvalid, match="MAILPROV_PASSWORDS_ENFORCE_MAX_AGE"):
            load_settings(
                env={"MAILPROV_PASSWORDS_ENFORCE_MAX_AGE": "perhaps", "MAILPROV_CONFIG": ""}
            )
