"""The confirmation-code flow (IDENTITY.md §5) with codes delivered to a real SMTP server:
each row's code, the request's state after it, and nothing provisioned on failure."""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.identity.conftest import Gate


@dataclass
class Flow:
    """Service-level access to a gate site, with an explicit clock."""

    gate: Gate
    settings: Any
    store: Any
    pepper: bytes

    def send(self, message: Any) -> str:
        """Deliver through the site's notify settings (the real SMTP sink)."""
        from mailprov.system import notify

        return notify.send(self.settings.notify, message)

    def actor(self, now: int) -> Any:
        """An actor at ``now``."""
        from mailprov.services.accounts import Actor

        return Actor("tester", now)

    def confirm(self, rid: str, code: str, now: int) -> Any:
        """Confirm ``rid`` with ``code`` at ``now``."""
        from mailprov.model import Secret
        from mailprov.services.provisioning import confirm

        return confirm(
            self.store,
            self.settings,
            rid,
            Secret(code),
            pepper=self.pepper,
            send=self.send,
            actor=self.actor(now),
        )

    def resend(self, rid: str, now: int) -> Any:
        """Resend a code for ``rid`` at ``now``."""
        from mailprov.services.provisioning import resend

        return resend(
            self.store,
            self.settings,
            rid,
            pepper=self.pepper,
            send=self.send,
            actor=self.actor(now),
        )

    def error(self, func: Any, *args: Any) -> Any:
        """The MailprovError ``func(*args)`` raises."""
        from mailprov.errors import MailprovError

        with pytest.raises(MailprovError) as caught:
            func(*args)
        return caught.value


@pytest.fixture(name="flow")
def fixture_flow(gate: Gate) -> Any:
    """A flow on a fresh SQLite site."""
    from mailprov.settings import load_settings
    from mailprov.store import open_store
    from mailprov.system.secrets import load_pepper

    settings = load_settings(config_file=gate.config, env={})
    store = open_store(gate.store_url)
    yield Flow(
        gate, settings, store, load_pepper(settings.resolve_path(settings.identity.pepper_file))
    )
    store.close()


def verified(flow: Flow, local: str = "anna") -> tuple[str, str, int]:
    """A request verified through the CLI: (id, code from the SMTP sink, verification time)."""
    import time

    req = flow.gate.open(local)
    status, data = flow.gate.verify_token(
        req["id"], flow.gate.issuer.token(req["nonce"], sub=local)
    )
    assert status == 0, data
    return req["id"], flow.gate.code_for(f"{local}@recovery.example"), int(time.time())


def test_right_code_provisions(flow: Flow) -> None:
    """The right code creates the mailbox with a temporary password and mails a settings notice."""
    rid, code, now = verified(flow)
    done = flow.confirm(rid, code, now + 5)
    assert done.request.state == "provisioned"
    assert done.mailbox.must_change is True
    assert done.mailbox.temp_password_expires_at == now + 5 + 72 * 3600
    assert done.mailbox.display_name == "Anna Smirnova"
    notice = [m for m in flow.gate.mail_to("anna@recovery.example") if "is ready" in m][-1]
    assert "993" in notice
    assert done.password.reveal() not in notice
    assert flow.gate.mailboxes() == ["anna@example.test"]


def test_k01_format(flow: Flow) -> None:
    """IDG-K01: a code that is not 6 digits is refused; the request stays identity-verified."""
    rid, _, now = verified(flow)
    err = flow.error(flow.confirm, rid, "12345", now)
    assert (err.details["idg"], int(err.exit_status), err.request_id) == ("IDG-K01", 12, rid)
    assert flow.gate.state(rid) == "identity-verified"
    assert flow.gate.mailboxes() == []


def test_k02_wrong_with_attempts_left(flow: Flow) -> None:
    """IDG-K02: a wrong code says how many attempts are left."""
    rid, code, now = verified(flow)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    err = flow.error(flow.confirm, rid, wrong, now)
    assert err.details["idg"] == "IDG-K02"
    assert err.message == "IDG-K02: code is incorrect (4 attempts left)"
    assert flow.gate.state(rid) == "identity-verified"
    assert flow.gate.mailboxes() == []


