"""Trust configuration, the test issuer and the notify hook, through the CLI."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from tests.integration.identity.conftest import AUDIENCE, Gate, IssuerKey


def test_jwks_with_private_members_refused(gate: Gate) -> None:
    """A JWKS holding a private key ('d') is refused, and nothing is trusted from it."""
    other = IssuerKey.new("https://leaky.example")
    jwks = other.jwks()
    jwks["keys"][0]["d"] = "c2VjcmV0"
    path = gate.folder / "leaky.json"
    path.write_text(json.dumps(jwks))
    status, data = gate.cli.json(
        "identity",
        "trust",
        "add-issuer",
        "--iss",
        other.iss,
        "--jwks",
        str(path),
        "--audience",
        AUDIENCE,
    )
    assert (status, data["error"]["code"]) == (58, "trust-invalid")
    assert "private key members (d)" in data["error"]["message"]
    issuers = gate.cli.json("identity", "trust", "list")[1]["issuers"]
    assert [i["iss"] for i in issuers] == [gate.issuer.iss]


@pytest.mark.parametrize("change", [{"use": "enc"}, {"alg": "HS256"}, {"kid": None}])
def test_jwks_needs_kid_alg_use_sig(gate: Gate, change: dict[str, object]) -> None:
    """JWKS keys need kid, an asymmetric alg and use=sig."""
    other = IssuerKey.new("https://odd.example")
    jwks = other.jwks()
    for key, value in change.items():
        if value is None:
            del jwks["keys"][0][key]
        else:
            jwks["keys"][0][key] = value
    path = gate.folder / "odd.json"
    path.write_text(json.dumps(jwks))
    status, _ = gate.cli.json(
        "identity",
        "trust",
        "add-issuer",
        "--iss",
        other.iss,
        "--jwks",
        str(path),
        "--audience",
        AUDIENCE,
    )
    assert status == 58


def test_kid_unique_across_issuers_and_remove(gate: Gate) -> None:
    """A second issuer may not reuse a kid; remove drops an issuer; re-adding is unchanged."""
    path = gate.folder / "jwks.json"
    status, _ = gate.cli.json(
        "identity",
        "trust",
        "add-issuer",
        "--iss",
        "https://copycat.example",
        "--jwks",
        str(path),
        "--audience",
        AUDIENCE,
    )
    assert status == 58
    status, data = gate.cli.json(
        "identity",
        "trust",
        "add-issuer",
        "--iss",
        gate.issuer.iss,
        "--jwks",
        str(path),
        "--audience",
        AUDIENCE,
    )
    assert (status, data["changed"]) == (0, False)
    assert gate.cli.json("identity", "trust", "remove", gate.issuer.iss)[0] == 0
    req = gate.open()
    status, data = gate.verify_token(req["id"], gate.issuer.token(req["nonce"]))
    assert (status, data["error"]["idg"]) == (40, "IDG-T04")


def test_framework_min_level(gate: Gate) -> None:
    """--framework eidas --min-level high: an eIDAS 'substantial' identity is below the minimum."""
    path = gate.folder / "jwks.json"
    gate.cli.json(
        "identity",
        "trust",
        "add-issuer",
        "--iss",
        gate.issuer.iss,
        "--jwks",
        str(path),
        "--audience",
        AUDIENCE,
        "--framework",
        "eidas",
        "--min-level",
        "high",
    )
    req = gate.open()
    vc = {
        "verification": {
            "trust_framework": "eidas",
            "assurance_level": "substantial",
            "time": "2026-01-01T00:00Z",
        },
        "claims": {"given_name": "A", "family_name": "B", "birthdate": "1990-01-01"},
    }
    status, data = gate.verify_token(req["id"], gate.issuer.token(req["nonce"], verified_claims=vc))
    assert (status, data["error"]["idg"]) == (10, "IDG-V02")
    assert "'substantial' is below the required 'high'" in data["error"]["message"]


def test_test_issuer_walkthrough(gate: Gate) -> None:
    """The shipped test issuer's tokens pass the gate once it is trusted like any issuer."""
    folder = gate.folder / "ti"
    status, made = gate.cli.json(
        "identity", "test-issuer", "init", str(folder), "--audience", AUDIENCE
    )
    assert status == 0
    assert stat.S_IMODE((folder / "private.jwk").stat().st_mode) == 0o600
    assert "d" not in json.loads((folder / "jwks.json").read_text())["keys"][0]
    req = gate.open()
    args = (
        "identity",
        "test-issuer",
        "token",
        "--dir",
        str(folder),
        "--nonce",
        req["nonce"],
        "--sub",
        "t-1",
        "--level",
        "ial2",
    )
    token = gate.cli(*args, json=True)
    assert (
        json.loads(token.stdout)["error"]["code"] == "missing-option"
    )  # no token in --json output
    raw = gate.cli(*args).stdout.strip()
    status, data = gate.verify_token(req["id"], raw)
    assert (status, data["error"]["idg"]) == (40, "IDG-T04")  # not trusted yet
    assert (
        gate.cli.json(
            "identity",
            "trust",
            "add-issuer",
            "--iss",
            made["iss"],
            "--jwks",
            made["jwks_file"],
            "--audience",
            AUDIENCE,
        )[0]
        == 0
    )
    status, data = gate.verify_token(req["id"], raw)
    assert (status, data["request"]["state"]) == (0, "identity-verified")


def test_hook_gets_destination_and_code_on_stdin(gate: Gate, tmp_path: Path) -> None:
    """With notify.hook, destination and message go on the hook's stdin, never its argv."""
    hook = tmp_path / "sms-gateway.py"
    out = tmp_path / "hook-out.json"
    hook.write_text(
        "import json, sys\n"
        f"json.dump({{'argv': sys.argv, 'stdin': sys.stdin.read()}}, open({str(out)!r}, 'w'))\n"
    )
    text = gate.config.read_text().replace(
        'smarthost = "127.0.0.1"', f'hook = "{sys.executable} {hook}"'
    )
    gate.config.write_text(text)
    req = gate.open(recovery="+79990001122@sms.example")
    status, data = gate.verify_token(req["id"], gate.issuer.token(req["nonce"]))
    assert status == 0, data
    seen = json.loads(out.read_text())
    assert seen["stdin"].splitlines()[0] == "+79990001122@sms.example"
    code = seen["stdin"].split(" is ")[1][:6]
    assert code.isdigit()
    assert not any(code in arg for arg in seen["argv"])
    assert gate.mail_to("+79990001122@sms.example") == []


def test_hook_failure_is_recovery_unreachable(gate: Gate, tmp_path: Path) -> None:
    """A hook that fails means the recovery contact is unreachable (exit 16); the code is void."""
    text = gate.config.read_text().replace('smarthost = "127.0.0.1"', 'hook = "false"')
    gate.config.write_text(text)
    req = gate.open()
    status, data = gate.verify_token(req["id"], gate.issuer.token(req["nonce"]))
    assert (status, data["error"]["code"], data["error"]["request_id"]) == (
        16,
        "recovery-unreachable",
        req["id"],
    )
    assert os.path.exists(gate.folder / "identity-pepper")
