"""Forward mode against real upstreams on loopback: Postfix (per-recipient answers), smtp-sink
(4xx at DATA) and another relay (AUTH), checking every reply reaches the client truthfully."""

from __future__ import annotations

import os
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailprov.relay.options import Smarthost
from mailprov.rules.hashing import hash_password
from mailprov.testing import RelayRunner
from tests.conftest import CertAuthority, free_port
from tests.integration.relay.relay_helpers import client, need, tls_context

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/pfdata
maillog_file_prefixes = {root}/log
maillog_file = {root}/log/postfix.log
myhostname = upstream.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
smtp_dns_support_level = disabled
# Accepted mail for example.test is discarded: the test only checks SMTP answers.
relay_domains = example.test
relay_transport = discard:
default_transport = discard:
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions =
  check_recipient_access texthash:{root}/access, permit_mynetworks, reject
smtpd_tls_cert_file = {root}/cert.pem
smtpd_tls_key_file = {root}/key.pem
smtpd_tls_security_level = may
"""
MASTER_CF = """\
{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""
ACCESS = """\
refused@example.test 550 5.1.1 no such user here
later@example.test 450 4.2.1 mailbox busy, try later
"""


def wait_greeting(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(3) == b"220":
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"no greeting on port {port}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def postfix_upstream(test_ca: CertAuthority) -> Iterator[tuple[int, Path]]:
    """A real Postfix on a free port with a private config: refuses refused@, defers later@.

    Yields its port and the CA file that signed its STARTTLS certificate.
    """
    postfix = need("postfix")
    root = Path(tempfile.mkdtemp(prefix="mprelay-pf-"))  # short: unix socket paths < 108 bytes
    os.chmod(root, 0o755)
    port = free_port()
    for sub in ("spool", "log"):
        (root / sub).mkdir(mode=0o755)
    issued = test_ca.issue(root, "127.0.0.1", "upstream.test")
    (root / "main.cf").write_text(MAIN_CF.format(root=root))
    (root / "master.cf").write_text(MASTER_CF.format(port=port))
    (root / "access").write_text(ACCESS)
    subprocess.run([postfix, "-c", str(root), "check"], check=True, capture_output=True)
    subprocess.run([postfix, "-c", str(root), "start"], check=True, capture_output=True)
    try:
        wait_greeting(port)
        yield port, issued.ca_file
    finally:
        pid_file = root / "spool" / "pid" / "master.pid"
        pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else 0
        subprocess.run([postfix, "-c", str(root), "stop"], check=False, capture_output=True)
        deadline = time.monotonic() + 15
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(root, ignore_errors=True)


def forwarder(make_relay, port: int, **changes: object) -> RelayRunner:
    smarthost = changes.pop("smarthost", None) or Smarthost(
        host="127.0.0.1", port=port, starttls=False
    )
    return make_relay(
        mode="forward", smarthost=smarthost, local_domains=("example.test",), **changes
    )


def test_postfix_answers_reach_the_client_per_recipient(make_relay, postfix_upstream) -> None:
    """Over STARTTLS to Postfix: refused rcpt 550, deferred 450, others 250, DATA 250."""
    port, ca_file = postfix_upstream
    relay = forwarder(
        make_relay,
        port,
        smarthost=Smarthost(host="127.0.0.1", port=port, starttls=True, ca_file=ca_file),
    )
    with client(relay) as c:
        c.ehlo()
        assert c.mail("sender@client.test")[0] == 250
        assert c.rcpt("ok@example.test")[0] == 250
        code, text = c.rcpt("refused@example.test")
        assert (code, b"no such user here" in text) == (550, True)
        code, text = c.rcpt("later@example.test")
        assert (code, b"mailbox busy" in text) == (450, True)
        code, text = c.data(b"Subject: fwd\r\n\r\nforwarded\r\n")
        assert (code, b"queued as" in text) == (250, True)
    assert relay.store.count() == 0  # forwarded, not captured


def test_unauthenticated_mail_to_foreign_domains_is_refused(make_relay, postfix_upstream) -> None:
    """Forward mode is no open relay: without AUTH only local domains are accepted."""
    relay = forwarder(make_relay, postfix_upstream[0])
    with client(relay) as c:
        c.ehlo()
        c.mail("sender@client.test")
        code, text = c.rcpt("victim@elsewhere.test")
        assert (code, b"Relay access denied" in text) == (554, True)


def test_smtp_sink_soft_failure_at_data_is_a_4xx(make_relay) -> None:
    """When the smarthost (smtp-sink -r DATA) defers DATA, the client gets that 4xx, not 250."""
    sink = need("smtp-sink")
    port = free_port()
    proc = subprocess.Popen(
        [sink, "-u", "postfix", "-r", "DATA", f"127.0.0.1:{port}", "10"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_greeting(port)
        relay = forwarder(make_relay, port)
        with client(relay) as c, pytest.raises(smtplib.SMTPDataError) as err:
            c.sendmail("s@client.test", ["ok@example.test"], b"Subject: x\r\n\r\nx\r\n")
        assert 400 <= err.value.smtp_code < 500
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def test_unreachable_smarthost_is_a_4xx(make_relay) -> None:
    """If nothing listens at the smarthost, MAIL gets 451 and nothing is accepted."""
    relay = forwarder(make_relay, free_port())
    with client(relay) as c:
        c.ehlo()
        code, text = c.mail("s@client.test")
        assert (code, b"smarthost unavailable" in text) == (451, True)


def test_forward_with_starttls_and_auth_to_another_relay(make_relay, tmp_path: Path) -> None:
    """The forwarder logs in to an AUTH-requiring smarthost with the password from its file."""
    creds = tmp_path / "users"
    creds.write_text(f"fwd@example.test:{hash_password('fwd-Pass-1', 'SHA512-CRYPT')}\n")
    upstream = make_relay(credentials_file=creds, require_auth=True)
    assert upstream.cert_file is not None
    password_file = tmp_path / "smarthost-password"
    password_file.write_text("fwd-Pass-1\n")
    password_file.chmod(0o600)
    relay = forwarder(
        make_relay,
        0,
        smarthost=Smarthost(
            host="127.0.0.1",
            port=upstream.port,
            starttls=True,
            username="fwd@example.test",
            password_file=password_file,
            ca_file=upstream.cert_file,
        ),
    )
    with client(relay) as c:
        c.sendmail("s@client.test", ["dest@example.test"], b"Subject: via auth\r\n\r\nx\r\n")
    got = upstream.wait_for(to="dest@example.test", timeout=5)
    assert (got.subject, got.summary.auth_user) == ("via auth", "fwd@example.test")
    password_file.write_text("wrong\n")
    wrong = forwarder(
        make_relay,
        0,
        smarthost=Smarthost(
            host="127.0.0.1",
            port=upstream.port,
            starttls=True,
            username="fwd@example.test",
            password_file=password_file,
            ca_file=upstream.cert_file,
        ),
    )
    with client(wrong) as c:
        c.ehlo()
        assert c.mail("s@client.test")[0] == 451
    assert tls_context(upstream) is not None
