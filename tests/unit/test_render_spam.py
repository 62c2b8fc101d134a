"""The owner's spam settings as rendered: nothing while rspamd is off; when on, rspamd's score
header routine, Dovecot's user_query with the site's defaults last, the global Sieve rule run
after the owner's script, and Pigeonhole's compiler accepting that rule only with the
rendered Dovecot's settings (the extension is for admin scripts only)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from mailprov.render.spam import SCRIPT
from mailprov.rules.spam import SCORE_HEADER
from mailprov.system import sieve
from mailprov.system.run import SubprocessRunner
from tests.conftest import require_or_skip
from tests.unit.test_render_rspamd import (
    ON,
    TARGET,
    fixture_tls_env,  # noqa: F401  (a fixture: tls_env)
    render,
)

USER_QUERY = re.compile(r"^user_query = (.*?)\n\n", re.MULTILINE | re.DOTALL)


def test_off_renders_no_spam_rule(tls_env: dict[str, str]) -> None:
    """Without rspamd no score header exists to trust: no rule, no per-user values."""
    out = render(tls_env)
    assert f"dovecot/{SCRIPT}" not in out
    assert "sieve_after" not in out["dovecot/dovecot.conf"]
    assert "sieve_env_" not in out["dovecot/dovecot-sql.conf.ext"]


def test_on_renders_the_rule_the_values_and_the_score_header(tls_env: dict[str, str]) -> None:
    """The site's defaults close the user_query's COALESCEs; the rule runs after the owner's
    script, compiled into the mail home; rspamd writes the score header."""
    out = render(
        tls_env,
        **ON,
        MAILPROV_RSPAMD_SPAM_THRESHOLD="4.25",
        MAILPROV_RSPAMD_SPAM_TO_JUNK="false",
    )
    query = USER_QUERY.search(out["dovecot/dovecot-sql.conf.ext"])
    assert query is not None
    text = query.group(1)
    assert "COALESCE(m.spam_threshold, d.spam_threshold, 4.25) * 100" in text
    assert "COALESCE(m.spam_to_junk, d.spam_to_junk, FALSE)" in text
    assert "AS sieve_env_mailprov_spam_threshold" in text
    assert "AS sieve_env_mailprov_spam_to_junk" in text
    conf = out["dovecot/dovecot.conf"]
    assert f"sieve_after = file:{TARGET}/dovecot/{SCRIPT};bindir=~/.mailprov-sieve\n" in conf
    assert "sieve_global_extensions = +vnd.dovecot.environment\n" in conf
    rule = out[f"dovecot/{SCRIPT}"]
    assert f'"{SCORE_HEADER}"' in rule
    assert 'fileinto :create "Junk";' in rule
    headers = out["rspamd/local.d/milter_headers.conf"]
    assert '"mailprov-score"' in headers
    assert f"local name = '{SCORE_HEADER}'" in headers


def test_pigeonhole_compiles_the_rule_with_the_rendered_settings_only(
    tls_env: dict[str, str], tmp_path: Path
) -> None:
    """sievec accepts the rendered rule with the rendered dovecot.conf, and refuses it when the
    admin-only extension is not enabled (as an owner's own script would be)."""
    if shutil.which("sievec") is None:
        require_or_skip("sievec missing (apt install dovecot-sieve)")
    out = render(tls_env, tmp_path, **ON)
    for name, text in out.items():
        if name.startswith("dovecot/"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(text)
    conf = tmp_path / "dovecot" / "dovecot.conf"
    runner = SubprocessRunner()
    assert sieve.check(runner, out[f"dovecot/{SCRIPT}"], conf) == []
    bare = tmp_path / "bare.conf"
    bare.write_text("plugin {\n}\n")
    complaints = sieve.check(runner, out[f"dovecot/{SCRIPT}"], bare)
    assert any("vnd.dovecot.environment" in c for c in complaints), complaints
