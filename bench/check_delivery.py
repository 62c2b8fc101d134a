"""``mailprov check delivery`` round trip on the rendered stack vs a hand-written probe.

Both run against the same rendered Postfix + Dovecot (SQLite store), the same
mailbox and the same ports. Baseline: stdlib smtplib (STARTTLS + AUTH on
submission) and imaplib (IMAPS, UID SEARCH polled every 50 ms, then delete),
the least a person could script. Measured: the ``check delivery`` service
(aiosmtplib + aioimaplib, the same steps) called in-process. Goal: mailprov's
round trip <= 1.2x the baseline's.

Usage: .venv/bin/python bench/check_delivery.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import imaplib
import shutil
import smtplib
import statistics
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailprov.model import Secret
from mailprov.services.checks import check_delivery
from mailprov.settings import load_settings
from tests.integration.stack import MailStack, start_stack

PW = "Quiet-Harbor-Trip-7"
ADDRESS = "bench@example.test"


def baseline(stack: MailStack) -> float:
    """One hand-written round trip in ms."""
    tag = uuid.uuid4().hex
    msg = EmailMessage()
    msg["From"] = msg["To"] = ADDRESS
    msg["Subject"] = f"probe {tag}"
    msg["X-Probe"] = tag
    msg.set_content("probe\n")
    ctx = stack.tls_context()
    start = time.perf_counter()
    with smtplib.SMTP(stack.host, stack.ports["submission"], timeout=30) as smtp:
        smtp.starttls(context=ctx)
        smtp.login(ADDRESS, PW)
        smtp.send_message(msg)
    imap = imaplib.IMAP4_SSL(stack.host, stack.ports["imaps"], ssl_context=ctx)
    try:
        imap.login(ADDRESS, PW)
        while True:
            imap.select("INBOX")
            _, data = imap.uid("SEARCH", "HEADER", "X-Probe", tag)
            if data and data[0]:
                elapsed = (time.perf_counter() - start) * 1000
                break
            time.sleep(0.05)
        imap.uid("STORE", data[0].decode().replace(" ", ","), "+FLAGS.SILENT", r"(\Deleted)")
        imap.expunge()
    finally:
        imap.logout()
    return elapsed


def main() -> None:
    """Run both probes alternately and print medians and the ratio."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    store = tempfile.mkdtemp(prefix="mp-bench-store-")
    stack = start_stack(f"sqlite:///{store}/s.sqlite", name="bc")
    try:
        stack.add_mailbox(ADDRESS, PW)
        settings = load_settings(config_file=stack.config_file, env={})
        base_ms, ours_ms, submit_ms = [], [], []
        for _ in range(args.rounds):
            base_ms.append(baseline(stack))
            start = time.perf_counter()
            result = check_delivery(settings, ADDRESS, Secret(PW))
            ours_ms.append((time.perf_counter() - start) * 1000)
            submit_ms.append(result.submit_ms)
            assert result.deleted
        b, o = statistics.median(base_ms), statistics.median(ours_ms)
        print(f"rounds: {args.rounds}")
        print(f"baseline smtplib+imaplib round trip, median: {b:.1f} ms")
        print(f"check delivery (whole call) median:           {o:.1f} ms")
        print(
            f"  of which submission (connect..QUIT) median:  {statistics.median(submit_ms):.1f} ms"
        )
        print(f"ratio check delivery / baseline: {o / b:.2f} (goal <= 1.2)")
    finally:
        stack.stop()
        shutil.rmtree(stack.root, ignore_errors=True)
        shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
