"""Opening requests (terms, recovery address, address rules and availability, corporate domains),
cancel, the happy path on SQLite and PostgreSQL, two processes racing with one token, and the
domain ownership proof against a real knot server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.integration.identity.conftest import CorpZone, Gate


def test_terms_not_accepted(gate: Gate) -> None:
    """Without --accept-terms nothing is requested: exit 15, terms-not-accepted."""
    status, data = gate.cli.json(
        "request",
        "open",
        "anna@example.test",
        "--kind",
        "personal",
        "--recovery",
        "anna@home.example",
    )
    assert (status, data["error"]["code"]) == (15, "terms-not-accepted")
    assert gate.cli.json("request", "list")[1]["requests"] == []


@pytest.mark.parametrize(
    "recovery", ["not-an-address", "a@b", "anna@example.test", "x y@home.example"]
)
def test_recovery_invalid(gate: Gate, recovery: str) -> None:
    """An invalid recovery address (or the requested mailbox itself) is refused with exit 16."""
    status, data = gate.cli.json(
        "request",
        "open",
        "anna@example.test",
        "--kind",
        "personal",
        "--recovery",
        recovery,
        "--accept-terms",
    )
    assert (status, data["error"]["code"]) == (16, "recovery-invalid")


def test_address_rules_and_taken(gate: Gate) -> None:
    """A bad address is refused at once; a taken one (mailbox or request) gets suggestions."""
    status, data = gate.cli.json(
        "request",
        "open",
        "an..na@example.test",
        "--kind",
        "personal",
        "--recovery",
        "a@home.example",
        "--accept-terms",
    )
    assert (status, data["error"]["code"]) == (20, "invalid-address")
    gate.open("anna")
    status, data = gate.cli.json(
        "request",
        "open",
        "anna@example.test",
        "--kind",
        "personal",
        "--recovery",
        "b@home.example",
        "--accept-terms",
    )
    assert (status, data["error"]["code"]) == (14, "address-taken")
    assert len(data["error"]["suggestions"]) >= 3
    assert gate.cli.json("mailbox", "add", "boris@example.test", "--generate")[0] == 0
    status, data = gate.cli.json(
        "request",
        "open",
        "boris@example.test",
        "--kind",
        "personal",
        "--recovery",
        "b@home.example",
        "--accept-terms",
    )
    assert status == 14
    assert "boris@example.test" not in data["error"]["suggestions"]


def test_corporate_needs_proven_domain(gate: Gate) -> None:
    """A corporate mailbox on a domain without ownership proof is refused (exit 59)."""
    status, data = gate.cli.json(
        "request",
        "open",
        "ceo@example.test",
        "--kind",
        "corporate",
        "--recovery",
        "ceo@home.example",
        "--accept-terms",
    )
    assert (status, data["error"]["code"]) == (59, "domain-not-verified")


def test_pending_proof_domain_not_usable(gate: Gate) -> None:
    """A domain added inactive by verify-start takes no personal requests until it is proven."""
    assert gate.cli.json("domain", "verify-start", "pending.example")[0] == 0
    status, data = gate.cli.json(
        "request",
        "open",
        "x@pending.example",
        "--kind",
        "personal",
        "--recovery",
        "x@home.example",
        "--accept-terms",
    )
    assert (status, data["error"]["code"]) == (20, "unknown-domain")


def test_cancel_then_verify_refused(gate: Gate) -> None:
    """A cancelled request cannot be verified any more (exit 57, its ID named)."""
    req = gate.open()
    status, data = gate.cli.json("request", "cancel", req["id"])
    assert (status, data["request"]["state"]) == (0, "cancelled")
    status, data = gate.verify_token(req["id"], gate.issuer.token(req["nonce"]))
    assert (status, data["error"]["request_id"]) == (57, req["id"])


@pytest.mark.requires_postgres
def test_happy_path_each_backend(gate_any: Gate) -> None:
    """open → verify → code by SMTP → confirm provisions one mailbox, audited with evidence only."""
    gate = gate_any
    req = gate.open(name="Anna Smirnova")
    token = gate.issuer.token(req["nonce"], jti="jti-happy")
    status, data = gate.verify_token(req["id"], token)
    assert (status, data["request"]["state"]) == (0, "identity-verified")
    code = gate.code_for("anna@recovery.example")
    result = gate.cli(
        "request",
        "confirm",
        req["id"].lower(),
        "--code-stdin",
        "--password-file",
        str(gate.folder / "pw"),
        input=code,
        json=True,
    )
    assert result.exit_code == 0, result.stdout
    assert gate.state(req["id"]) == "provisioned"
    assert gate.mailboxes() == ["anna@example.test"]
    audit = gate.audit_text()
    for action in (
        "request.open",
        "request.verify",
        "request.confirm",
        "mailbox.add",
        "request.provision",
    ):
        assert action in audit
    records = gate.cli.json("audit", "list")[1]
    verify = [r for r in records["records"] if r["action"] == "request.verify"]
    assert verify[0]["details"]["jti"] == "jti-happy"
    assert verify[0]["details"]["iss"] == gate.issuer.iss
    status, data = gate.cli.json("request", "list", "--state", "provisioned")
    assert [r["id"] for r in data["requests"]] == [req["id"]]


RACE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from tests.conftest import invoke
    config, rid, token, go, state = sys.argv[1:6]
    while not Path(go).exists():
        time.sleep(0.001)
    result = invoke("request", "verify", rid, "--token-stdin", input=token,
                    config=Path(config), state_dir=Path(state))
    sys.exit(result.exit_code)
""")


