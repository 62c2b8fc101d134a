"""Rendering: bad site config values are refused before rendering; output is stable and safe."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailprov.errors import ConfigInvalid
from mailprov.render import Layout, render_bundle
from mailprov.render.environment import SOURCE_TEMPLATES, templates_dir
from mailprov.settings import SiteConfig, load_settings
from tests.conftest import CertAuthority, require_or_skip


@pytest.fixture(scope="module", name="tls_files")
def fixture_tls_files(
    tmp_path_factory: pytest.TempPathFactory, test_ca: CertAuthority
) -> tuple[str, str]:
    """A certificate and key from the test CA."""
    made = test_ca.issue(tmp_path_factory.mktemp("tls"), "mail.example.test", "127.0.0.1")
    return str(made.cert_file), str(made.key_file)


def config(tls_files: tuple[str, str], **env: str) -> SiteConfig:
    """Settings from defaults plus MAILPROV_* variables (no config file)."""
    base = {
        "MAILPROV_CONFIG": "",
        "MAILPROV_TLS_CERT_FILE": tls_files[0],
        "MAILPROV_TLS_KEY_FILE": tls_files[1],
        "MAILPROV_STORE_URL": "sqlite:////var/lib/mailprov/mailprov.sqlite",
    }
    return load_settings(env={**base, **env})


def files(cfg: SiteConfig, target: str = "/srv/t") -> dict[str, object]:
    return {f.path.name: f for f in render_bundle(cfg, Layout.for_target(cfg, Path(target)))}


class TestRefusedBeforeRendering:
    """Values that cannot be rendered safely are refused before any template runs."""

    @pytest.mark.parametrize(
        "hostname",
        [
            "mail example.test",
            "mail.example.test\nrelayhost = evil",
            "mail=x.test",
            "mail#.test",
            "'mail'.test",
            "localhost",
            "",
        ],
    )
    def test_bad_hostname(self, tls_files: tuple[str, str], hostname: str) -> None:
        """A hostname with spaces, newlines, '=', '#', quotes or no dot is refused by name."""
        with pytest.raises(ConfigInvalid, match=r"site\.hostname"):
            files(config(tls_files, MAILPROV_SITE_HOSTNAME=hostname))

    def test_unsafe_target_folder(self, tls_files: tuple[str, str]) -> None:
        """A --target whose path the servers' configs cannot carry is refused, naming --target."""
        with pytest.raises(ConfigInvalid, match="--target"):
            files(config(tls_files), "/srv/my target")

    def test_refused_when_settings_load(self, tls_files: tuple[str, str]) -> None:
        """A bad value never reaches rendering: loading the settings refuses it."""
        with pytest.raises(ConfigInvalid, match=r"dovecot\.vmail_user \(env "):
            config(tls_files, MAILPROV_DOVECOT_VMAIL_USER="vmail\n")

    def test_missing_certificate_file(self, tls_files: tuple[str, str], tmp_path: Path) -> None:
        """A certificate path that does not exist is refused with the path in the message."""
        missing = str(tmp_path / "nope.pem")
        with pytest.raises(ConfigInvalid, match=r"tls\.cert_file.*no such file"):
            files(config(tls_files, MAILPROV_TLS_CERT_FILE=missing))

    def test_bad_port(self, tls_files: tuple[str, str]) -> None:
        """A port outside 1-65535 is refused when the settings load."""
        with pytest.raises(ConfigInvalid, match=r"ports\.imap"):
            config(tls_files, MAILPROV_PORTS_IMAP="70000")

    def test_unknown_hash_scheme(self, tls_files: tuple[str, str]) -> None:
        """An unknown password scheme is refused when the settings load."""
        with pytest.raises(ConfigInvalid, match=r"passwords\.scheme"):
            config(tls_files, MAILPROV_PASSWORDS_SCHEME="MD5")

    @pytest.mark.parametrize(
        "path", ["/var/mail box", "/var/mail\nx", "/var/mail'x", "/var/mail#x"]
    )
    def test_unsafe_path(self, tls_files: tuple[str, str], path: str) -> None:
        """Paths with spaces, newlines, quotes or '#' are refused."""
        with pytest.raises(ConfigInvalid, match=r"dovecot\.mail_root"):
            files(config(tls_files, MAILPROV_DOVECOT_MAIL_ROOT=path))

    def test_listen_must_be_addresses(self, tls_files: tuple[str, str]) -> None:
        """deploy.listen takes IP addresses or 'all' only."""
        with pytest.raises(ConfigInvalid, match=r"deploy\.listen"):
            files(config(tls_files, MAILPROV_DEPLOY_LISTEN="127.0.0.1, example.com"))

    def test_pg_url_options_refused(self, tls_files: tuple[str, str]) -> None:
        """A PostgreSQL URL with options (search_path) is refused: the servers cannot use it."""
        url = "postgresql+psycopg://mp@db.example.test/mail?options=-csearch_path%3Dx"
        with pytest.raises(ConfigInvalid, match="URL options"):
            files(config(tls_files, MAILPROV_STORE_URL=url))

    def test_pg_password_with_quote_refused(self, tls_files: tuple[str, str]) -> None:
        """A database password that cannot be written safely is refused, and not shown."""
        url = "postgresql+psycopg://mp:se%27cret%20x@db.example.test/mail"
        with pytest.raises(ConfigInvalid) as caught:
            files(config(tls_files, MAILPROV_STORE_URL=url))
        assert "se'cret" not in str(caught.value.to_json())


