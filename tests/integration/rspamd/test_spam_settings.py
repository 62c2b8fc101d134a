"""The owner's spam settings on the real stack (Postfix + rspamd + Redis + Dovecot/Pigeonhole):
mail rspamd scores at or above the owner's threshold, but below the reject score, is
delivered into Junk when "move to Junk" is on and into the inbox when it is off; a changed
threshold counts from the next message (no new render); a domain's default applies to a
mailbox with none of its own.

rspamd's score of the test message is read from a first delivery (X-Spam-Status), and the
thresholds are set around it, so the test does not depend on rspamd's symbol weights.
"""

from __future__ import annotations

import email
import imaplib
import smtplib
import time
import uuid
from email.message import Message

import pytest

from mailprov.rules.spam import SCORE_HEADER
from mailprov.services import filters
from mailprov.settings import load_settings
from mailprov.store import open_store
from tests.integration.render.test_render_stack import PW, fresh, message, submit
from tests.integration.stack import MailStack

pytestmark = [pytest.mark.requires_postfix, pytest.mark.requires_dovecot]

#: "The internet" (rspamd checks SPF against it; no domain's SPF names it).
SOURCE = "127.0.0.3"


def _spam(to: str, subject: str, extra: str = "") -> bytes:
    """A message with what spam often has: no Date, no Message-ID, a shouting subject and
    a sender whose domain nobody publishes; rspamd scores it above 0 but far below reject."""
    return (
        f"From: WINNER <prize@lottery.invalid>\r\nTo: {to}\r\n{extra}"
        f"Subject: YOU HAVE WON A PRIZE {subject}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        "<html><body><p>CLICK HERE NOW to claim your prize!!!</p></body></html>\r\n"
    ).encode()


def _send(stack: MailStack, to: str, subject: str, extra: str = "") -> None:
    with smtplib.SMTP(
        stack.host,
        stack.ports["smtp"],
        local_hostname="mx.lottery.invalid",
        source_address=(SOURCE, 0),
        timeout=30,
    ) as c:
        c.sendmail("prize@lottery.invalid", [to], _spam(to, subject, extra))


def landed(
    stack: MailStack,
    user: str,
    subject: str,
    wait: float = 15.0,
    folders: tuple[str, ...] = ("INBOX", "Junk"),
) -> tuple[str, Message]:
    """The folder (of ``folders``) the message with ``subject`` was delivered into, and it."""
    deadline = time.monotonic() + wait
    while True:
        with imaplib.IMAP4_SSL(
            stack.host, stack.ports["imaps"], ssl_context=stack.tls_context(), timeout=10
        ) as imap:
            imap.login(user, PW)
            for folder in folders:
                if imap.select(folder, readonly=True)[0] != "OK":
                    continue  # not made (yet)
                _, found = imap.search(None, "SUBJECT", f'"{subject}"')
                if found[0]:
                    _, data = imap.fetch(found[0].split()[-1], "(RFC822)")
                    raw = data[0][1]
                    assert isinstance(raw, bytes)
                    return folder, email.message_from_bytes(raw)
        if time.monotonic() > deadline:
            raise AssertionError(f"{subject!r} never reached {user}\n{stack.log()[-2500:]}")
        time.sleep(0.2)


def _deliver(
    stack: MailStack, to: str, extra: str = "", folders: tuple[str, ...] = ("INBOX", "Junk")
) -> tuple[str, Message]:
    subject = uuid.uuid4().hex[:10]
    _send(stack, to, subject, extra)
    return landed(stack, to, subject, folders=folders)


def _set(stack: MailStack, *args: str) -> None:
    status, doc = stack.cli.json(*args)
    assert status == 0, doc


@pytest.fixture(scope="module", name="score")
def fixture_score(rspamd_stack: MailStack) -> float:
    """rspamd's score of the test message, read from a delivery into the inbox."""
    to = fresh(rspamd_stack, "measure")
    _set(rspamd_stack, "mailbox", "set", to, "--no-spam-to-junk")
    folder, got = _deliver(rspamd_stack, to)
    assert folder == "INBOX"
    status = str(got["X-Spam-Status"])
    score = float(status.partition("score=")[2].split()[0])
    # rspamd's integer form of the same score, which Sieve compares.
    assert got[SCORE_HEADER] == str(max(0, round(score * 100))), got.items()
    assert 2.0 <= score < 15.0, status  # above a junk threshold, below [rspamd] reject_score
    return score


def test_spam_goes_to_junk_with_move_on_and_to_the_inbox_with_it_off(
    rspamd_stack: MailStack, score: float
) -> None:
    """Scored at or above the owner's threshold: Junk with "move to Junk" on, INBOX with it off."""
    on, off = fresh(rspamd_stack, "junkon"), fresh(rspamd_stack, "junkoff")
    threshold = str(int(score) - 1)
    _set(rspamd_stack, "mailbox", "set", on, "--spam-threshold", threshold, "--spam-to-junk")
    _set(rspamd_stack, "mailbox", "set", off, "--spam-threshold", threshold, "--no-spam-to-junk")
    folder, got = _deliver(rspamd_stack, on)
    assert folder == "Junk", got.items()
    assert _deliver(rspamd_stack, off)[0] == "INBOX"


def test_a_new_threshold_counts_from_the_next_message(
    rspamd_stack: MailStack, score: float
) -> None:
    """Raising the threshold above the score keeps the next message in the inbox, lowering
    it again junks the one after: Dovecot asks the store at each delivery, nothing re-renders."""
    to = fresh(rspamd_stack, "change")
    conf = rspamd_stack.target / "dovecot" / "dovecot-sql.conf.ext"
    rendered = conf.stat().st_mtime_ns
    _set(rspamd_stack, "mailbox", "set", to, "--spam-threshold", f"{score + 1:.2f}")
    assert _deliver(rspamd_stack, to)[0] == "INBOX"
    _set(rspamd_stack, "mailbox", "set", to, "--spam-threshold", f"{score:.2f}")
    assert _deliver(rspamd_stack, to)[0] == "Junk"  # "at or above"
    assert conf.stat().st_mtime_ns == rendered


