"""The portal's machinery without a server: signed flash cookies, no secret kept in them,
error words for every error the gate can raise, safe redirect targets."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mailprov.errors import IDG_TABLE
from mailprov.web.portal import core
from mailprov.web.portal.texts import GENERAL, WORDS, explain

PEPPER = b"p" * 32


class _Visit:
    """What :func:`core.flash` reads of a visit."""

    class services:  # stands in for the Services attribute
        pepper = PEPPER


def test_flash_is_signed_and_keeps_no_secret() -> None:
    """A flash cookie reads back only with its signature; password, code, token and handle
    fields are dropped whatever a handler passes."""
    visit: Any = _Visit()
    name, sealed = core.flash(
        visit,
        error={"code": "code-invalid", "attempts_left": 3},
        values={"address": "a@example.test", "password": "hunter2", "code": "123456", "token": "t"},
    )
    assert name == core.FLASH_COOKIE
    data = core._unseal(PEPPER, sealed)
    assert {"address": "a@example.test"} == data["values"]
    assert 3 == data["error"]["attempts_left"]
    payload, _, mac = sealed.partition(".")
    assert {} == core._unseal(PEPPER, payload + "." + "0" * len(mac))
    assert {} == core._unseal(b"q" * 32, sealed)
    assert {} == core._unseal(PEPPER, "not-a-cookie")


@pytest.mark.parametrize("idg", sorted(IDG_TABLE))
def test_every_gate_check_has_words(idg: str) -> None:
    """Every IDG check of the gate gets specific words (its own or its error class's)."""
    cls = IDG_TABLE[idg][0]
    explanation = explain({"code": cls.code, "idg": idg, "request_id": "ABCD-EFGH"})
    assert (explanation.title, explanation.what_to_do) != GENERAL
    assert "ABCD-EFGH" == explanation.request_id


def test_unknown_errors_fall_back_to_general_words() -> None:
    """An error without words of its own still gets a page that names its code."""
    explanation = explain({"code": "something-new"})
    assert GENERAL == (explanation.title, explanation.what_to_do)
    assert "something-new" == explanation.code
    assert "sign-in-failed" in WORDS


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/apply", "/apply"),
        ("/account/password", "/account/password"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
    ],
)
def test_redirects_stay_on_this_site(target: str, expected: str) -> None:
    """Only a path of this site is a place to go back to."""
    assert expected == core.local_path(target)


def test_a_form_sent_twice_runs_once() -> None:
    """Two sendings of one form at the same time run its handler once and both get its
    outcome; a failed sending is forgotten, so the form can be sent again; credentials are
    taken once."""
    import asyncio

    portal = core.Portal(services=None)  # type: ignore[arg-type]
    runs: list[int] = []

    async def handler() -> core.Outcome:
        runs.append(1)
        await asyncio.sleep(0.05)
        return core.Outcome("/application", (("c", "v"),))

    async def failing() -> core.Outcome:
        raise RuntimeError("boom")

    async def main() -> None:
        first, second = await asyncio.gather(
            portal.run_once("k", handler), portal.run_once("k", handler)
        )
        assert first == second == core.Outcome("/application", (("c", "v"),))
        assert [1] == runs
        with pytest.raises(RuntimeError):
            await portal.run_once("f", failing)
        assert "/application" == (await portal.run_once("f", handler)).location

    # In a thread of its own: the browser tests' Playwright keeps a loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, main()).result()
    portal.keep_credentials("ABCD-EFGH", {"login": "a@example.test"})
    assert {"login": "a@example.test"} == portal.take_credentials("ABCD-EFGH")
    assert portal.take_credentials("ABCD-EFGH") is None