class TestRendered:
    def test_every_file_has_the_generated_header(self, tls_files: tuple[str, str]) -> None:
        """Each rendered file starts with the 'Generated by mailprov' line naming its template."""
        for name, f in files(config(tls_files)).items():
            first = f.content.splitlines()[0]  # type: ignore[attr-defined]
            assert first.startswith("# Generated by mailprov"), name
            assert f.template in first  # type: ignore[attr-defined]

    def test_rendering_is_deterministic(self, tls_files: tuple[str, str]) -> None:
        """The same settings render the same bytes."""
        cfg = config(tls_files)
        assert [f.content for f in files(cfg).values()] == [f.content for f in files(cfg).values()]  # type: ignore[attr-defined]

    def test_sqlite_maps_are_world_readable_without_secrets(
        self, tls_files: tuple[str, str]
    ) -> None:
        """SQL files naming no credentials are 0644; the SQLite path is the store's."""
        out = files(config(tls_files))
        assert out["sql-domains.cf"].mode == 0o644  # type: ignore[attr-defined]
        assert "dbpath = /var/lib/mailprov/mailprov.sqlite" in out["sql-domains.cf"].content  # type: ignore[attr-defined]

    def test_pg_password_goes_only_into_0640_files(self, tls_files: tuple[str, str]) -> None:
        """With a database password, only the SQL files hold it, 0640 for the server's group."""
        url = "postgresql+psycopg://mp:S3cr3t-pw@db.example.test:5433/mail"
        out = files(config(tls_files, MAILPROV_STORE_URL=url))
        holders = {n for n, f in out.items() if "S3cr3t-pw" in f.content}  # type: ignore[attr-defined]
        assert holders == {
            "sql-domains.cf",
            "sql-mailboxes.cf",
            "sql-aliases.cf",
            "sql-catchall.cf",
            "sql-sender-login.cf",
            "sql-quota-limited.cf",
            "sql-local-sender.cf",
            "dovecot-sql.conf.ext",
            "dovecot-app-passwords.conf.ext",
            "dovecot-sql-temporary.conf.ext",
        }
        assert {(out[n].mode, out[n].group) for n in holders} == {
            (0o640, "postfix"),
            (0o640, "dovecot"),
        }  # type: ignore[attr-defined]
        assert "hosts = db.example.test:5433" in out["sql-domains.cf"].content  # type: ignore[attr-defined]

    def test_enforced_max_age_is_in_the_passdb_query(self, tls_files: tuple[str, str]) -> None:
        """passwords.enforce_max_age adds the age limit (seconds) to the passdb query."""
        on = files(
            config(
                tls_files,
                MAILPROV_PASSWORDS_ENFORCE_MAX_AGE="true",
                MAILPROV_PASSWORDS_MAX_AGE_DAYS="30",
            )
        )["dovecot-sql.conf.ext"].content  # type: ignore[attr-defined]
        off = files(config(tls_files))["dovecot-sql.conf.ext"].content  # type: ignore[attr-defined]
        assert "password_changed_at > CAST(strftime('%%s', 'now') AS INTEGER) - 2592000" in on
        assert "password_changed_at" not in off

    def test_temporary_login_portal_names_the_public_url(self, tls_files: tuple[str, str]) -> None:
        """ "portal" (default) adds the reason with [web] public_url and the refusing passdb;
        "until-expiry" renders neither (and no second SQL file)."""
        portal = files(config(tls_files, MAILPROV_WEB_PUBLIC_URL="https://portal.example.test/me"))
        lenient = files(config(tls_files, MAILPROV_PASSWORDS_TEMPORARY_LOGIN="until-expiry"))
        query = portal["dovecot-sql.conf.ext"].content  # type: ignore[attr-defined]
        assert "set your own at https://portal.example.test/me first' END AS reason" in query
        assert "AS nologin" in query
        conf = portal["dovecot.conf"].content  # type: ignore[attr-defined]
        assert "result_success = continue-ok" in conf
        assert "dovecot-sql-temporary.conf.ext\n  skip = unauthenticated" in conf
        assert "dovecot-sql-temporary.conf.ext" not in lenient
        assert "AS reason" not in lenient["dovecot-sql.conf.ext"].content  # type: ignore[attr-defined]
        assert "continue-ok" not in lenient["dovecot.conf"].content  # type: ignore[attr-defined]

    def test_test_profile_knob_disables_auth_penalty_only_when_asked(
        self, tls_files: tuple[str, str]
    ) -> None:
        """The auth penalty is switched off only with dovecot.auth_penalty = false."""
        default = files(config(tls_files))["dovecot.conf"].content  # type: ignore[attr-defined]
        test = files(config(tls_files, MAILPROV_DOVECOT_AUTH_PENALTY="false"))[
            "dovecot.conf"
        ].content  # type: ignore[attr-defined]
        assert "anvil-auth-penalty" not in default
        assert "anvil-auth-penalty" in test

    def test_nonstandard_ports_become_master_cf_services(self, tls_files: tuple[str, str]) -> None:
        """Standard ports keep their service names; others are written as numbers."""
        master = files(config(tls_files, MAILPROV_PORTS_SMTP="2525"))["master.cf"].content  # type: ignore[attr-defined]
        assert "\n2525      inet" in master
        assert "\nsubmission inet" in master

    def test_sieve_runs_at_delivery_and_managesieve_listens(
        self, tls_files: tuple[str, str]
    ) -> None:
        """Pigeonhole runs in LMTP, ManageSieve listens on [ports] managesieve, and the
        filters' mail goes to Postfix's own SMTP port on a loopback listen address."""
        conf = files(
            config(
                tls_files,
                MAILPROV_PORTS_MANAGESIEVE="14190",
                MAILPROV_PORTS_SMTP="2525",
                MAILPROV_DEPLOY_LISTEN="192.0.2.7,127.0.0.1",
                MAILPROV_DOVECOT_SIEVE_MAX_SCRIPT_SIZE="32K",
            )
        )["dovecot.conf"].content  # type: ignore[attr-defined]
        assert "protocols = imap pop3 lmtp sieve\n" in conf
        lmtp = conf.split("protocol lmtp {", 1)[1].split("}", 1)[0]
        assert "mail_plugins = $mail_plugins sieve" in lmtp
        login = conf.split("service managesieve-login {", 1)[1].split("\n}", 1)[0]
        assert "port = 14190" in login
        assert "submission_host = 127.0.0.1:2525\n" in conf
        assert "sieve = file:~/sieve;active=~/.dovecot.sieve\n" in conf
        assert "sieve_max_script_size = 32K\n" in conf
        assert "sieve_redirect_envelope_from = recipient\n" in conf


