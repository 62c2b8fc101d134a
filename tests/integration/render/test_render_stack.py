"""End to end on the real servers: mail in over SMTP, out over IMAP/POP3, on both store backends."""

from __future__ import annotations

import asyncio
import email
import poplib
import smtplib
import sqlite3
import time
import uuid
from email.message import EmailMessage

import aioimaplib
import pytest

from tests.integration.stack import MailStack

pytestmark = [pytest.mark.requires_postfix, pytest.mark.requires_dovecot]

PW = "Tr0ub4dor-and-3"


def fresh(stack: MailStack, name: str) -> str:
    """A new mailbox with a unique address and the password PW."""
    address = f"{name}{uuid.uuid4().hex[:6]}@{stack.domain}"
    stack.add_mailbox(address, PW)
    return address


def message(sender: str, to: str, subject: str, body: str = "hello") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg.set_content(body)
    return msg


def submit(stack: MailStack, user: str, msg: EmailMessage, password: str = PW) -> None:
    """Send over submission (587) with STARTTLS and AUTH PLAIN."""
    with smtplib.SMTP(
        stack.host, stack.ports["submission"], local_hostname="client.test", timeout=10
    ) as c:
        c.starttls(context=stack.tls_context())
        c.ehlo()
        c.user, c.password = user, password
        assert c.auth("PLAIN", c.auth_plain)[0] == 235
        c.send_message(msg)


def inbound(stack: MailStack, msg: EmailMessage, *, source: str = "127.0.0.1") -> None:
    """Deliver over port 25 as another mail server would."""
    with smtplib.SMTP(
        stack.host,
        stack.ports["smtp"],
        local_hostname="mx.example.net",
        timeout=10,
        source_address=(source, 0),
    ) as c:
        c.send_message(msg)


async def _close(client: aioimaplib.IMAP4) -> None:
    """Log out and close the connection (aioimaplib leaves it open after a refusal)."""
    try:
        await client.logout()
    finally:
        transport = client.protocol.transport
        if transport is not None and not transport.is_closing():
            transport.close()
        await asyncio.sleep(0.01)


async def _imap_fetch(stack: MailStack, user: str, password: str, subject: str) -> bytes | None:
    client = aioimaplib.IMAP4_SSL(
        stack.host, stack.ports["imaps"], ssl_context=stack.tls_context(), timeout=10
    )
    await client.wait_hello_from_server()
    login = await client.login(user, password)
    assert login.result == "OK", login
    await client.select("INBOX")
    found = await client.search(f'SUBJECT "{subject}"')
    ids = found.lines[0].split()
    raw = None
    if ids:
        fetched = await client.fetch(ids[-1].decode(), "(RFC822)")
        raw = bytes(fetched.lines[1])
    await _close(client)
    return raw


def imap_read(
    stack: MailStack, user: str, subject: str, password: str = PW, wait: float = 10.0
) -> bytes:
    """The message with ``subject`` read back over IMAPS with aioimaplib (waits for delivery)."""
    deadline = time.monotonic() + wait
    while True:
        raw = asyncio.run(_imap_fetch(stack, user, password, subject))
        if raw is not None:
            return raw
        if time.monotonic() > deadline:
            raise AssertionError(f"{subject!r} never reached {user}\n{stack.log()[-2500:]}")
        time.sleep(0.1)


def imap_login_ok(stack: MailStack, user: str, password: str) -> bool:
    """Whether an IMAPS login succeeds."""

    async def attempt() -> bool:
        client = aioimaplib.IMAP4_SSL(
            stack.host, stack.ports["imaps"], ssl_context=stack.tls_context(), timeout=10
        )
        await client.wait_hello_from_server()
        ok = (await client.login(user, password)).result == "OK"
        await _close(client)
        return ok

    return asyncio.run(attempt())


def pop3_login_ok(stack: MailStack, user: str, password: str) -> bool:
    """Whether a POP3S login succeeds."""
    p = poplib.POP3_SSL(stack.host, stack.ports["pop3s"], context=stack.tls_context(), timeout=10)
    try:
        p.user(user)
        p.pass_(password)
    except poplib.error_proto:
        return False
    finally:
        p.quit()
    return True