def test_the_domains_default_applies_to_a_mailbox_without_its_own(
    rspamd_stack: MailStack, score: float
) -> None:
    """A domain's threshold and "move to Junk" apply to its mailboxes that set none; a
    mailbox's own value still wins."""
    domain = f"d{uuid.uuid4().hex[:6]}.test"
    _set(rspamd_stack, "domain", "add", domain)
    plain, own = f"plain@{domain}", f"own@{domain}"
    rspamd_stack.add_mailbox(plain, PW)
    rspamd_stack.add_mailbox(own, PW)
    _set(rspamd_stack, "mailbox", "set", own, "--no-spam-to-junk")
    # The site's default (6.0, on) may or may not junk it; the domain's settles it.
    _set(rspamd_stack, "domain", "set", domain, "--spam-threshold", f"{score + 1:.2f}")
    assert _deliver(rspamd_stack, plain)[0] == "INBOX"
    _set(rspamd_stack, "domain", "set", domain, "--spam-threshold", "1", "--spam-to-junk")
    assert _deliver(rspamd_stack, plain)[0] == "Junk"
    assert _deliver(rspamd_stack, own)[0] == "INBOX"


def test_the_owners_own_filters_run_first(rspamd_stack: MailStack, score: float) -> None:
    """A rule of the owner's that moves the message decides where it goes; the spam rule
    only files what the owner's script leaves for the inbox."""
    to = fresh(rspamd_stack, "rules")
    _set(rspamd_stack, "mailbox", "set", to, "--spam-threshold", "1", "--spam-to-junk")
    settings = load_settings(config_file=str(rspamd_stack.config_file), env={}, flags={})
    store = open_store(rspamd_stack.store_url)
    try:
        rule = {"field": "subject", "contains": "PRIZE", "action": "move", "folder": "Prizes"}
        filters.save_forms(store, settings, to, {"rules": [rule]}, now=int(time.time()))
    finally:
        store.close()
    folder, got = _deliver(rspamd_stack, to, folders=("INBOX", "Junk", "Prizes"))
    assert folder == "Prizes", got.items()
    assert float(got[SCORE_HEADER]) >= 100  # it is spam by the owner's threshold


def test_spam_a_mark_read_rule_keeps_goes_into_junk_once(
    rspamd_stack: MailStack, score: float
) -> None:
    """A rule that only marks the message read keeps it for the inbox (an explicit keep);
    being spam, it is filed into Junk instead, marked read, and not into the inbox too."""
    to = fresh(rspamd_stack, "markread")
    _set(rspamd_stack, "mailbox", "set", to, "--spam-threshold", f"{score:.2f}")
    settings = load_settings(config_file=str(rspamd_stack.config_file), env={}, flags={})
    store = open_store(rspamd_stack.store_url)
    try:
        rule = {"field": "subject", "contains": "PRIZE", "action": "mark-read"}
        filters.save_forms(store, settings, to, {"rules": [rule]}, now=int(time.time()))
    finally:
        store.close()
    subject = uuid.uuid4().hex[:10]
    _send(rspamd_stack, to, subject)
    assert landed(rspamd_stack, to, subject)[0] == "Junk"  # INBOX is looked at first
    with imaplib.IMAP4_SSL(
        rspamd_stack.host, rspamd_stack.ports["imaps"], ssl_context=rspamd_stack.tls_context()
    ) as imap:
        imap.login(to, PW)
        imap.select("Junk", readonly=True)
        _, seen = imap.search(None, "SEEN", "SUBJECT", f'"{subject}"')
        assert seen[0], "filed into Junk without the rule's \\Seen"


def test_a_score_header_from_the_sender_is_replaced(rspamd_stack: MailStack, score: float) -> None:
    """A sender's own X-Spam-Score-Hundredths: 0 is removed; rspamd's one decides."""
    to = fresh(rspamd_stack, "forged")
    _set(rspamd_stack, "mailbox", "set", to, "--spam-threshold", "1")
    folder, got = _deliver(rspamd_stack, to, extra=f"{SCORE_HEADER}: 0\r\n")
    assert folder == "Junk", got.items()
    assert got.get_all(SCORE_HEADER) == [str(round(score * 100))]


def test_our_own_users_mail_is_never_filed_as_junk(rspamd_stack: MailStack) -> None:
    """Mail a logged-in user sends (submission) carries no score header, not even one the
    sender wrote, so it reaches a local owner's inbox whatever the threshold."""
    sender, to = fresh(rspamd_stack, "sender"), fresh(rspamd_stack, "local")
    _set(rspamd_stack, "mailbox", "set", to, "--spam-threshold", "0.01", "--spam-to-junk")
    subject = uuid.uuid4().hex[:10]
    msg = message(sender, to, subject)
    msg[SCORE_HEADER] = "99999"
    submit(rspamd_stack, sender, msg)
    folder, got = landed(rspamd_stack, to, subject)
    assert folder == "INBOX"
    assert got.get_all(SCORE_HEADER) is None, got.items()


def test_no_sieve_errors_at_delivery(rspamd_stack: MailStack, score: float) -> None:
    """Pigeonhole compiled the global rule into the mail homes: the log has no sieve error
    (a binary it could not save would be one at every delivery)."""
    del score  # some deliveries happened
    errors = [
        line
        for line in rspamd_stack.log().splitlines()
        if "Error:" in line and "sieve" in line.lower()
    ]
    assert errors == []
