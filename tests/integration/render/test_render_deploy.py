"""deploy plan/apply/rollback against real Postfix and Dovecot validators (no servers running)."""

from __future__ import annotations

import hashlib
import os
import signal
import smtplib
import time
from pathlib import Path

import pytest

from mailprov.errors import Interrupted
from mailprov.services.deploy import apply
from mailprov.settings import load_settings
from mailprov.system.run import SubprocessRunner
from tests.conftest import CertAuthority, Cli, CliResult, free_ports
from tests.integration.stack import MailStack

pytestmark = [pytest.mark.requires_postfix, pytest.mark.requires_dovecot]


@pytest.fixture(scope="module", name="site")
def fixture_site(tmp_path_factory: pytest.TempPathFactory, test_ca: CertAuthority) -> Path:
    """A site folder: SQLite store, a certificate from the test CA, test-profile folders."""

    root = tmp_path_factory.mktemp("site")
    init = Cli(root / "xdg")("init", "--dir", str(root), "--domain", "example.test")
    assert init.exit_code == 0, init.output
    test_ca.issue(root / "tls")
    ports = free_ports(8)
    with (root / "mailprov.toml").open("a") as f:
        f.write(f"""
[tls]
cert_file = "tls/cert.pem"
key_file = "tls/key.pem"
[ports]
smtp = {ports[0]}
submission = {ports[1]}
submissions = {ports[2]}
imap = {ports[3]}
imaps = {ports[4]}
pop3 = {ports[5]}
pop3s = {ports[6]}
lmtp = {ports[7]}
[deploy]
listen = ["127.0.0.1"]
[postfix]
queue_directory = "{root}/spool"
data_directory = "{root}/pfdata"
maillog_file = "{root}/log/postfix.log"
dns = false
[dovecot]
base_dir = "{root}/run"
state_dir = "{root}/state"
log_path = "{root}/log/dovecot.log"
mail_root = "{root}/mail"
""")
    return root


def mailprov(site: Path, *args: str, env: dict[str, str] | None = None) -> CliResult:
    """Run the CLI against the site's config."""
    return Cli(site / "xdg", config=site / "mailprov.toml")(*args, env=env)


def snapshot(target: Path) -> dict[str, tuple[str, int, int]]:
    """Every file under target (manifest folder excluded): checksum, mtime_ns, inode."""
    out = {}
    for path in sorted(target.rglob("*")):
        if path.is_file() and ".mailprov" not in path.parts:
            st = path.stat()
            out[str(path)] = (
                hashlib.sha256(path.read_bytes()).hexdigest(),
                st.st_mtime_ns,
                st.st_ino,
            )
    return out


class TestPlan:
    def test_plan_lists_new_files_and_changes_nothing(self, site: Path, tmp_path: Path) -> None:
        """On an empty target every file is 'new', the checks pass, and nothing is created."""
        target = tmp_path / "t"
        result = mailprov(site, "deploy", "plan", "--target", str(target), "--json")
        assert result.exit_code == 0, result.output
        data = result.data
        assert (data["changed"], data["checked"]) == (True, True)
        assert {f["status"] for f in data["files"]} == {"new"}
        assert "main.cf" in {Path(f["path"]).name for f in data["files"]}
        assert not target.exists()

    def test_plan_diff_shows_the_change(self, site: Path, tmp_path: Path) -> None:
        """After a setting changes, plan --diff names the file and shows the new line."""
        target = tmp_path / "t"
        assert mailprov(site, "deploy", "apply", "--target", str(target)).exit_code == 0
        env = {"MAILPROV_POSTFIX_MESSAGE_SIZE_LIMIT": "1048576"}
        data = mailprov(
            site, "deploy", "plan", "--target", str(target), "--diff", "--json", env=env
        ).data
        changed = [f for f in data["files"] if f["status"] == "changed"]
        assert [Path(f["path"]).name for f in changed] == ["main.cf"]
        assert "+message_size_limit = 1048576" in changed[0]["diff"]