def smtp_auth_code(stack: MailStack, user: str, password: str) -> int:
    """The reply code of one AUTH PLAIN on submission."""
    with smtplib.SMTP(
        stack.host, stack.ports["submission"], local_hostname="client.test", timeout=10
    ) as c:
        c.starttls(context=stack.tls_context())
        c.ehlo()
        c.user, c.password = user, password
        try:
            return c.auth("PLAIN", c.auth_plain)[0]
        except smtplib.SMTPAuthenticationError as exc:
            return exc.smtp_code


def subject() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


class TestDelivery:
    def test_submission_with_starttls_is_read_back_over_imap(self, mailstack: MailStack) -> None:
        """A message sent on submission with STARTTLS and AUTH is read back over IMAPS."""
        alice, bob = fresh(mailstack, "alice"), fresh(mailstack, "bob")
        subj = subject()
        submit(mailstack, alice, message(alice, bob, subj, "body-from-alice"))
        got = email.message_from_bytes(imap_read(mailstack, bob, subj))
        assert got["From"] == alice
        assert "body-from-alice" in got.get_payload()

    def test_submissions_port_uses_implicit_tls(self, mailstack: MailStack) -> None:
        """Port 465 speaks TLS from the first byte and accepts an authenticated message."""
        alice = fresh(mailstack, "imp")
        subj = subject()
        with smtplib.SMTP_SSL(
            mailstack.host,
            mailstack.ports["submissions"],
            local_hostname="c.test",
            context=mailstack.tls_context(),
            timeout=10,
        ) as c:
            c.login(alice, PW)
            c.send_message(message(alice, alice, subj))
        assert subj.encode() in imap_read(mailstack, alice, subj)

    def test_inbound_port_25_is_read_back_over_pop3(self, mailstack: MailStack) -> None:
        """Mail from outside on port 25 lands in the Maildir and is listed over POP3S."""
        carol = fresh(mailstack, "carol")
        subj = subject()
        inbound(mailstack, message("someone@example.net", carol, subj), source="127.0.0.2")
        imap_read(mailstack, carol, subj)
        p = poplib.POP3_SSL(
            mailstack.host, mailstack.ports["pop3s"], context=mailstack.tls_context()
        )
        try:
            p.user(carol)
            p.pass_(PW)
            count, _size = p.stat()
            lines = p.retr(count)[1]
        finally:
            p.quit()
        assert any(subj.encode() in line for line in lines)

    def test_mailbox_added_while_running_receives_at_once(self, mailstack: MailStack) -> None:
        """A mailbox created with the CLI while the servers run gets mail and logs in, no reload."""
        master = dict(mailstack.pids)
        late = fresh(mailstack, "late")
        subj = subject()
        inbound(mailstack, message("x@example.net", late, subj))
        assert subj.encode() in imap_read(mailstack, late, subj)
        assert master == mailstack.pids
        if mailstack.backend == "sqlite":  # the servers read it as-is: rollback journal, not WAL
            db = mailstack.store_url.removeprefix("sqlite:///")
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            finally:
                conn.close()


