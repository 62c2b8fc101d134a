"""The portal's two languages: which one a visitor gets, its messages, its dates and numbers.

English is the language of the source strings; Russian comes from the Babel message
catalogue ``locale/ru/LC_MESSAGES/messages.po``, compiled to ``messages.mo`` next to
it (``make messages`` extracts, updates and compiles; a test fails when the ``.mo``
is not the compiled ``.po`` or a message lacks its translation). Both files ship in
the wheel, so an installed portal needs no build step.

The language is the visitor's choice (the ``mailprov_lang`` cookie, set by the switch
on every page), else the best match of ``Accept-Language``, else English. Only the
portal speaks Russian: the CLI and the API stay English.
"""

from __future__ import annotations

import gettext
from datetime import UTC, datetime
from functools import cache, lru_cache
from pathlib import Path

import idna
from babel import Locale
from babel.dates import format_datetime as babel_datetime
from babel.support import Translations

LANGUAGES = ("en", "ru")
DEFAULT = "en"
#: How each language names itself (the switch shows the other language in its own words).
NATIVE = {"en": "English", "ru": "Русский"}
LANG_COOKIE = "mailprov_lang"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"


def N_(message: str) -> str:
    """Mark ``message`` for extraction; it is translated where it is shown."""
    return message


def parse_accept_language(header: str) -> list[str]:
    """The languages of an ``Accept-Language`` header, most wanted first (q=0 dropped)."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        tag = tag.strip()
        if tag and quality > 0:
            ranked.append((-quality, index, tag.replace("_", "-")))
    return [tag for _, _, tag in sorted(ranked)]


@lru_cache(maxsize=1024)  # every page asks; browsers send a handful of different headers
def negotiate(cookie: str | None, accept_language: str) -> str:
    """The visitor's language: the switch's cookie, else Accept-Language, else English."""
    if cookie in LANGUAGES:
        return str(cookie)
    preferred = [tag for tag in parse_accept_language(accept_language) if tag != "*"]
    found = Locale.negotiate(preferred, list(LANGUAGES), sep="-")
    return str(found.language) if found is not None else DEFAULT


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalogue of ``lang`` (English: the source strings themselves)."""
    if lang == DEFAULT:
        return gettext.NullTranslations()
    return Translations.load(str(LOCALE_DIR), [lang], DOMAIN)


def _moment(value: int | float | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return datetime.fromtimestamp(value, UTC)


@lru_cache(maxsize=4096)  # pages show the same few moments again and again; Babel is slow
def format_datetime(value: int | float | str | None, lang: str) -> str:
    """A moment as people of ``lang`` write it, in UTC: '30 Nov 2026, 14:05 UTC'."""
    moment = _moment(value)
    if moment is None:
        return ""
    pattern = "d MMM y, HH:mm" if lang == "en" else "d MMMM y 'г.', HH:mm"  # noqa: RUF001  (Russian)
    return babel_datetime(moment, pattern, tzinfo=UTC, locale=lang) + " UTC"


@lru_cache(maxsize=4096)  # IDNA decoding is slow, and pages show the same few domains
def display_domain(domain: str) -> str:
    """A domain in Unicode (``пример.рф``, not the stored A-label ``xn--e1afmkfd.xn--p1ai``)."""
    try:
        return str(idna.decode(domain))
    except (idna.IDNAError, UnicodeError):
        return domain


def display_address(address: str) -> str:
    """An address with its domain in Unicode (``ivan@пример.рф``)."""
    local, at, domain = address.rpartition("@")
    return f"{local}@{display_domain(domain)}" if at else address
