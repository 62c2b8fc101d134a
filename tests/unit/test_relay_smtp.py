"""The relay's SMTP protocol shortcuts give exactly what aiosmtpd itself gives."""

from __future__ import annotations

import asyncio

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given
from hypothesis import strategies as st

from mailprov.relay.smtp import RelaySMTP

ADDRESSES = [
    "<a@b.test>",
    "<a@b.test> SIZE=100",
    "<a@b.test>  BODY=8BITMIME SMTPUTF8",
    "<A.B+c@x-y.test>",
    "<>",
    '<"q s"@b.test>',
    "<a..b@c.test>",
    "<.a@b.test>",
    "<a@b.test>SIZE=1",
    "a@b.test",
    "<@route:a@b.test>",
    "<jürgen@b.test>",
    "<a@[127.0.0.1]>",
    "<a@b.test",
    "<a b@c.test>",
    "",
]


def parse_both(arg: str) -> tuple[object, object]:
    """(aiosmtpd's result, the relay's result) for one MAIL/RCPT argument."""

    async def run() -> tuple[object, object]:
        class Handler:
            pass

        plain = SMTP(Handler(), hostname="t")
        assert isinstance(plain, SMTP)
        return SMTP._getaddr(plain, arg), RelaySMTP._getaddr(plain, arg)  # type: ignore[arg-type]

    return asyncio.run(run())


@pytest.mark.parametrize("arg", ADDRESSES)
def test_fast_address_parser_agrees_with_aiosmtpd(arg: str) -> None:
    """For every form, the fast path returns what aiosmtpd's own parser returns."""
    slow, fast = parse_both(arg)
    assert slow == fast


@given(st.from_regex(r"\A<[a-zA-Z0-9.+_-]{1,12}@[a-z0-9.-]{1,12}>( [A-Z]{1,5}=[0-9]{1,3})?\Z"))
def test_fast_address_parser_agrees_on_generated_paths(arg: str) -> None:
    """Generated angle-bracket paths with parameters parse the same both ways."""
    slow, fast = parse_both(arg)
    assert slow == fast