class TestRefusals:
    def test_unknown_recipient_rejected_at_rcpt(self, mailstack: MailStack) -> None:
        """An address that is no mailbox or alias gets 550 at RCPT time (no bounce later)."""
        with smtplib.SMTP(
            mailstack.host, mailstack.ports["smtp"], local_hostname="mx.example.net"
        ) as c:
            c.ehlo()
            c.mail("x@example.net")
            code, text = c.rcpt(f"nobody-{uuid.uuid4().hex[:6]}@{mailstack.domain}")
        assert code == 550, text
        assert b"User unknown" in text

    def test_no_open_relay(self, mailstack: MailStack) -> None:
        """An unauthenticated client outside mynetworks cannot relay to an outside domain."""
        with smtplib.SMTP(
            mailstack.host,
            mailstack.ports["smtp"],
            local_hostname="mx.example.net",
            source_address=("127.0.0.2", 0),
        ) as c:
            c.ehlo()
            c.mail("x@example.net")
            code, text = c.rcpt("victim@example.com")
        assert (code, b"Relay access denied" in text) == (554, True)

    def test_submission_refuses_mail_without_auth(self, mailstack: MailStack) -> None:
        """Submission after STARTTLS but without AUTH refuses the client."""
        with smtplib.SMTP(
            mailstack.host, mailstack.ports["submission"], local_hostname="c.test"
        ) as c:
            c.starttls(context=mailstack.tls_context())
            c.ehlo()
            code, _ = c.mail("x@example.net")
            if code == 250:
                code, _ = c.rcpt("victim@example.com")
        assert code >= 500

    def test_no_auth_offered_before_starttls(self, mailstack: MailStack) -> None:
        """Port 587 does not offer AUTH on a plaintext connection."""
        with smtplib.SMTP(
            mailstack.host, mailstack.ports["submission"], local_hostname="c.test"
        ) as c:
            c.ehlo()
            assert not c.has_extn("auth")
            assert c.has_extn("starttls")

    def test_wrong_password_refused(self, mailstack: MailStack) -> None:
        """AUTH and IMAP login with a wrong password fail."""
        user = fresh(mailstack, "wrong")
        assert smtp_auth_code(mailstack, user, "not-the-password") == 535
        assert not imap_login_ok(mailstack, user, "not-the-password")

    def test_disabled_mailbox_cannot_log_in_or_receive(self, mailstack: MailStack) -> None:
        """A disabled mailbox is refused at login and its address at RCPT."""
        user = fresh(mailstack, "off")
        assert imap_login_ok(mailstack, user, PW)
        assert mailstack.cli("mailbox", "disable", user).exit_code == 0
        assert not imap_login_ok(mailstack, user, PW)
        assert smtp_auth_code(mailstack, user, PW) == 535
        with smtplib.SMTP(
            mailstack.host, mailstack.ports["smtp"], local_hostname="mx.example.net"
        ) as c:
            c.ehlo()
            c.mail("x@example.net")
            assert c.rcpt(user)[0] == 550

    def test_expired_temporary_password_refused_everywhere_until_changed(
        self, mailstack: MailStack
    ) -> None:
        """An expired temporary password fails IMAP, POP3 and SMTP AUTH; a changed one works."""
        user = fresh(mailstack, "temp")
        mailstack.sql(
            "UPDATE mailboxes SET must_change = :t, temp_password_expires_at = :past "
            "WHERE address = :a",
            t=True,
            past=int(time.time()) - 60,
            a=user,
        )
        assert not imap_login_ok(mailstack, user, PW)
        assert not pop3_login_ok(mailstack, user, PW)
        assert smtp_auth_code(mailstack, user, PW) == 535
        changed = mailstack.cli(
            "mailbox", "passwd", user, "--password-stdin", input="N3w-Secret-pass\n"
        )
        assert changed.exit_code == 0, changed.output
        assert imap_login_ok(mailstack, user, "N3w-Secret-pass")
        assert pop3_login_ok(mailstack, user, "N3w-Secret-pass")
        assert smtp_auth_code(mailstack, user, "N3w-Secret-pass") == 235

    def test_unexpired_temporary_password_opens_no_mail_client(self, mailstack: MailStack) -> None:
        """With the default temporary_login = "portal" even an unexpired temporary password
        is refused (test_temporary_login.py checks the reason and "until-expiry")."""
        user = f"fresh{uuid.uuid4().hex[:6]}@{mailstack.domain}"
        mailstack.add_mailbox(user, PW, "--temporary")
        assert not imap_login_ok(mailstack, user, PW)


