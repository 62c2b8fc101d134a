"""Two writers can never both win: 20 processes race for one address, on both backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from mailprov.services import accounts
from mailprov.store.audit import verify as verify_chain

RACERS = 20


@pytest.mark.slow
def test_twenty_processes_one_address(store: Any, actor: Any, tmp_path: Any) -> None:
    """Exactly one of 20 concurrent 'mailbox add' processes wins; the rest get address-taken."""
    accounts.add_domain(store, "example.test", actor=actor)
    env = {
        **os.environ,
        "MAILPROV_CONFIG": "",
        "MAILPROV_PASSWORDS_SCHEME": "SHA512-CRYPT",
        "XDG_STATE_HOME": str(tmp_path),
    }
    argv = [
        sys.executable,
        "-m",
        "mailprov",
        "--store",
        store.url,
        "mailbox",
        "add",
        "race@example.test",
        "--generate",
        "--json",
    ]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(RACERS)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append((proc.returncode, json.loads(out), err))
    statuses = sorted(code for code, _, _ in results)
    assert [0] + [14] * (RACERS - 1) == statuses, [e for _, _, e in results if e]
    losers = [doc for code, doc, _ in results if code == 14]
    assert all("address-taken" == doc["error"]["code"] for doc in losers)
    assert all(len(doc["error"]["suggestions"]) >= 3 for doc in losers)
    with store.read() as conn:
        assert verify_chain(conn).ok
    assert ["race@example.test"] == [
        m.address for m in accounts.list_mailboxes(store, _settings(), now=actor.now)
    ]


def _settings() -> Any:
    from mailprov.settings import PasswordsSection

    return PasswordsSection()
