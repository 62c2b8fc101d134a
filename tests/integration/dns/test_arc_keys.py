"""The ARC sealing keys mailprov gives rspamd ([rspamd] arc_seal): a 0600 copy of each
domain's signing RSA key for rspamd's user and the selector map, following ``dkim
activate`` and ``dkim retire``; nothing at all while arc_seal is off."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.conftest import Cli
from tests.integration.dns.test_dkim_cli import _key


def _arc_env(site: Path) -> dict[str, str]:
    return {
        "MAILPROV_RSPAMD_ENABLED": "true",
        "MAILPROV_RSPAMD_ARC_SEAL": "true",
        "MAILPROV_RSPAMD_DB_DIR": str(site / "rspamd-db"),
    }


def _activate(mp: Cli, selector: str, env: dict[str, str]) -> dict[str, Any]:
    status, doc = mp.json("dkim", "activate", "example.test", selector, "--skip-dns-check", env=env)
    assert status == 0, doc
    return doc["signer"]["arc_keys"]  # type: ignore[no-any-return]


def test_arc_keys_follow_activation_and_retirement(mp: Cli, site: Path) -> None:
    """Activating s1 writes its copy and the map; again, nothing; activating s2 writes s2's
    and deletes s1's; retiring s1 changes nothing more."""
    env = _arc_env(site)
    arc = site / "rspamd-db" / "arc"
    for sel in ("s1", "s2"):
        assert mp("dkim", "keygen", "example.test", "--selector", sel, env=env).exit_code == 0
    assert _activate(mp, "s1", env) == {
        "written": ["example.test.s1.key", "selectors.map"],
        "removed": [],
    }
    copy = arc / "example.test.s1.key"
    assert copy.read_bytes() == _key(site, "s1").read_bytes()
    assert copy.stat().st_mode & 0o777 == 0o600
    if os.geteuid() == 0:
        assert (copy.owner(), arc.owner()) == ("_rspamd", "_rspamd")
    assert arc.stat().st_mode & 0o777 == 0o700
    assert (arc / "selectors.map").read_text() == "example.test s1\n"
    assert _activate(mp, "s1", env) == {"written": [], "removed": []}
    assert _activate(mp, "s2", env) == {
        "written": ["example.test.s2.key", "selectors.map"],
        "removed": ["example.test.s1.key"],
    }
    assert (arc / "selectors.map").read_text() == "example.test s2\n"
    status, doc = mp.json("dkim", "retire", "example.test", "s1", "--skip-checks", env=env)
    assert status == 0, doc
    assert doc["signer"]["arc_keys"] == {"written": [], "removed": []}
    assert sorted(p.name for p in arc.iterdir()) == ["example.test.s2.key", "selectors.map"]


def test_nothing_is_copied_while_arc_seal_is_off(mp: Cli, site: Path) -> None:
    """Without arc_seal (rspamd on or off) activation writes no copy and no folder."""
    assert mp("dkim", "keygen", "example.test", "--selector", "s1").exit_code == 0
    env = {**_arc_env(site), "MAILPROV_RSPAMD_ARC_SEAL": "false"}
    assert _activate(mp, "s1", env) == {"written": [], "removed": []}
    assert not (site / "rspamd-db").exists()
