"""``mailprov doctor`` on the rspamd stack: rspamd and its Redis answering are reported as
such; a Redis that is down, or rspamd stopped, are errors that say what to do."""

from __future__ import annotations

from pathlib import Path

from tests.integration.checks.test_doctor import doctor, ids
from tests.integration.conftest import start_redis
from tests.integration.stack import MailStack


def _finding(report: dict[str, object], wanted: str) -> dict[str, str]:
    found = [f for f in report["findings"] if f["id"] == wanted]  # type: ignore[attr-defined]
    assert len(found) == 1, report
    return found[0]  # type: ignore[no-any-return]


def test_rspamd_and_redis_up_are_reported_ok(rspamd_stack: MailStack) -> None:
    """doctor runs its rspamd check (configtest, controller, Redis) and finds both answering."""
    status, report = doctor(rspamd_stack, "--no-dns")
    assert "rspamd" in report["checks"], report
    assert {"doctor.rspamd.ok", "doctor.redis.ok"} <= ids(report, "info"), report
    assert not {i for i in ids(report) if i.startswith(("doctor.rspamd.", "doctor.redis."))} - {
        "doctor.rspamd.ok",
        "doctor.redis.ok",
    }, report
    assert status == 0, report


def test_redis_down_is_an_error_saying_what_to_do(rspamd_stack: MailStack, tmp_path: Path) -> None:
    """With [rspamd] redis naming a Redis that was stopped, doctor fails (79) with
    doctor.redis.down, which names the address and how to start it."""
    proc, port = start_redis(tmp_path)
    proc.terminate()
    proc.wait(timeout=10)
    config = rspamd_stack.config_file
    saved = config.read_text()
    old = next(line for line in saved.splitlines() if line.startswith("redis = "))
    config.write_text(saved.replace(old, f'redis = "127.0.0.1:{port}"', 1))
    try:
        status, report = doctor(rspamd_stack, "--no-dns")
    finally:
        config.write_text(saved)
    assert status == 79, report
    down = _finding(report, "doctor.redis.down")
    assert down["severity"] == "error"
    assert f"127.0.0.1:{port}" in down["message"]
    assert "Connection refused" in down["message"], down
    assert "systemctl start redis-server" in down["action"]
    assert "doctor.rspamd.ok" in ids(report), report  # rspamd itself still answers


def test_rspamd_stopped_is_an_error(rspamd_stack: MailStack) -> None:
    """rspamd stopped: doctor.rspamd.down says port 25 defers mail and how to start it."""
    rspamd_stack.stop_filter()
    try:
        status, report = doctor(rspamd_stack, "--no-dns")
    finally:
        rspamd_stack.start_filter()
    assert status == 79, report
    down = _finding(report, "doctor.rspamd.down")
    assert "defers all mail arriving on port 25" in down["message"]
    assert "systemctl start mailprov-rspamd" in down["action"]
    assert "doctor.redis.ok" in ids(report), report


def test_installed_config_rspamadm_refuses_is_an_error(rspamd_stack: MailStack) -> None:
    """An installed rspamd file broken by hand: doctor.rspamd.config_invalid names rspamadm's
    complaint and says to re-deploy (the running rspamd is not touched)."""
    broken = rspamd_stack.target / "rspamd" / "local.d" / "dmarc.conf"
    saved = broken.read_text()
    broken.write_text(saved + "actions {{ broken\n")
    try:
        status, report = doctor(rspamd_stack, "--no-dns")
    finally:
        broken.write_text(saved)
    assert status == 79, report
    invalid = _finding(report, "doctor.rspamd.config_invalid")
    assert "dmarc.conf" in invalid["message"], invalid
    assert "deploy apply --overwrite-edits" in invalid["action"]
    assert "doctor.config.edited" in ids(report), report  # the edit is seen as one too