def test_render_writes_files_for_review_without_a_manifest(site: Path, tmp_path: Path) -> None:
    """deploy render writes every file into DIR (no manifest), and a second run writes none."""
    out = tmp_path / "review"
    first = mailprov(site, "deploy", "render", "--out", str(out), "--json").data
    # 17 server files, and for each domain autoconfig + autodiscover + MTA-STS, plus nginx.
    assert (first["changed"], len(first["written"])) == (True, 17 + 3 + 1)
    assert any(str(path).endswith("sql-quota-limited.cf") for path in first["written"])
    assert any(str(path).endswith("sql-local-sender.cf") for path in first["written"])
    assert str(out / "web" / "nginx-mailprov.conf") in first["written"]
    assert not (out / ".mailprov").exists()
    assert mailprov(site, "deploy", "render", "--out", str(out), "--json").data["written"] == []


class TestApply:
    def test_second_apply_reports_unchanged_and_touches_nothing(
        self, site: Path, tmp_path: Path
    ) -> None:
        """A repeated apply says changed=false and leaves each file's bytes, mtime and inode."""
        target = tmp_path / "t"
        first = mailprov(site, "deploy", "apply", "--target", str(target), "--json").data
        assert first["changed"] is True
        before = snapshot(target)
        second = mailprov(site, "deploy", "apply", "--target", str(target), "--json")
        assert (second.exit_code, second.data["changed"]) == (0, False)
        assert before == snapshot(target)

    def test_files_get_their_modes_and_a_header(self, site: Path, tmp_path: Path) -> None:
        """Installed files are root-owned with their modes, and each says it is generated."""
        target = tmp_path / "t"
        assert mailprov(site, "deploy", "apply", "--target", str(target)).exit_code == 0
        main = target / "postfix" / "main.cf"
        assert main.read_text().startswith("# Generated by mailprov")
        assert (main.stat().st_uid, oct(main.stat().st_mode & 0o777)) == (0, "0o644")
        assert (target / "dovecot" / "dovecot-sql.conf.ext").is_file()
        assert (target / "dovecot" / "dovecot-app-passwords.conf.ext").is_file()

    def test_hand_edit_is_refused_unless_forced(self, site: Path, tmp_path: Path) -> None:
        """A file edited since the last apply blocks the next one (exit 31) until --force."""
        target = tmp_path / "t"
        assert mailprov(site, "deploy", "apply", "--target", str(target)).exit_code == 0
        main = target / "postfix" / "main.cf"
        main.write_text(main.read_text() + "# local tweak\n")
        env = {"MAILPROV_POSTFIX_MESSAGE_SIZE_LIMIT": "2097152"}
        refused = mailprov(site, "deploy", "apply", "--target", str(target), "--json", env=env)
        assert refused.exit_code == 31
        assert refused.data["error"]["code"] == "file-edited"
        assert main.read_text().endswith("# local tweak\n")
        forced = mailprov(
            site, "deploy", "apply", "--target", str(target), "--overwrite-edits", env=env
        )
        assert forced.exit_code == 0, forced.output
        assert "message_size_limit = 2097152" in main.read_text()

    def test_validator_failure_installs_nothing(self, site: Path, tmp_path: Path) -> None:
        """When Dovecot's own check fails, its message is shown and the target stays empty."""
        target = tmp_path / "t"
        same = {"MAILPROV_PORTS_POP3": str(free_ports(1)[0])}
        same["MAILPROV_PORTS_IMAP"] = same["MAILPROV_PORTS_POP3"]
        result = mailprov(site, "deploy", "apply", "--target", str(target), "--json", env=same)
        assert result.exit_code == 30
        error = result.data["error"]
        assert error["code"] == "config-check-failed"
        assert "duplicate listener" in error["message"]
        assert not (target / "postfix" / "main.cf").exists()

    def test_unwritable_target_is_a_clear_error(self, site: Path, tmp_path: Path) -> None:
        """A target below a regular file cannot be written: exit 32, nothing written."""
        blocker = tmp_path / "file"
        blocker.write_text("x")
        result = mailprov(site, "deploy", "apply", "--target", str(blocker / "t"), "--json")
        assert result.exit_code == 32
        assert result.data["error"]["code"] == "target-not-writable"
        assert blocker.read_text() == "x"

    def test_signal_mid_install_puts_every_file_back(self, site: Path, tmp_path: Path) -> None:
        """SIGTERM while the new generation is written leaves the target as before, no leftover."""

        target = tmp_path / "t"
        assert mailprov(site, "deploy", "apply", "--target", str(target)).exit_code == 0
        before = {k: v[0] for k, v in snapshot(target).items()}
        config = load_settings(
            config_file=site / "mailprov.toml",
            env={
                "MAILPROV_POSTFIX_MESSAGE_SIZE_LIMIT": "3145728",
                "MAILPROV_SITE_HOSTNAME": "mx.example.test",
            },
        )
        written: list[str] = []

        def on_step(step: str) -> None:
            if step.startswith("file:"):
                written.append(step)
                if len(written) == 2:
                    os.kill(os.getpid(), signal.SIGTERM)

        with pytest.raises(Interrupted, match="nothing was changed"):
            apply(config, runner=SubprocessRunner(), target=target, on_step=on_step)
        assert len(written) == 2
        assert before == {k: v[0] for k, v in snapshot(target).items()}
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        assert sorted(p.name for p in (target / ".mailprov" / "generations").iterdir()) == ["0001"]

    def test_exception_on_first_apply_removes_new_files(self, site: Path, tmp_path: Path) -> None:
        """An error mid-way through a first apply leaves no rendered file behind."""

        target = tmp_path / "t"
        config = load_settings(config_file=site / "mailprov.toml", env={})

        def on_step(step: str) -> None:
            if step == "file:dovecot/dovecot.conf":
                raise OSError("disk full (simulated by the test's callback)")

        with pytest.raises(OSError, match="disk full"):
            apply(config, runner=SubprocessRunner(), target=target, on_step=on_step)
        assert snapshot(target) == {}
        assert list((target / ".mailprov" / "generations").iterdir()) == []