def test_k03_expired(flow: Flow) -> None:
    """IDG-K03: the right code after 10 minutes has expired; nothing is provisioned."""
    rid, code, now = verified(flow)
    err = flow.error(flow.confirm, rid, code, now + 601)
    assert (err.details["idg"], int(err.exit_status)) == ("IDG-K03", 18)
    assert flow.gate.state(rid) == "identity-verified"
    assert flow.gate.mailboxes() == []


def test_k04_reused(flow: Flow) -> None:
    """IDG-K04: a code that was used cannot be used again."""
    rid, code, now = verified(flow)
    flow.confirm(rid, code, now)
    err = flow.error(flow.confirm, rid, code, now + 1)
    assert (err.details["idg"], int(err.exit_status)) == ("IDG-K04", 54)
    assert flow.gate.state(rid) == "provisioned"


def test_k05_five_wrong_lock(flow: Flow) -> None:
    """IDG-K05: the fifth wrong code locks the request; then even the right code is refused."""
    rid, code, now = verified(flow)
    wrong = f"{(int(code) + 7) % 10**6:06d}"
    for left in (4, 3, 2, 1, 0):
        err = flow.error(flow.confirm, rid, wrong, now)
        assert err.message.endswith(f"({left} attempts left)")
    assert flow.gate.state(rid) == "locked"
    err = flow.error(flow.confirm, rid, code, now)
    assert (err.details["idg"], int(err.exit_status)) == ("IDG-K05", 17)
    assert flow.gate.mailboxes() == []


def test_k06_resend_too_soon_and_hourly_cap(flow: Flow) -> None:
    """IDG-K06: a resend within 60 s is refused; after it, a new code arrives; 5 an hour at most."""
    rid, _, now = verified(flow)
    err = flow.error(flow.resend, rid, now + 10)
    assert (err.details["idg"], int(err.exit_status)) == ("IDG-K06", 55)
    assert "please wait" in err.message
    for step in range(1, 5):
        flow.resend(rid, now + 61 * step)
    err = flow.error(flow.resend, rid, now + 61 * 5)
    assert err.details["idg"] == "IDG-K06"
    latest = flow.gate.code_for("anna@recovery.example")
    assert flow.confirm(rid, latest, now + 61 * 5).request.state == "provisioned"


def test_k07_account_lock_after_ten_failures(flow: Flow) -> None:
    """IDG-K07: ten consecutive wrong codes lock the requester for 15 minutes."""
    rid, code, now = verified(flow)
    for _ in range(5):
        flow.error(flow.confirm, rid, "000000" if code != "000000" else "111111", now)
    flow.resend(rid, now + 61)
    code = flow.gate.code_for("anna@recovery.example")
    bad = "000000" if code != "000000" else "111111"
    for _ in range(4):
        flow.error(flow.confirm, rid, bad, now + 62)
    err = flow.error(flow.confirm, rid, bad, now + 62)  # the tenth failure
    assert err.details["idg"] == "IDG-K02"
    locked = flow.error(flow.resend, rid, now + 130)
    assert (locked.details["idg"], int(locked.exit_status)) == ("IDG-K07", 56)
    assert flow.error(flow.confirm, rid, code, now + 130).details["idg"] == "IDG-K07"
    assert flow.gate.mailboxes() == []
    flow.resend(rid, now + 62 + 15 * 60 + 1)
    code = flow.gate.code_for("anna@recovery.example")
    assert flow.confirm(rid, code, now + 62 + 15 * 60 + 2).request.state == "provisioned"


def test_request_expiry(flow: Flow) -> None:
    """An unfinished request expires (sweep step), its recovery contact is told (no code in
    the notice); a confirm after that is refused."""
    from mailprov.services.provisioning import expire_requests

    rid, code, now = verified(flow)
    done = expire_requests(flow.store, flow.settings, now=now + 25 * 3600, send=flow.send)
    assert [(r.id, r.warnings) for r in done] == [(rid, ())]
    assert flow.gate.state(rid) == "expired"
    notice = flow.gate.relay.wait_for(
        to="anna@recovery.example", subject=f"Mail request {rid} expired", timeout=5
    )
    assert "has expired" in notice.text
    assert code not in notice.text
    err = flow.error(flow.confirm, rid, code, now + 25 * 3600)
    assert int(err.exit_status) == 57
    assert flow.gate.mailboxes() == []


