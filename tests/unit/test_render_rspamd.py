"""rspamd's rendering: nothing changes while it is off; when on, its files, Postfix's milter
lists (tempfail on port 25, accept on submission) and the unit's sandbox follow the settings,
and rspamd's own checker (rspamadm configtest) accepts the render and refuses a broken one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mailprov.errors import ConfigInvalid
from mailprov.render import Layout, render_bundle
from mailprov.render.rspamd import FILES
from mailprov.settings import SiteConfig, load_settings
from mailprov.system import rspamd, sieve
from mailprov.system.run import SubprocessRunner
from tests.conftest import CertAuthority, require_or_skip

TARGET = Path("/srv/t")


@pytest.fixture(scope="module", name="tls_env")
def fixture_tls_env(
    tmp_path_factory: pytest.TempPathFactory, test_ca: CertAuthority
) -> dict[str, str]:
    """MAILPROV_TLS_* naming a certificate and key from the test CA."""
    made = test_ca.issue(tmp_path_factory.mktemp("tls"), "mail.example.test", "127.0.0.1")
    return {
        "MAILPROV_CONFIG": "",
        "MAILPROV_TLS_CERT_FILE": str(made.cert_file),
        "MAILPROV_TLS_KEY_FILE": str(made.key_file),
        "MAILPROV_STORE_URL": "sqlite:////var/lib/mailprov/mailprov.sqlite",
    }


def render(tls_env: dict[str, str], target: Path = TARGET, **env: str) -> dict[str, str]:
    """Every rendered file (path relative to ``target`` -> text) for defaults plus ``env``."""
    cfg: SiteConfig = load_settings(env={**tls_env, **env})
    return {
        str(f.path.relative_to(target)): f.content
        for f in render_bundle(cfg, Layout.for_target(cfg, target))
    }


ON = {"MAILPROV_RSPAMD_ENABLED": "true"}


def test_off_by_default_renders_nothing_of_rspamd(tls_env: dict[str, str]) -> None:
    """The default site renders no rspamd file or unit and Postfix names no milter."""
    out = render(tls_env)
    assert [p for p in out if "rspamd" in p] == []
    assert "milters" not in out["postfix/main.cf"]
    assert "smtpd_milters" not in out["postfix/master.cf"]


def test_off_with_signing_keeps_the_opendkim_only_milters(tls_env: dict[str, str]) -> None:
    """[dkim] sign without rspamd: the OpenDKIM milters everywhere, as before."""
    main = render(tls_env, MAILPROV_DKIM_SIGN="true")["postfix/main.cf"]
    assert "smtpd_milters = inet:127.0.0.1:8891\n" in main
    assert "non_smtpd_milters = $smtpd_milters\n" in main
    assert "mailprov_submission_milters" not in main


def test_on_renders_its_files_and_unit(tls_env: dict[str, str]) -> None:
    """rspamd.conf, the local.d/ and override.d/ files and mailprov-rspamd.service."""
    out = render(tls_env, **ON)
    assert sorted(p for p in out if p.startswith("rspamd/")) == sorted(f"rspamd/{f}" for f in FILES)
    unit = out["systemd/mailprov-rspamd.service"]
    assert (
        "ExecStart=/usr/bin/rspamd -c /srv/t/rspamd/rspamd.conf "
        "--var=LOCAL_CONFDIR=/srv/t/rspamd --var=DBDIR=/var/lib/mailprov/rspamd\n"
    ) in unit
    assert "StateDirectory=mailprov/rspamd\nRuntimeDirectory=mailprov-rspamd\n" in unit
    # The resolvers come from /etc/resolv.conf (no [rspamd] nameservers): no IP allow-list.
    assert "IPAddressAllow" not in unit


def test_port_25_defers_and_submission_accepts_while_rspamd_is_down(
    tls_env: dict[str, str],
) -> None:
    """Port 25: rspamd with default_action=tempfail, then the signers; submission: accept;
    local submission: the signers only (not scanned)."""
    out = render(tls_env, MAILPROV_DKIM_SIGN="true", **ON)
    main, master = out["postfix/main.cf"], out["postfix/master.cf"]
    assert (
        "smtpd_milters = { inet:127.0.0.1:11332, default_action=tempfail }, inet:127.0.0.1:8891\n"
    ) in main
    assert (
        "mailprov_submission_milters = "
        "{ inet:127.0.0.1:11332, default_action=accept }, inet:127.0.0.1:8891\n"
    ) in main
    assert "non_smtpd_milters = inet:127.0.0.1:8891\n" in main
    assert master.count("-o smtpd_milters=$mailprov_submission_milters\n") == 2
    # Port 25's service keeps main.cf's list.
    smtp_service = master.split("\nsubmission ")[0]
    assert "smtpd_milters" not in smtp_service


def test_settings_reach_the_files(tls_env: dict[str, str]) -> None:
    """Resolvers, Redis, scores, RBLs and greylisting come from [rspamd]."""
    out = render(
        tls_env,
        MAILPROV_RSPAMD_NAMESERVERS="127.0.0.1:5353",
        MAILPROV_RSPAMD_REDIS="127.0.0.1:6380",
        MAILPROV_RSPAMD_RBL="true",
        MAILPROV_RSPAMD_GREYLIST="true",
        MAILPROV_RSPAMD_REJECT_SCORE="20",
        **ON,
    )
    assert 'nameserver = ["127.0.0.1:5353"];' in out["rspamd/local.d/options.inc"]
    assert 'servers = "127.0.0.1:6380";' in out["rspamd/local.d/redis.conf"]
    assert "reject = 20.0;\ngreylist = 4.0;\n" in out["rspamd/local.d/actions.conf"]
    assert "enabled = true;" in out["rspamd/override.d/rbl.conf"]
    assert "enabled = true;" in out["rspamd/local.d/greylist.conf"]
    # Every peer on loopback: the unit may talk to localhost only.
    assert "IPAddressAllow=localhost\n" in out["systemd/mailprov-rspamd.service"]
    default = render(tls_env, **ON)
    assert "enabled = false;" in default["rspamd/override.d/rbl.conf"]
    assert "greylist = null;" in default["rspamd/local.d/actions.conf"]
    assert "dns {" not in default["rspamd/local.d/options.inc"]


def test_scores_out_of_order_are_refused(tls_env: dict[str, str]) -> None:
    """add_header_score at or above reject_score cannot be rendered."""
    with pytest.raises(ConfigInvalid, match="out of order") as refused:
        render(tls_env, MAILPROV_RSPAMD_ADD_HEADER_SCORE="15", **ON)
    assert "greylist_score < add_header_score < reject_score" in str(refused.value.hint)


def test_rspamadm_configtest_accepts_the_render_and_refuses_a_broken_file(
    tls_env: dict[str, str], tmp_path: Path
) -> None:
    """The real 'rspamadm configtest' passes what we render; a broken local.d file is named."""
    if shutil.which("rspamadm") is None:
        require_or_skip("rspamadm is not installed (scripts/install-test-deps.sh)")
    out = render(tls_env, tmp_path, MAILPROV_RSPAMD_NAMESERVERS="127.0.0.1:5353", **ON)
    for name, text in out.items():
        if name.startswith("rspamd/"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(text)
    conf_dir, db_dir = tmp_path / "rspamd", str(tmp_path / "db")
    runner = SubprocessRunner()
    assert rspamd.check(runner, conf_dir, db_dir) == []
    with (conf_dir / "local.d" / "dmarc.conf").open("a") as f:
        f.write("actions {{ broken\n")
    problems = rspamd.check(runner, conf_dir, db_dir)
    assert any("local.d/dmarc.conf" in p for p in problems), problems


def test_learning_from_moves_is_rendered_only_with_rspamd(tls_env: dict[str, str]) -> None:
    """With rspamd on, Dovecot gets IMAPSieve for Junk (both directions), the pipe extension
    for global scripts only, and an executable rspamd-learn that reaches the controller
    (which trusts this host's addresses instead of a password); off, none of it."""
    off = render(tls_env)
    assert [p for p in off if "imapsieve" in p] == []
    assert "imap_sieve" not in off["dovecot/dovecot.conf"]
    cfg = load_settings(env={**tls_env, **ON, "MAILPROV_RSPAMD_CONTROLLER_PORT": "11999"})
    files = {
        str(f.path.relative_to(TARGET)): f
        for f in render_bundle(cfg, Layout.for_target(cfg, TARGET))
    }
    conf = files["dovecot/dovecot.conf"].content
    assert "  mail_plugins = $mail_plugins imap_sieve\n" in conf
    assert "  imapsieve_mailbox1_name = Junk\n  imapsieve_mailbox1_causes = COPY\n" in conf
    assert (
        "  imapsieve_mailbox1_before = file:/srv/t/dovecot/imapsieve/learn-spam.sieve;"
        "bindir=~/.imapsieve\n"
    ) in conf
    assert "  imapsieve_mailbox2_from = Junk\n" in conf
    assert "  sieve_global_extensions = +vnd.dovecot.pipe +vnd.dovecot.environment\n" in conf
    assert "  sieve_pipe_bin_dir = /srv/t/dovecot/imapsieve/bin\n" in conf
    # Owners' scripts get no pipe: sieve_extensions (their set) is not widened.
    assert "sieve_extensions" not in conf
    learn = files["dovecot/imapsieve/bin/rspamd-learn"]
    assert learn.mode == 0o755
    assert learn.content.startswith("#!/bin/sh\n")
    assert '--connect 127.0.0.1:11999 --timeout 8 "learn_$1"' in learn.content
    assert "-P" not in learn.content.split("exec", 1)[1]  # no password on the command line
    assert (
        'pipe :copy :try "rspamd-learn" ["spam"];'
        in files["dovecot/imapsieve/learn-spam.sieve"].content
    )
    ham = files["dovecot/imapsieve/learn-ham.sieve"].content
    assert 'if string "${mailbox}" "Trash" {\n    stop;\n}' in ham
    assert 'pipe :copy :try "rspamd-learn" ["ham"];' in ham
    assert 'secure_ip = ["127.0.0.1", "::1"];' in files["rspamd/rspamd.conf"].content


def test_sievec_compiles_the_learning_scripts_under_the_rendered_dovecot(
    tls_env: dict[str, str], tmp_path: Path
) -> None:
    """Pigeonhole's sievec, reading the rendered dovecot.conf, compiles both scripts (the
    pipe, imapsieve and environment extensions are there), as deploy's check does."""
    if shutil.which("sievec") is None:
        require_or_skip("sievec is not installed (dovecot-sieve)")
    out = render(tls_env, tmp_path, **ON)
    for name, text in out.items():
        if name.startswith("dovecot/"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(text)
    conf = tmp_path / "dovecot" / "dovecot.conf"
    runner = SubprocessRunner()
    for script in ("learn-spam.sieve", "learn-ham.sieve"):
        text = (tmp_path / "dovecot" / "imapsieve" / script).read_text()
        assert sieve.check(runner, text, conf) == [], script
    # Without the pipe extension a script naming it does not compile: the check has teeth.
    broken = out["dovecot/imapsieve/learn-spam.sieve"].replace("vnd.dovecot.pipe", "vnd.nope")
    assert sieve.check(runner, broken, conf) != []


def test_arc_seal_renders_the_sealing_config_that_rspamadm_accepts(
    tls_env: dict[str, str], tmp_path: Path
) -> None:
    """[rspamd] arc_seal: the arc module seals inbound and local mail with the recipient
    domain's key from db_dir/arc (selector from its map), not our users' own mail;
    rspamadm configtest accepts it. Off: sealing stays off."""
    off = render(tls_env, **ON)["rspamd/override.d/arc.conf"]
    assert "sign_inbound = false;" in off
    out = render(
        tls_env, tmp_path, MAILPROV_RSPAMD_ARC_SEAL="true", MAILPROV_RSPAMD_DB_DIR="/srv/db", **ON
    )
    arc = out["rspamd/override.d/arc.conf"]
    for line in (
        "sign_inbound = true;",
        'use_domain_sign_inbound = "recipient";',
        "sign_local = true;",
        "sign_authenticated = false;",
        "try_fallback = false;",
        'path = "/srv/db/arc/$domain.$selector.key";',
        'selector_map = "/srv/db/arc/selectors.map";',
    ):
        assert f"\n{line}\n" in arc, line
    if shutil.which("rspamadm") is None:
        require_or_skip("rspamadm is not installed (scripts/install-test-deps.sh)")
    for name, text in out.items():
        if name.startswith("rspamd/"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(text)
    assert rspamd.check(SubprocessRunner(), tmp_path / "rspamd", str(tmp_path / "db")) == []


def test_arc_seal_needs_an_rsa_key() -> None:
    """arc_seal with only Ed25519 in [dkim] algorithms is refused where settings load."""
    with pytest.raises(ConfigInvalid, match="rsa-2048"):
        load_settings(
            env={
                "MAILPROV_CONFIG": "",
                "MAILPROV_RSPAMD_ARC_SEAL": "true",
                "MAILPROV_DKIM_ALGORITHMS": "ed25519",
            }
        )
