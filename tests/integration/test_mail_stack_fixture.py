"""The shipped ``mail_stack`` fixture (mailprov.testing): a rig gets a real Postfix + Dovecot."""

from __future__ import annotations

import imaplib
import os
import smtplib
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailprov.mailstack import MailStack

pytestmark = [pytest.mark.requires_postfix, pytest.mark.requires_dovecot]

PW = "Tulip-Garden-93!"
README = Path(__file__).resolve().parents[2] / "README.md"


def test_a_rig_adds_a_mailbox_sends_and_reads_it_back(mail_stack: MailStack) -> None:
    """add_mailbox (CLI subprocess), SMTP to port 25, and wait_for_message over verified IMAPS."""
    mail_stack.add_mailbox("rig-ann@example.test", PW)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "app@example.net", "rig-ann@example.test", "Welcome"
    msg.set_content("hello from the rig\n")
    with smtplib.SMTP(mail_stack.host, mail_stack.ports["smtp"], timeout=10) as smtp:
        smtp.send_message(msg)
    got = mail_stack.wait_for_message("rig-ann@example.test", PW, "Welcome")
    assert "hello from the rig" == got.get_payload().strip()
    assert "Welcome" in [m["Subject"] for m in mail_stack.messages("rig-ann@example.test", PW)]


def test_a_wrong_password_is_refused(mail_stack: MailStack) -> None:
    """The stack's Dovecot checks passwords: a wrong one fails the IMAP login."""
    mail_stack.add_mailbox("rig-bob@example.test", PW)
    with pytest.raises(imaplib.IMAP4.error, match=r"AUTHENTICATIONFAILED"):
        mail_stack.messages("rig-bob@example.test", PW + "x")


def test_readme_stack_example_runs(tmp_path: Path) -> None:
    """The README's mail_stack example passes as it is, in its own pytest run outside the tree."""
    text = README.read_text("utf-8")
    block = text.split("<!-- stack-example -->", 1)[1].split("```python\n", 1)[1]
    (tmp_path / "test_rig_stack.py").write_text(block.split("\n```", 1)[0] + "\n")
    env = {**os.environ, "PYTHONPATH": str(README.parent)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert 0 == result.returncode, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
