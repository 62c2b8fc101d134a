"""The compiled scripts judged by Pigeonhole itself (sieve-test, the rendered dovecot.conf):
for any printable text an owner types, including quotes, backslashes, braces, semicolons and
'${...}', the script compiles, a message whose subject holds the text is filed, and one
without it is kept in the INBOX (nothing the text says was run)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailprov.rules.sieve import compile_sieve, parse_spec
from tests.conftest import require_or_skip
from tests.integration.stack import MailStack

pytestmark = [
    pytest.mark.requires_dovecot,
    # Pigeonhole's judgement does not depend on the store.
    pytest.mark.parametrize("mailstack", ["sqlite"], indirect=True),
]

OWNER = "alice@example.test"
PRINTABLE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1)
HOSTILE = st.one_of(
    PRINTABLE.filter(lambda s: s.strip() == s and s),
    st.sampled_from(['"; discard; #', '\\" } discard; {', "${hex:41}", '" } stop; if true { "']),
)


def actions(stack: MailStack, folder: Path, script: str, subject: str, more: str = "") -> str:
    """What Pigeonhole's sieve-test says the script does with a message of that subject
    (``more``: extra header lines, each ending in CRLF)."""
    (folder / "s.sieve").write_text(script, encoding="utf-8", newline="")
    (folder / "m.eml").write_bytes(
        f"From: a@example.net\r\nTo: {OWNER}\r\nSubject: {subject}\r\n{more}\r\nbody\r\n".encode()
    )
    res = subprocess.run(
        [
            "sieve-test",
            "-c",
            str(stack.dovecot_conf),
            str(folder / "s.sieve"),
            str(folder / "m.eml"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout + res.stderr


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=HOSTILE)
def test_any_text_is_matched_literally_by_pigeonhole(mailstack: MailStack, text: str) -> None:
    """The text's message goes to 'Hit'; a message without the text stays in the INBOX."""
    if shutil.which("sieve-test") is None:
        require_or_skip("sieve-test missing (Debian dovecot-sieve)")
    # sieve-test drops to the vmail user: a folder it may read (pytest's tmp is 0700 root).
    with tempfile.TemporaryDirectory(prefix="mp-sieve-", dir="/tmp") as tmp:
        Path(tmp).chmod(0o755)
        judge(mailstack, Path(tmp), text)


def judge(mailstack: MailStack, folder: Path, text: str) -> None:
    """Compile forms holding ``text`` and run two messages through sieve-test."""
    spec = parse_spec(
        {
            "rules": [{"field": "subject", "contains": text, "action": "move", "folder": "Hit"}],
            "vacation": {"subject": text, "body": f"{text}\n.\n{text}"},
        },
        owner=OWNER,
    )
    script = compile_sieve(spec, owner=OWNER)
    hit = actions(mailstack, folder, script, f"<{text}>")
    assert "store message in folder: Hit" in hit
    # Two candidates with no letter in common: the text is inside one of them at most.
    other = next(c for c in ("zq0", "yx1") if text.lower() not in c)
    miss = actions(mailstack, folder, script, other)
    assert "store message in folder: Hit" not in miss
    assert "store message in folder: INBOX" in miss


def test_no_vacation_reply_to_spam(mailstack: MailStack) -> None:
    """The vacation reply answers a plain message, not one rspamd marked "X-Spam: Yes"."""
    if shutil.which("sieve-test") is None:
        require_or_skip("sieve-test missing (Debian dovecot-sieve)")
    spec = parse_spec({"vacation": {"subject": "Away", "body": "Back soon"}}, owner=OWNER)
    script = compile_sieve(spec, owner=OWNER)
    with tempfile.TemporaryDirectory(prefix="mp-sieve-", dir="/tmp") as tmp:
        Path(tmp).chmod(0o755)
        plain = actions(mailstack, Path(tmp), script, "hello")
        spam = actions(mailstack, Path(tmp), script, "hello", "X-Spam: Yes\r\n")
    assert "send vacation message" in plain
    assert "send vacation message" not in spam
    assert "store message in folder: INBOX" in spam
