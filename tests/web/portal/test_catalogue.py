"""The portal's two languages: the Russian catalogue is complete and compiled, the sources
hold no message it lacks, plurals and dates come out right, and the language is chosen from
the switch's cookie or Accept-Language."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from mailprov.web.portal import i18n
from tests.web.portal.conftest import REPO

LOCALE = REPO / "mailprov" / "web" / "portal" / "locale"
PO = LOCALE / "ru" / "LC_MESSAGES" / "messages.po"
MO = LOCALE / "ru" / "LC_MESSAGES" / "messages.mo"


def _catalogue() -> dict[object, object]:
    with PO.open("rb") as f:
        return {m.id: m.string for m in read_po(f) if m.id}


def _messages(catalogue: object) -> dict[object, object]:
    """id -> translation of a catalogue read back from a .mo (plural ids as tuples)."""

    def frozen(value: object) -> object:
        return tuple(value) if isinstance(value, list | tuple) else value

    return {frozen(m.id): frozen(m.string) for m in catalogue if m.id}  # type: ignore[attr-defined]


def _source_messages() -> set[object]:
    """Every message the templates and the portal's Python mark, as 'make messages' finds them."""
    method_map = [
        ("mailprov/web/portal/**.py", "python"),
        ("templates/portal/**.html", "jinja2"),
    ]
    options = {"templates/portal/**.html": {"extensions": "jinja2.ext.i18n"}}
    found: set[object] = set()
    for _, _, message, _, _ in extract_from_dir(
        str(REPO),
        method_map,
        options,
        keywords={"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)},
    ):
        found.add(message)
    return found


def test_every_message_is_translated_and_none_is_stale() -> None:
    """Each message of the sources has a Russian translation (no fuzzy, no empty), and the
    catalogue holds nothing the sources no longer say."""
    catalogue = _catalogue()
    with PO.open("rb") as f:
        po = read_po(f)
    untranslated = [
        m.id
        for m in po
        if m.id and (m.fuzzy or not all(m.string if isinstance(m.string, tuple) else [m.string]))
    ]
    assert untranslated == []
    assert _source_messages() == set(catalogue)


def test_the_shipped_mo_is_the_compiled_po() -> None:
    """messages.mo holds exactly what compiling messages.po gives (run 'make messages')."""
    with PO.open("rb") as f:
        po = read_po(f)
    compiled = io.BytesIO()
    write_mo(compiled, po)
    compiled.seek(0)
    with MO.open("rb") as f:
        shipped = read_mo(f)
    rebuilt = read_mo(compiled)
    assert _messages(rebuilt) == _messages(shipped)
    assert len(_messages(shipped)) == len(_catalogue())


@pytest.mark.parametrize(
    ("count", "words"),
    [
        (1, "Осталась 1 попытка."),
        (2, "Осталось 2 попытки."),
        (4, "Осталось 4 попытки."),
        (5, "Осталось 5 попыток."),
        (11, "Осталось 11 попыток."),
        (21, "Осталась 21 попытка."),
        (22, "Осталось 22 попытки."),
        (0, "Осталось 0 попыток."),
    ],
)
def test_russian_plurals(count: int, words: str) -> None:
    """Russian has three plural forms; the catalogue's rule picks the right one."""
    ru = i18n.translations("ru")
    assert words == ru.ngettext("%(num)d attempt left.", "%(num)d attempts left.", count) % {
        "num": count
    }


def test_dates_and_addresses_in_each_language() -> None:
    """Dates in each language's own form (Russian months in the genitive), in UTC; IDN domains
    in Unicode."""
    moment = int(datetime(2026, 11, 30, 14, 5, tzinfo=UTC).timestamp())
    assert "30 Nov 2026, 14:05 UTC" == i18n.format_datetime(moment, "en")
    russian = "30 ноября 2026 г., 14:05 UTC"  # noqa: RUF001  (Russian on purpose)
    assert russian == i18n.format_datetime(moment, "ru")
    assert russian == i18n.format_datetime("2026-11-30T14:05:00Z", "ru")
    assert "ivan@пример.рф" == i18n.display_address("ivan@xn--e1afmkfd.xn--p1ai")
    assert "" == i18n.format_datetime(None, "en")


@pytest.mark.parametrize(
    ("cookie", "header", "lang"),
    [
        (None, "ru-RU,ru;q=0.9,en;q=0.8", "ru"),
        (None, "de-DE,de;q=0.9,ru;q=0.5,en;q=0.3", "ru"),
        (None, "en-US,en;q=0.9,ru;q=0.8", "en"),
        (None, "ru;q=0,en", "en"),
        (None, "fr, *", "en"),
        (None, "", "en"),
        ("ru", "en", "ru"),
        ("en", "ru", "en"),
        ("xx", "ru", "ru"),
    ],
)
def test_language_negotiation(cookie: str | None, header: str, lang: str) -> None:
    """The switch's cookie wins; otherwise the most wanted language of Accept-Language we
    speak; otherwise English."""
    assert lang == i18n.negotiate(cookie, header)