def test_late_confirm_expires(flow: Flow) -> None:
    """A confirm after the request's lifetime fails with request-expired and marks it expired."""
    rid, code, now = verified(flow)
    err = flow.error(flow.confirm, rid, code, now + 25 * 3600)
    assert (err.code, int(err.exit_status)) == ("request-expired", 19)
    assert flow.gate.state(rid) == "expired"


def test_cli_confirm_password_file_and_secrets(gate: Gate) -> None:
    """CLI confirm writes the temporary password to a new 0600 file; code and password stay out of
    JSON and the audit log; `mailbox passwd` refuses the same password and clears must_change."""
    req = gate.open()
    assert gate.verify_token(req["id"], gate.issuer.token(req["nonce"]))[0] == 0
    code = gate.code_for("anna@recovery.example")
    status, data = gate.cli.json("request", "confirm", req["id"], "--code-stdin", input=code + "\n")
    assert (status, data["error"]["code"]) == (26, "missing-option")
    pw_file = gate.folder / "pw.txt"
    result = gate.cli(
        "request",
        "confirm",
        req["id"],
        "--code-stdin",
        "--password-file",
        str(pw_file),
        input=code + "\n",
        json=True,
    )
    assert result.exit_code == 0, result.stdout
    password = pw_file.read_text().strip()
    assert stat.S_IMODE(pw_file.stat().st_mode) == 0o600
    assert password not in result.stdout
    assert code not in result.stdout
    assert code not in gate.audit_text()
    assert password not in gate.audit_text()
    mailbox = gate.cli.json("mailbox", "show", "anna@example.test")[1]["mailbox"]
    assert mailbox["must_change"] is True
    status, data = gate.cli.json(
        "mailbox", "passwd", "anna@example.test", "--password-stdin", input=password + "\n"
    )
    assert (status, data["error"]["code"]) == (13, "password-policy")
    status, _ = gate.cli.json(
        "mailbox", "passwd", "anna@example.test", "--password-stdin", input="Fresh-Start-2026\n"
    )
    assert status == 0
    assert (
        gate.cli.json("mailbox", "show", "anna@example.test")[1]["mailbox"]["must_change"] is False
    )


def test_cli_wrong_code_names_request(gate: Gate) -> None:
    """A wrong code through the CLI exits 12 and the error names the request and IDG code."""
    req = gate.open()
    gate.verify_token(req["id"], gate.issuer.token(req["nonce"]))
    code = gate.code_for("anna@recovery.example")
    wrong = "000000" if code != "000000" else "111111"
    result = gate.cli(
        "request",
        "confirm",
        req["id"],
        "--code-stdin",
        "--password-file",
        str(gate.folder / "p"),
        input=wrong,
        json=True,
    )
    data = json.loads(result.stdout)
    assert (result.exit_code, data["error"]["idg"], data["error"]["request_id"]) == (
        12,
        "IDG-K02",
        req["id"],
    )
    assert not (gate.folder / "p").exists()


def test_sweep_expires_requests(flow: Flow) -> None:
    """The 'expired-requests' step of the sweep expires an unfinished request past its time."""
    from mailprov.services.sweep import sweep

    rid, _code, now = verified(flow)
    early = {r.name: r for r in sweep(flow.store, flow.settings, now=now + 60)}
    assert early["expired-requests"].items == []
    assert flow.gate.state(rid) != "expired"
    late = {r.name: r for r in sweep(flow.store, flow.settings, now=now + 25 * 3600)}
    assert late["expired-requests"].changed is True
    assert late["expired-requests"].items == [{"request": rid}]
    assert flow.gate.state(rid) == "expired"
    flow.gate.relay.wait_for(to="anna@recovery.example", subject="expired", timeout=5)


def test_sweep_reports_a_notice_it_could_not_send(flow: Flow) -> None:
    """The recovery contact refusing the 'expired' notice leaves the request expired; the
    sweep's item carries the warning."""
    from mailprov.services.sweep import sweep

    rid, _code, now = verified(flow)
    flow.gate.relay.fault("rcpt:anna@recovery.example=550 5.1.1 no such user")

    late = {r.name: r for r in sweep(flow.store, flow.settings, now=now + 25 * 3600)}
    [item] = late["expired-requests"].items
    assert item["request"] == rid
    assert "recovery-unreachable" in item["warnings"][0]
    assert flow.gate.state(rid) == "expired"
