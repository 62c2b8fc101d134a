"""Site config: lookup order, layering with provenance, and clear errors."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from mailprov.errors import ConfigInvalid
from mailprov.rules.dkim import ALGORITHMS
from mailprov.rules.hashing import SCHEMES
from mailprov.rules.passwords import POLICIES
from mailprov.settings import as_dict, kinds, load_settings, override
from mailprov.settings.loader import check_value, field_types, section_types

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
        config = load_settings(
            config_file=cfg, env=env, flags={"site.hostname": "mail.flag.example"}
        )
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


class TestChecks:
    """Each value is checked where it loads, against what its field says it is."""

    @pytest.mark.parametrize(
        ("env_name", "value"),
        [
            ("MAILPROV_POSTFIX_RELAYHOST", "[smtp.example.org]:587\n"),
            ("MAILPROV_DOVECOT_INSTANCE_NAME", "dovecot\n"),
            ("MAILPROV_DOVECOT_VMAIL_USER", "vmail\n"),
            ("MAILPROV_DOVECOT_AUTH_WORKER_VSZ_LIMIT", "1G\n"),
            ("MAILPROV_DEPLOY_LISTEN", "127.0.0.1\n"),
            ("MAILPROV_POSTFIX_MYNETWORKS", "127.0.0.0/8\n,::1/128"),
            ("MAILPROV_DKIM_ALGORITHMS", "ed25519\n"),
            ("MAILPROV_DNS_MTA_STS_MODE", "none\n"),
        ],
    )
    def test_trailing_newline_is_refused(self, env_name: str, value: str) -> None:
        """A value that is valid but for a trailing newline is refused (no regex '$' slip)."""
        with pytest.raises(ConfigInvalid) as caught:
            load_settings(env={"MAILPROV_CONFIG": "", env_name: value})
        assert env_name in caught.value.message
        assert "U+000A" in caught.value.message

    @pytest.mark.parametrize(
        ("key", "value", "words"),
        [
            ("dns.spf", "v=spf1 mx\t-all", "control character"),
            ("dns.spf", 'v=spf1 include:"x" -all', "not SPF text"),
            ("dns.spf", "mx -all", "not SPF text"),
            ("dns.dmarc_rua", "dmarc@example.org", "not a mailto: URI"),
            ("dns.dmarc_rua", "mailto:dmarc@example.org; p=none", "not a host name"),
            ("dns.tls_rpt_rua", "https://tlsrpt.example.org/v1;x", "report URI"),
            ("dns.mta_sts_mx", ["mx example.org"], "item 1"),
            ("dkim.signer_user", "Open DKIM", "not a user name"),
            ("dkim.trusted_hosts", ["0.0.0.0/0"], "trusts every host"),
            ("dkim.selector_prefix", "-mp", "not a selector prefix"),
            ("dkim.algorithms", ["rsa-2048", "rsa-2048"], "at most once"),
            ("dkim.ed25519_milter_port", 8891, "its own port"),
            ("notify.sender", "Mailprov <x@example.org>", "not a plain mail address"),
            ("notify.hook", "/bin/gw 'unbalanced", "balance the quotes"),
            ("identity.extra_ekus", ["emailProtection"], "not a dotted OID"),
            ("deploy.listen", ["all", "127.0.0.1"], "'all' alone"),
            ("dovecot.base_dir", "/run/" + "d" * 80, "too long"),
            ("dovecot.vmail_uid", 0, "must be 1-"),
            ("relay.listen", "127.0.0.1", "not HOST:PORT"),
            ("relay.mode", "mirror", "capture, deliver, forward"),
            ("dns.check_timeout", float("nan"), "not a finite number"),
            ("site.hostname", "mail.example.test.", None),
            ("store.url", "postgresql+psycopg://u:p%20w@db.example.org/mail", "password"),
            ("store.url", "sqlite:////srv/mail box/m.sqlite", "holds characters"),
            ("tls.cert_file", "/etc/ssl/my cert.pem", "holds characters"),
            ("web.listen", "0.0.0.0:8080", "beyond loopback"),
            ("web.listen", "192.0.2.1:8080", "[web] tls = true"),
            ("web.public_url", "http://mail.example.org/", "plain http only to"),
            ("web.public_url", "https://mail.example.org/it's", "cannot carry"),
            ("web.public_url", "https://mail.example.org/%27", "cannot carry"),
            ("web.public_url", "https://u@mail.example.org/", "must not carry a user"),
            ("passwords.temporary_login", "never", "portal, until-expiry"),
        ],
    )
    def test_bad_values_are_refused_at_load(self, key: str, value: object, words: str) -> None:
        """Each kind of value has its rule, enforced when the settings load, naming the flag."""
        if key == "dkim.ed25519_milter_port":
            flags = {"dkim.algorithms": ["rsa-2048", "ed25519"], key: value}
        else:
            flags = {key: value}
        if words is None:
            assert "mail.example.test" == load_settings(env={}, flags=flags).site.hostname
            return
        with pytest.raises(ConfigInvalid) as caught:
            load_settings(env={"MAILPROV_CONFIG": ""}, flags=flags)
        assert key in caught.value.message
        assert "(flag" in caught.value.message
        assert words in f"{caught.value.message} {caught.value.hint}"

    def test_error_names_file_and_line(self, tmp_path: Path) -> None:
        """A refused file value names the file and its line, and says what to do."""
        cfg = write(
            tmp_path / "m.toml",
            '[site]\nhostname = "mail.example.test"\n\n[dkim]\n# who owns the keys\n'
            'signer_user = "opendkim\\nInternalHosts 0.0.0.0/0"\n',
        )
        with pytest.raises(ConfigInvalid) as caught:
            load_settings(config_file=cfg, env={})
        assert f"dkim.signer_user (file {cfg}, line 6)" in caught.value.message
        assert str(cfg) in (caught.value.hint or "")
        assert "remove it" in (caught.value.hint or "")

    def test_database_password_is_never_shown(self) -> None:
        """A refused store URL is shown without its password."""
        url = "postgresql+psycopg://mp:se'cret@db.example.test/mail\n"
        with pytest.raises(ConfigInvalid) as caught:
            load_settings(env={"MAILPROV_CONFIG": "", "MAILPROV_STORE_URL": url})
        assert "se'cret" not in str(caught.value.to_json())
        assert "store.url" in caught.value.message

    def test_values_are_normalised(self) -> None:
        """Closed sets match without regard to case; host names become lower-case A-labels."""
        config = load_settings(
            env={
                "MAILPROV_CONFIG": "",
                "MAILPROV_PASSWORDS_SCHEME": "sha512-crypt",
                "MAILPROV_RELAY_MODE": "Forward",
                "MAILPROV_RELAY_SMARTHOST_HOST": "SMTP.Example.ORG",
                "MAILPROV_SITE_HOSTNAME": "Mail.Bücher.example",
            }
        )
        assert "SHA512-CRYPT" == config.passwords.scheme
        assert "forward" == config.relay.mode
        assert "smtp.example.org" == config.relay.smarthost_host
        assert "mail.xn--bcher-kva.example" == config.site.hostname

    def test_portal_url_and_https_listeners(self) -> None:
        """[web] public_url is normalised; without it the portal is the web host's HTTPS port;
        a listener beyond loopback is fine with [web] tls."""
        given = load_settings(
            env={"MAILPROV_CONFIG": "", "MAILPROV_WEB_PUBLIC_URL": "https://Portal.Example.ORG"}
        )
        assert "https://portal.example.org/" == given.portal_url()
        derived = load_settings(
            env={
                "MAILPROV_CONFIG": "",
                "MAILPROV_DNS_WEB_HOST": "www.example.org",
                "MAILPROV_DNS_WEB_HTTPS_PORT": "8443",
            }
        )
        assert "https://www.example.org:8443/" == derived.portal_url()
        public = load_settings(
            env={"MAILPROV_CONFIG": "", "MAILPROV_WEB_LISTEN": "[::]:443", "MAILPROV_WEB_TLS": "1"}
        )
        assert "[::]:443" == public.web.listen

    def test_closed_sets_match_the_rules(self) -> None:
        """The Literal types list exactly what the rules modules know."""
        assert set(SCHEMES) == set(typing.get_args(kinds.HashScheme))
        assert set(ALGORITHMS) == set(typing.get_args(kinds.DkimAlgorithm))
        assert set(POLICIES) == set(typing.get_args(kinds.PasswordPolicy))

    def test_example_config_sets_every_setting(self) -> None:
        """configs/example.toml sets every setting there is, and each to its default."""
        path = REPO / "configs" / "example.toml"
        config = load_settings(config_file=path, env={})
        assert [] == [k for k, origin in config.origins.items() if origin == "default"]
        defaults = as_dict(load_settings(env={"MAILPROV_CONFIG": ""}, flags={}))
        differ = {
            f"{section}.{key}"
            for section, values in as_dict(config).items()
            for key, value in values.items()
            if value != defaults[section][key]
        }
        documented_examples = {
            "site.hostname", "site.domain", "store.url", "accounts.default_quota",
            "tls.cert_file", "tls.key_file",
        }  # fmt: skip
        assert documented_examples == differ

    def test_defaults_pass_their_own_checks(self) -> None:
        """Every default is a value its field accepts, unchanged (so defaults need no check)."""
        for section_type in section_types().values():
            for key, tp in field_types(section_type).items():
                default = getattr(section_type(), key)
                assert default == check_value(default, tp, Path("/")), key

    def test_override_checks_flags_and_names_them(self) -> None:
        """override() lays flags on a loaded config with the same checks, naming the flag."""
        config = load_settings(env={"MAILPROV_CONFIG": ""})
        changed = override(config, {"relay.listen": "127.0.0.2:0"})
        assert "127.0.0.2:0" == changed.relay.listen
        assert "flag" == changed.origins["relay.listen"]
        with pytest.raises(ConfigInvalid, match=r"relay\.listen \(flag --listen\)"):
            override(config, {"relay.listen": "x\n:1"}, flag_names={"relay.listen": "--listen"})
