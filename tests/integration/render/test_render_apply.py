"""``mailprov apply`` end to end on the running stack: declared mailboxes receive mail, a changed
state (quota, a new alias, a pruned mailbox) is live at once, and --deploy installs once."""

from __future__ import annotations

import json
import smtplib
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.render.test_render_stack import PW, imap_read, inbound, message, subject
from tests.integration.stack import MailStack

pytestmark = [pytest.mark.requires_postfix, pytest.mark.requires_dovecot]


def current_state(stack: MailStack) -> dict[str, Any]:
    """The stack's store as a state (with hashes): other tests' objects stay declared."""
    result = stack.cli("export", "--with-hashes", "--format", "json")
    assert 0 == result.exit_code, result.output
    return dict(json.loads(result.stdout))


def apply(stack: MailStack, doc: dict[str, Any], *args: str) -> dict[str, Any]:
    """apply the document (JSON on stdin) with ``args``; the parsed result."""
    status, out = stack.cli.json("apply", "-", "--format", "json", *args, input=json.dumps(doc))
    assert 0 == status, out
    return dict(out)


def files(target: Path) -> dict[str, tuple[int, int]]:
    """mtime and inode of every installed file (what 'no file touched' means)."""
    return {
        str(p): (p.lstat().st_mtime_ns, p.lstat().st_ino)
        for p in sorted(target.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


def test_declared_site_is_live(mailstack: MailStack) -> None:
    """Apply, deliver, apply a changed state with --prune: quota, alias and removal are live."""
    from mailprov.rules.hashing import hash_password

    tag = uuid.uuid4().hex[:6]
    domain = mailstack.domain
    alice, bob = f"alice{tag}@{domain}", f"bob{tag}@{domain}"
    info, sales = f"info{tag}@{domain}", f"sales{tag}@{domain}"
    digest = hash_password(PW, "SHA512-CRYPT")
    doc = current_state(mailstack)
    doc["mailboxes"][alice] = {"name": "Alice", "quota": "1G", "password_hash": digest}
    doc["mailboxes"][bob] = {"password_hash": digest}
    doc["aliases"][info] = {"destinations": [alice]}
    done = apply(mailstack, doc, "--prune")
    assert {"create": 3, "update": 0, "delete": 0} == done["plan"]["summary"]

    subj = subject()
    inbound(mailstack, message("x@example.net", info, subj, "hello"))
    assert subj.encode() in imap_read(mailstack, alice, subj)

    doc = current_state(mailstack)
    doc["mailboxes"][alice]["quota"] = "10K"
    doc["aliases"][sales] = {"destinations": [alice]}
    del doc["mailboxes"][bob]
    planned = apply(mailstack, doc, "--prune", "--check")["plan"]["changes"]
    assert [
        ("mailbox", alice, "update"),
        ("alias", sales, "create"),
        ("mailbox", bob, "delete"),
    ] == [(c["kind"], c["key"], c["action"]) for c in planned]
    assert {"before": "1G", "after": "10K"} == planned[0]["attributes"]["quota"]
    assert apply(mailstack, doc, "--prune")["changed"]

    with smtplib.SMTP(
        mailstack.host, mailstack.ports["smtp"], local_hostname="mx.example.net"
    ) as c:
        big = message("x@example.net", alice, subject(), "x" * 20_000)
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            c.send_message(big)
        assert 552 == refused.value.recipients[alice][0]
    with smtplib.SMTP(
        mailstack.host, mailstack.ports["smtp"], local_hostname="mx.example.net"
    ) as c:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            c.send_message(message("x@example.net", bob, subject()))
        assert 550 == refused.value.recipients[bob][0]
    subj = subject()
    inbound(mailstack, message("x@example.net", sales, subj, "small"))
    assert subj.encode() in imap_read(mailstack, alice, subj)
    assert not apply(mailstack, doc, "--prune")["changed"]


def test_deploy_installs_once(mailstack: MailStack) -> None:
    """--deploy: a new domain's web files go in through deploy apply; a re-run touches nothing."""
    doc = current_state(mailstack)
    doc["domains"][f"apply{uuid.uuid4().hex[:6]}.test"] = {}
    target = str(mailstack.target)
    first = apply(mailstack, doc, "--deploy", "--target", target)
    assert first["changed"] and first["deploy"]["changed"], first
    assert any("autoconfig" in p or "mta-sts" in p for p in first["deploy"]["written"]), first
    before = files(mailstack.target)
    again = apply(mailstack, doc, "--deploy", "--target", target, "--detailed-exitcode")
    assert (False, False, []) == (
        again["changed"],
        again["deploy"]["changed"],
        again["deploy"]["written"],
    )
    assert before == files(mailstack.target)