class TestRollback:
    def test_rollback_restores_previous_set_and_can_be_undone(
        self, site: Path, tmp_path: Path
    ) -> None:
        """rollback puts back the files the last apply replaced; a second rollback re-applies."""
        target = tmp_path / "t"
        assert mailprov(site, "deploy", "apply", "--target", str(target)).exit_code == 0
        main = target / "postfix" / "main.cf"
        original = main.read_text()
        env = {"MAILPROV_POSTFIX_MESSAGE_SIZE_LIMIT": "4194304"}
        assert mailprov(site, "deploy", "apply", "--target", str(target), env=env).exit_code == 0
        updated = main.read_text()
        back = mailprov(site, "deploy", "rollback", "--target", str(target), "--json")
        assert (back.exit_code, back.data["written"]) == (0, [str(main)])
        assert main.read_text() == original
        assert mailprov(site, "deploy", "apply", "--target", str(target)).exit_code == 0
        assert (
            mailprov(site, "deploy", "apply", "--target", str(target), "--json").data["changed"]
            is False
        )
        assert mailprov(site, "deploy", "rollback", "--target", str(target)).exit_code == 0
        assert main.read_text() == updated

    def test_rollback_without_history_is_refused(self, site: Path, tmp_path: Path) -> None:
        """A target never applied has nothing to roll back to (exit 34)."""
        result = mailprov(site, "deploy", "rollback", "--target", str(tmp_path / "t"), "--json")
        assert result.exit_code == 34
        assert result.data["error"]["code"] == "no-rollback"


class TestReload:
    def test_reload_only_what_changed_on_running_servers(self, mailstack: MailStack) -> None:
        """With --reload, a Postfix-only change reloads Postfix alone, and the new value is live."""
        env = {"MAILPROV_POSTFIX_MESSAGE_SIZE_LIMIT": "30000000"}
        # The stack is shared: first install what other tests changed in the store (their
        # domains' web files), so the apply under test changes main.cf alone.
        settle = mailstack.cli("deploy", "apply", "--target", str(mailstack.target))
        assert settle.exit_code == 0, settle.output
        result = mailstack.cli(
            "deploy", "apply", "--target", str(mailstack.target), "--reload", "--json", env=env
        )
        try:
            assert result.exit_code == 0, result.output
            data = result.data
            assert data["reloaded"] == ["postfix"]
            assert data["written"] == [str(mailstack.postfix_dir / "main.cf")]

            # 'postfix reload' is asynchronous: an smtpd started before it may still greet
            # a client or two with the old value, so ask until the new one is live.
            deadline = time.monotonic() + 15
            while True:
                with smtplib.SMTP(
                    mailstack.host, mailstack.ports["smtp"], local_hostname="c.test"
                ) as c:
                    c.ehlo()
                    size = c.esmtp_features["size"]
                if size == "30000000" or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert size == "30000000"
        finally:
            back = mailstack.cli(
                "deploy", "rollback", "--target", str(mailstack.target), "--reload"
            )
            assert back.exit_code == 0, back.output