@pytest.mark.requires_postgres
def test_two_processes_same_token(gate_any: Gate, tmp_path: Path) -> None:
    """Two processes presenting the same token at once: exactly one wins, the other is refused."""
    gate = gate_any
    req = gate.open()
    token = gate.issuer.token(req["nonce"])
    go = tmp_path / "go"
    # The repository root, so that the script imports the harness from tests/conftest.py.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    argv = [str(gate.config), req["id"], token, str(go), str(tmp_path / "state")]
    procs = [subprocess.Popen([sys.executable, "-c", RACE, *argv], env=env) for _ in range(2)]
    time.sleep(1.5)  # both interpreters are up and polling
    go.touch()
    codes = sorted(p.wait(60) for p in procs)
    assert codes[0] == 0
    assert codes[1] in (43, 57)  # token-replayed, or the request is no longer open
    assert gate.state(req["id"]) == "identity-verified"
    codes = [m for m in gate.mail_to("anna@recovery.example") if "Confirmation code" in m]
    assert len([m for m in codes if req["id"] in m]) == 1


@pytest.mark.requires_dns_server
def test_domain_ownership_with_knot(gate: Gate, corp_zone: CorpZone) -> None:
    """verify-start adds the domain inactive; verify passes once knot serves the TXT record."""
    status, data = gate.cli.json("domain", "verify-start", "acme.corp.test")
    assert (status, data["domain_added"]) == (0, True)
    record = data["record"]
    assert record["name"] == "_mailprov-challenge.acme.corp.test."
    server = f"127.0.0.1:{corp_zone.port}"
    status, data = gate.cli.json("domain", "verify", "acme.corp.test", "--nameserver", server)
    assert (status, data["error"]["code"]) == (59, "domain-not-verified")
    corp_zone.publish("_mailprov-challenge.acme", "TXT", '"mailprov-verify=wrong"')
    assert gate.cli.json("domain", "verify", "acme.corp.test", "--nameserver", server)[0] == 59
    corp_zone.publish("_mailprov-challenge.acme", "TXT", f'"{record["value"]}"')
    status, data = gate.cli.json("domain", "verify", "acme.corp.test", "--nameserver", server)
    assert (status, data["changed"], data["verified"]) == (0, True, True)
    assert gate.cli.json("domain", "show", "acme.corp.test")[1]["domain"]["active"] is True
    status, data = gate.cli.json(
        "request",
        "open",
        "ceo@acme.corp.test",
        "--kind",
        "corporate",
        "--recovery",
        "ceo@home.example",
        "--accept-terms",
    )
    assert (status, data["request"]["kind"]) == (0, "corporate")
