"""Learning from the owner's moves on the real stack: Dovecot's IMAPSieve pipes a message
moved into Junk to rspamd as spam, and one moved out of Junk (not to Trash) as ham;
``rspamc stat`` shows Bayes' learned counts change."""

from __future__ import annotations

import imaplib
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.integration.filters import test_filters_stack as filters
from tests.integration.render.test_render_stack import PW, fresh, imap_read, inbound, message
from tests.integration.stack import MailStack

#: Words enough for Bayes to take the message (rspamd skips messages with few tokens).
BODY = (
    "Dear friend, our exclusive offer on certified replica watches and discount pharmacy "
    "products ends tonight. Click the link below to claim your free bonus, limited stock, "
    "act now, unsubscribe anytime, best prices guaranteed, worldwide shipping included.\n"
)


def stat(stack: MailStack) -> dict[str, int]:
    """``rspamc stat``: the controller's "Messages learned" (``learned``, counted at once)
    and each Bayes statfile's learned count (BAYES_SPAM, BAYES_HAM; rspamd reads those
    from Redis every 30 s or so)."""
    out = subprocess.run(
        ["rspamc", "--connect", f"127.0.0.1:{stack.ports['rspamd_controller']}", "stat"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    counts = {
        m.group(1): int(m.group(2)) for m in re.finditer(r"Statfile: (\w+) .*?learned: (\d+);", out)
    }
    found = re.search(r"Messages learned: (\d+)", out)
    assert found is not None, out
    counts["learned"] = int(found.group(1))
    return counts


def _wait(cond: Callable[[], bool], stack: MailStack, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            dovecot = (stack.root / "log" / "dovecot.log").read_text("utf-8", "replace")
            raise AssertionError(f"{what}: {stat(stack)}\n{dovecot[-3000:]}")
        time.sleep(0.5)


def _keeps_spam_in_inbox(stack: MailStack, user: str) -> str:
    """The owner turns "move spam to Junk" off, so the spammy test mail arrives in INBOX and
    the owner's own moves are what this file tests."""
    status, doc = stack.cli.json("mailbox", "set", user, "--no-spam-to-junk")
    assert status == 0, doc
    return user


def _deliver(stack: MailStack, to: str) -> str:
    subject = f"offer-{uuid.uuid4().hex[:10]}"
    # A body of its own: rspamd refuses to learn a text it has learned already.
    body = f"{BODY}Offer code {uuid.uuid4().hex} for {subject}.\n"
    inbound(stack, message(f"promo@{uuid.uuid4().hex[:6]}.example.net", to, subject, body))
    imap_read(stack, to, subject)
    return subject


def _move(stack: MailStack, user: str, subject: str, source: str, dest: str) -> None:
    """MOVE the message with ``subject`` from ``source`` to ``dest`` over IMAPS."""
    with imaplib.IMAP4_SSL(
        stack.host, stack.ports["imaps"], ssl_context=stack.tls_context(), timeout=30
    ) as imap:
        imap.login(user, PW)
        imap.select(source)
        _, found = imap.uid("SEARCH", "SUBJECT", subject)
        (uid,) = found[0].split()
        status, detail = imap.uid("MOVE", uid.decode(), dest)
        assert status == "OK", detail


def _learns(stack: MailStack, move: Callable[[], None], what: str) -> None:
    """``move`` makes rspamd learn one message (its learned counter goes up by one)."""
    before = stat(stack)["learned"]
    move()
    _wait(lambda: stat(stack)["learned"] == before + 1, stack, what)


def bayes_learns(redis: int) -> tuple[int, int]:
    """The Bayes classifier's learned (spam, ham) counts as rspamd keeps them in its Redis
    (the ``RS`` hash; ``rspamc stat`` shows the same numbers once it re-reads them, every
    30 s or so)."""
    out = subprocess.run(
        ["redis-cli", "-p", str(redis), "HMGET", "RS", "learns_spam", "learns_ham"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout.split("\n")[:2]  # an empty line for a count not there yet
    spam, ham = (int(v) if v.strip().isdigit() else 0 for v in out)
    return spam, ham


def test_moving_into_junk_learns_spam_and_out_of_junk_learns_ham(
    rspamd_stack: MailStack, redis: int
) -> None:
    """Into Junk: learned as spam; out of Junk to INBOX: as ham; Junk to Trash: not at all.
    The Bayes classifier's spam and ham counts in rspamd's Redis count exactly those."""
    stack = rspamd_stack
    spam_before, ham_before = bayes_learns(redis)
    to = _keeps_spam_in_inbox(stack, fresh(stack, "learn"))
    spam, ham, trashed = (_deliver(stack, to) for _ in range(3))
    before = stat(stack)
    assert {"BAYES_SPAM", "BAYES_HAM"} <= before.keys(), before

    _learns(stack, lambda: _move(stack, to, spam, "INBOX", "Junk"), "into Junk: no learning")
    _learns(stack, lambda: _move(stack, to, ham, "INBOX", "Junk"), "into Junk: no learning")
    _learns(stack, lambda: _move(stack, to, ham, "Junk", "INBOX"), "out of Junk: no learning")
    _learns(stack, lambda: _move(stack, to, trashed, "INBOX", "Junk"), "into Junk: no learning")
    counted = stat(stack)["learned"]
    _move(stack, to, trashed, "Junk", "Trash")
    time.sleep(3)
    assert stat(stack)["learned"] == counted, "Junk -> Trash was learned"

    # spam and trashed stay spam; ham was learned as spam, then relearned as ham.
    assert bayes_learns(redis) == (spam_before + 2, ham_before + 1)


def test_an_owners_own_script_cannot_pipe(rspamd_stack: MailStack, tmp_path: Path) -> None:
    """vnd.dovecot.pipe is for mailprov's global scripts only: ManageSieve refuses an
    owner's script that asks for it (a plain one is taken), so no owner can run
    rspamd-learn, or anything else, from Sieve."""
    user = filters.fresh(rspamd_stack, "pipe")  # with the password sieve_connect gives
    piping = tmp_path / "pipe.sieve"
    piping.write_text('require ["vnd.dovecot.pipe"];\npipe "rspamd-learn" ["spam"];\n')
    refused = filters.sieve_connect(
        rspamd_stack, user, "--upload", "--localsieve", str(piping), "--remotesieve", "p"
    )
    assert refused.returncode != 0, refused.stdout
    assert "vnd.dovecot.pipe" in refused.stdout + refused.stderr
    plain = tmp_path / "plain.sieve"
    plain.write_text(
        'require ["fileinto"];\nif header :contains "subject" "x" { fileinto "Junk"; }\n'
    )
    taken = filters.sieve_connect(
        rspamd_stack, user, "--upload", "--localsieve", str(plain), "--remotesieve", "f"
    )
    assert taken.returncode == 0, taken.stderr


def test_moving_into_junk_while_rspamd_is_down_still_moves(rspamd_stack: MailStack) -> None:
    """rspamd stopped: the MOVE into Junk answers OK at once (the pipe is :try) and the
    message is in Junk; nothing is learned, nothing is lost."""
    stack = rspamd_stack
    to = _keeps_spam_in_inbox(stack, fresh(stack, "down"))
    subject = _deliver(stack, to)
    stack.stop_filter()
    try:
        started = time.monotonic()
        _move(stack, to, subject, "INBOX", "Junk")
        took = time.monotonic() - started
    finally:
        stack.start_filter()
    assert took < 5, took
    assert subject.encode() in stack_message(stack, to, "Junk", subject)


def stack_message(stack: MailStack, user: str, folder: str, subject: str) -> bytes:
    """The raw message with ``subject`` in ``folder`` (b"" when it is not there)."""
    with imaplib.IMAP4_SSL(
        stack.host, stack.ports["imaps"], ssl_context=stack.tls_context(), timeout=30
    ) as imap:
        imap.login(user, PW)
        imap.select(folder, readonly=True)
        _, found = imap.uid("SEARCH", "SUBJECT", subject)
        if not found[0]:
            return b""
        _, data = imap.uid("FETCH", found[0].split()[0].decode(), "(RFC822)")
        part = data[0]
        return part[1] if isinstance(part, tuple) else b""