def test_templates_load_from_the_source_tree_in_an_editable_install() -> None:
    """Without mailprov/templates (editable install) the loader uses the repository's templates/."""
    assert templates_dir() == SOURCE_TEMPLATES
    assert (templates_dir() / "postfix" / "main.cf.j2").is_file()


@pytest.mark.requires_postfix
@pytest.mark.requires_dovecot
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.text(alphabet=st.sampled_from("ab0-.=# \n'\"{}$%\\/,:;x"), min_size=1, max_size=20))
def test_any_hostname_is_refused_or_renders_files_the_servers_accept(
    tls_files: tuple[str, str], tmp_path: Path, name: str
) -> None:
    """Whatever a hostname holds, it is refused or the files pass postconf and doveconf."""
    if shutil.which("postconf", path="/usr/sbin:/usr/bin") is None:
        require_or_skip("postconf is not installed (make test-deps installs it)")
    try:
        out = files(config(tls_files, MAILPROV_SITE_HOSTNAME=name), str(tmp_path))
    except ConfigInvalid:
        return
    for f in out.values():
        f.path.parent.mkdir(parents=True, exist_ok=True)  # type: ignore[attr-defined]
        f.path.write_text(f.content)  # type: ignore[attr-defined]
    pf = subprocess.run(
        ["postconf", "-c", str(tmp_path / "postfix"), "-h", "myhostname"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (pf.returncode, pf.stderr, pf.stdout.strip()) == (0, "", name.lower().rstrip("."))
    dc = subprocess.run(
        ["doveconf", "-c", str(tmp_path / "dovecot" / "dovecot.conf"), "-n"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (dc.returncode, dc.stderr) == (0, "")


class TestReadHosts:
    """[store] read_hosts: the servers read from replicas, mailprov writes to store.url."""

    PG = "postgresql+psycopg://mp@db1.example.test:5433/mail"

    def test_maps_and_dovecot_list_every_read_host(self, tls_files: tuple[str, str]) -> None:
        """Postfix's hosts and Dovecot's host= list the replicas (default port: the URL's)."""
        out = files(
            config(
                tls_files,
                MAILPROV_STORE_URL=self.PG,
                MAILPROV_STORE_READ_HOSTS="127.0.0.1, db2.example.test:5433",
            )
        )
        assert "hosts = 127.0.0.1:5433 db2.example.test:5433\n" in out["sql-mailboxes.cf"].content  # type: ignore[attr-defined]
        assert (
            "connect = host=127.0.0.1 host=db2.example.test port=5433 dbname=mail user=mp\n"
            in out["dovecot-sql.conf.ext"].content  # type: ignore[attr-defined]
        )

    def test_without_read_hosts_the_servers_read_from_the_url(
        self, tls_files: tuple[str, str]
    ) -> None:
        """No read hosts: the maps name the store.url host, as before."""
        out = files(config(tls_files, MAILPROV_STORE_URL=self.PG))
        assert "hosts = db1.example.test:5433\n" in out["sql-domains.cf"].content  # type: ignore[attr-defined]

    def test_refused_with_sqlite(self, tls_files: tuple[str, str]) -> None:
        """Read hosts with a SQLite store are refused at load, naming the setting."""
        with pytest.raises(ConfigInvalid, match=r"store\.read_hosts.*only a PostgreSQL store"):
            config(tls_files, MAILPROV_STORE_READ_HOSTS="127.0.0.1")

    def test_refused_with_different_ports(self, tls_files: tuple[str, str]) -> None:
        """Read hosts on different ports are refused: Dovecot has one port= for all hosts."""
        with pytest.raises(ConfigInvalid, match=r"store\.read_hosts.*different ports"):
            config(
                tls_files,
                MAILPROV_STORE_URL=self.PG,
                MAILPROV_STORE_READ_HOSTS="127.0.0.1:5432, db2.example.test:5433",
            )

    @pytest.mark.parametrize("bad", ["db 2", "db2:99999", "db2:", "host=evil"])
    def test_bad_read_host(self, tls_files: tuple[str, str], bad: str) -> None:
        """A read host that is not HOST[:PORT] is refused by name."""
        with pytest.raises(ConfigInvalid, match=r"store\.read_hosts"):
            config(tls_files, MAILPROV_STORE_URL=self.PG, MAILPROV_STORE_READ_HOSTS=bad)
