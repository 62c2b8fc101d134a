"""The pytest plugin (``mailprov.testing``) as a test rig uses it: the ``mail_relay`` fixture."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest


def test_mail_relay_fixture_captures_and_waits(mail_relay) -> None:
    """mail_relay gives host/port, and wait_for returns the parsed message that arrived."""
    with smtplib.SMTP(mail_relay.host, mail_relay.port, timeout=10) as c:
        c.sendmail(
            "app@rig.test",
            ["ann@example.test"],
            b"Subject: Your code\r\nContent-Type: text/plain\r\n\r\nYour code is 123456\r\n",
        )
    msg = mail_relay.wait_for(to="ann@example.test", subject="code", timeout=5)
    assert "123456" in msg.text
    assert [m.id for m in mail_relay.messages(to="ann@example.test")] == [msg.id]


def test_mail_relay_starts_empty_and_takes_faults(mail_relay) -> None:
    """Each test starts with no messages; .fault() makes the relay refuse as told."""
    assert mail_relay.messages() == []
    mail_relay.fault("rcpt:*@example.test=450 4.7.1 greylisted@times=1")
    with smtplib.SMTP(mail_relay.host, mail_relay.port, timeout=10) as c:
        refused = c.sendmail(
            "app@rig.test", ["a@example.test", "b@example.test"], b"Subject: g\r\n\r\nx\r\n"
        )
    assert refused == {"a@example.test": (450, b"4.7.1 greylisted")}
    assert [m.recipients for m in mail_relay.messages()] == [("b@example.test",)]


def test_wait_for_fails_the_test_on_timeout(mail_relay) -> None:
    """wait_for fails the test (not hangs) when nothing matching arrives."""
    with pytest.raises(pytest.fail.Exception, match="no message matching"):
        mail_relay.wait_for(to="nobody@example.test", timeout=0.2)


def test_importing_the_plugin_stays_cheap() -> None:
    """Importing mailprov.testing loads neither aiosmtpd nor aiohttp."""
    code = (
        "import sys, mailprov.testing; "
        "print(sorted(m for m in ('aiosmtpd', 'aiohttp') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def rich(to: str) -> bytes:
    """An HTML + text message with a link, a code and an attachment, as an app sends one."""
    from email import policy
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "app@rig.test"
    msg["To"] = to
    msg["Subject"] = "Confirm your address"
    msg.set_content("Your code is 482913.\nOr open https://app.test/confirm?t=abc.\n")
    msg.add_alternative(
        '<p>Your code is <b>482913</b>. <a href="https://app.test/confirm?t=abc">Confirm</a>'
        ' <a href="https://app.test/help">Help</a></p>',
        subtype="html",
    )
    msg.add_attachment(
        b"%PDF-1.4 terms", maintype="application", subtype="pdf", filename="terms.pdf"
    )
    return msg.as_bytes(policy=policy.SMTP)  # CRLF line ends, as on the wire


def test_captured_message_html_links_attachments_and_code(mail_relay) -> None:
    """CapturedMessage gives the HTML part, its links, the attachments and a one-time code."""
    to = mail_relay.address()
    with smtplib.SMTP(mail_relay.host, mail_relay.port, timeout=10) as c:
        c.sendmail("app@rig.test", [to], rich(to))
    msg = mail_relay.wait_for(to=to)
    assert "<b>482913</b>" in msg.html
    assert ["https://app.test/confirm?t=abc", "https://app.test/help"] == msg.links
    assert [("terms.pdf", "application/pdf", b"%PDF-1.4 terms")] == [
        (a.filename, a.content_type, a.data) for a in msg.attachments
    ]
    assert "482913" == msg.code()
    assert "abc" == msg.code(r"t=(\w+)")
    with pytest.raises(AssertionError, match="no code matching"):
        msg.code(r"\b\d{9}\b")


def test_address_is_unique_and_named_after_the_test(mail_relay) -> None:
    """address() gives a new address each call, named after the test."""
    first, second = mail_relay.address(), mail_relay.address()
    assert first != second
    assert first.startswith("test-address-is-unique-and-named-after-t-")
    assert first.endswith("@example.test")
    assert mail_relay.address("Ann Smith", domain="corp.test").startswith("ann-smith-")


def test_wait_for_count_and_assert_no_mail(mail_relay) -> None:
    """wait_for(count=N) waits for N; assert_no_mail passes when quiet and fails when mail comes."""
    import threading

    to, other = mail_relay.address(), mail_relay.address()
    with smtplib.SMTP(mail_relay.host, mail_relay.port, timeout=10) as c:
        for n in range(2):
            c.sendmail("app@rig.test", [to], f"Subject: n{n}\r\n\r\nx\r\n".encode())
    assert ["n0", "n1"] == [m.subject for m in mail_relay.wait_for(to=to, count=2, timeout=5)]
    with pytest.raises(pytest.fail.Exception, match="2 of 3 messages"):
        mail_relay.wait_for(to=to, count=3, timeout=0.3)
    mail_relay.assert_no_mail(to=other, within=0.3)

    def late() -> None:
        time.sleep(0.2)
        with smtplib.SMTP(mail_relay.host, mail_relay.port, timeout=10) as c:
            c.sendmail("app@rig.test", [other], b"Subject: late\r\n\r\nx\r\n")

    sender = threading.Thread(target=late)
    sender.start()
    with pytest.raises(pytest.fail.Exception, match=r"expected no mail matching to=.*'late'"):
        mail_relay.assert_no_mail(to=other, within=5)
    sender.join()


@pytest.mark.mail_relay(auth=("rig", "s3cret-pw"))
def test_marker_requires_auth_with_the_given_credentials(mail_relay) -> None:
    """With the auth marker option, mail needs AUTH with exactly those credentials."""
    to = mail_relay.address()
    with smtplib.SMTP(mail_relay.host, mail_relay.port, timeout=10) as c:
        c.ehlo()
        assert 530 == c.mail("app@rig.test")[0]
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login("rig", "wrong")
    with smtplib.SMTP(mail_relay.host, mail_relay.port, timeout=10) as c:
        c.login("rig", "s3cret-pw")
        c.sendmail("app@rig.test", [to], b"Subject: authed\r\n\r\nx\r\n")
    assert "rig" == mail_relay.wait_for(to=to).summary.auth_user


@pytest.mark.mail_relay(size_limit="1K", tls_only=True)
def test_marker_size_limit_and_tls_only(mail_relay) -> None:
    """size_limit refuses bigger messages (552); tls_only wants STARTTLS before MAIL (530)."""
    to = mail_relay.address()
    with smtplib.SMTP(mail_relay.host, mail_relay.port, timeout=10) as c:
        c.ehlo()
        assert 530 == c.mail("app@rig.test")[0]
    with smtplib.SMTP(mail_relay.host, mail_relay.port, timeout=10) as c:
        c.starttls(context=mail_relay.tls_context())
        c.sendmail("app@rig.test", [to], b"Subject: small\r\n\r\nx\r\n")
        with pytest.raises(smtplib.SMTPSenderRefused) as big:
            c.sendmail("app@rig.test", [to], b"Subject: big\r\n\r\n" + b"x" * 2048 + b"\r\n")
        assert 552 == big.value.smtp_code
    assert ["small"] == [m.subject for m in mail_relay.messages(to=to)]


README = Path(__file__).resolve().parents[3] / "README.md"


def readme_rig_example() -> str:
    """The Python block after ``<!-- rig-example -->`` in the README."""
    text = README.read_text("utf-8")
    block = text.split("<!-- rig-example -->", 1)[1].split("```python\n", 1)[1]
    return block.split("\n```", 1)[0] + "\n"


def test_readme_rig_example_runs(tmp_path: Path) -> None:
    """The README's rig example passes as it is, in its own pytest run outside the source tree."""
    (tmp_path / "test_rig.py").write_text(readme_rig_example())
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
    assert "5 passed" in result.stdout
