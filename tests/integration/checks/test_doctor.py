"""``mailprov doctor`` against the real rendered stack: clean, then broken on purpose (an orphan
Maildir, an expired or expiring certificate, a closed port), and with the DNS summary."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CertAuthority, free_port
from tests.integration.knot import Knot
from tests.integration.stack import MailStack

pytestmark = [pytest.mark.requires_postfix]


@contextlib.contextmanager
def edited_config(stack: MailStack, old: str, new: str) -> Iterator[None]:
    """Replace ``old`` (which must be there) by ``new`` in the stack's config for the block."""
    saved = stack.config_file.read_text()
    assert old in saved
    try:
        stack.config_file.write_text(saved.replace(old, new, 1))
        yield
    finally:
        stack.config_file.write_text(saved)


def _tls(cert: Path) -> tuple[str, str]:
    old = 'cert_file = "tls/cert.pem"\nkey_file = "tls/key.pem"\n'
    return old, f'cert_file = "{cert}"\nkey_file = "{cert.parent}/key.pem"\n'


def doctor(stack: MailStack, *extra: str) -> tuple[int, dict[str, Any]]:
    """Exit status and the doctor report (from the error's details when it failed)."""
    status, doc = stack.cli.json("doctor", "--target", str(stack.target), *extra)
    return status, (doc["error"]["doctor"] if "error" in doc else doc)


def ids(report: dict[str, Any], severity: str | None = None) -> set[str]:
    """The finding IDs of a report (of one severity)."""
    return {f["id"] for f in report["findings"] if severity in (None, f["severity"])}


def make_cert(ca: CertAuthority, folder: Path, *, not_after: dt.datetime) -> Path:
    """A certificate from the test CA valid until ``not_after`` (for 90 days before it)."""
    issued = ca.issue(folder, not_before=not_after - dt.timedelta(days=90), not_after=not_after)
    return issued.cert_file


def test_clean_stack_has_no_errors(mailstack: MailStack) -> None:
    """On the freshly deployed stack doctor exits 0, reports the queue and the certificate."""
    status, report = doctor(mailstack, "--no-dns")
    assert status == 0, report
    assert report["ok"] is True
    assert report["checks"] == ["maildirs", "config", "tls", "ports", "queue"]
    assert ids(report, "error") == set()
    assert {"doctor.tls.ok", "doctor.queue.size"} <= ids(report)


def test_mailbox_without_maildir_is_info(mailstack: MailStack) -> None:
    """A mailbox that never received mail is reported as info, not an error."""
    mailstack.add_mailbox(f"fresh{free_port()}@example.test", "Quiet-Harbor-pw-7")
    status, report = doctor(mailstack, "--no-dns")
    assert status == 0
    assert "doctor.maildir.never_received" in ids(report, "info")


def test_orphan_maildir_is_an_error(mailstack: MailStack) -> None:
    """A Maildir with no mailbox in the store is error doctor.maildir.orphan (exit 79)."""
    # A domain folder of its own: creating example.test/ as root here would keep Dovecot
    # (user vmail) from making the real mailboxes' homes later.
    gone = mailstack.root / "mail" / "gone.test"
    (gone / "ghost" / "Maildir" / "new").mkdir(parents=True)
    try:
        status, report = doctor(mailstack, "--no-dns")
    finally:
        shutil.rmtree(gone)
    assert status == 79
    found = [f for f in report["findings"] if f["id"] == "doctor.maildir.orphan"]
    assert [f["subject"] for f in found] == ["ghost@gone.test"]
    assert "nor is gone.test a domain" in found[0]["message"]
    assert found[0]["action"]


def test_expired_certificate_is_an_error(
    mailstack: MailStack, tmp_path: Path, test_ca: CertAuthority
) -> None:
    """An expired [tls] cert_file is error doctor.tls.expired."""
    cert = make_cert(test_ca, tmp_path, not_after=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    with edited_config(mailstack, *_tls(cert)):
        status, report = doctor(mailstack, "--no-dns")
    assert status == 79
    assert "doctor.tls.expired" in ids(report, "error")
    # The deployed main.cf names the old certificate: the config is out of date too.
    assert "doctor.config.outdated" in ids(report, "warning")


def test_expiring_certificate_is_a_warning(
    mailstack: MailStack, tmp_path: Path, test_ca: CertAuthority
) -> None:
    """A certificate expiring in 10 days is warning doctor.tls.expiring; the exit status stays 0."""
    cert = make_cert(test_ca, tmp_path, not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=10))
    with edited_config(mailstack, *_tls(cert)):
        status, report = doctor(mailstack, "--no-dns")
    assert status == 0
    assert "doctor.tls.expiring" in ids(report, "warning")


def test_closed_port_is_an_error(mailstack: MailStack) -> None:
    """A configured port nothing listens on is error doctor.port.closed naming that port."""
    pop3 = f"pop3 = {mailstack.ports['pop3']}\n"
    with edited_config(mailstack, pop3, f"pop3 = {free_port()}\n"):
        status, report = doctor(mailstack, "--no-dns")
    assert status == 79
    closed_ports = [f["subject"] for f in report["findings"] if f["id"] == "doctor.port.closed"]
    assert closed_ports == ["pop3"]


def test_dns_summary(mailstack: MailStack, knot: Knot) -> None:
    """With DNS checks on, doctor summarises them per domain under a doctor.dns.* ID."""
    dns = f'[dns]\ncheck_nameserver = "{knot.address}"\ncheck_timeout = 0.5\ncheck_retries = 0\n'
    with edited_config(mailstack, "[dovecot]\n", dns + "[dovecot]\n"):
        status, report = doctor(mailstack)
    assert "dns" in report["checks"]
    dns_ids = {i for i in ids(report) if i.startswith("doctor.dns.")}
    assert dns_ids & {"doctor.dns.problems", "doctor.dns.unknown", "doctor.dns.ok"}
    assert status == 0  # DNS findings are warnings at most