class TestAliases:
    def test_multi_destination_alias_delivers_to_each(self, mailstack: MailStack) -> None:
        """An alias with two destinations delivers one copy to each mailbox."""
        a, b = fresh(mailstack, "ma"), fresh(mailstack, "mb")
        team = f"team{uuid.uuid4().hex[:6]}@{mailstack.domain}"
        assert mailstack.cli("alias", "add", team, a, b).exit_code == 0
        subj = subject()
        inbound(mailstack, message("x@example.net", team, subj))
        assert subj.encode() in imap_read(mailstack, a, subj)
        assert subj.encode() in imap_read(mailstack, b, subj)

    def test_catch_all_takes_unknown_but_never_existing_addresses(
        self, mailstack: MailStack
    ) -> None:
        """The catch-all gets mail for unknown addresses, never a mailbox's or an alias's."""
        domain = f"c{uuid.uuid4().hex[:6]}.test"
        assert mailstack.cli("domain", "add", domain).exit_code == 0
        owner = f"owner@{domain}"
        other = f"other@{domain}"
        mailstack.add_mailbox(owner, PW)
        mailstack.add_mailbox(other, PW)
        assert mailstack.cli("alias", "add", f"sales@{domain}", other).exit_code == 0
        assert mailstack.cli("alias", "add", f"@{domain}", owner).exit_code == 0
        s_unknown, s_box, s_tag, s_alias = subject(), subject(), subject(), subject()
        inbound(mailstack, message("x@example.net", f"random@{domain}", s_unknown))
        inbound(mailstack, message("x@example.net", other, s_box))
        inbound(mailstack, message("x@example.net", f"other+news@{domain}", s_tag))
        inbound(mailstack, message("x@example.net", f"sales@{domain}", s_alias))
        assert s_unknown.encode() in imap_read(mailstack, owner, s_unknown)
        for subj in (s_box, s_tag, s_alias):
            assert subj.encode() in imap_read(mailstack, other, subj)
        time.sleep(0.3)

        async def owner_has(subj: str) -> bool:
            return await _imap_fetch(mailstack, owner, PW, subj) is not None

        assert [asyncio.run(owner_has(s)) for s in (s_box, s_tag, s_alias)] == [False, False, False]


class TestSenderLogin:
    def test_user_cannot_send_as_another_users_address(self, mailstack: MailStack) -> None:
        """A logged-in user gets 553 for another user's address as envelope sender."""
        alice, bob = fresh(mailstack, "sa"), fresh(mailstack, "sb")
        with smtplib.SMTP(
            mailstack.host, mailstack.ports["submission"], local_hostname="c.test"
        ) as c:
            c.starttls(context=mailstack.tls_context())
            c.login(alice, PW)
            code, text = c.mail(bob)
            if code == 250:
                code, text = c.rcpt(alice)
        assert code == 553, text
        assert b"not owned by user" in text

    def test_user_may_send_as_alias_delivered_to_them(self, mailstack: MailStack) -> None:
        """An alias that delivers to the user is an allowed envelope sender."""
        alice = fresh(mailstack, "sc")
        alias = f"sales{uuid.uuid4().hex[:6]}@{mailstack.domain}"
        assert mailstack.cli("alias", "add", alias, alice).exit_code == 0
        subj = subject()
        submit(mailstack, alice, message(alias, alice, subj))
        assert subj.encode() in imap_read(mailstack, alice, subj)


class TestQuota:
    def test_over_quota_is_refused_at_rcpt(self, mailstack: MailStack) -> None:
        """A message bigger than the mailbox's quota is refused with 552 before it is accepted."""
        small = f"small{uuid.uuid4().hex[:6]}@{mailstack.domain}"
        mailstack.add_mailbox(small, PW, "--quota", "10K")
        big = message("x@example.net", small, subject(), "x" * 20_000)
        with (
            smtplib.SMTP(
                mailstack.host, mailstack.ports["smtp"], local_hostname="mx.example.net"
            ) as c,
            pytest.raises(smtplib.SMTPRecipientsRefused) as refused,
        ):
            c.send_message(big)
        code, text = refused.value.recipients[small]
        assert code == 552, text
        assert b"over quota" in text
        fits = subject()
        inbound(mailstack, message("x@example.net", small, fits, "tiny"))
        assert fits.encode() in imap_read(mailstack, small, fits)
