"""The owner's spam settings without I/O: the effective value is the mailbox's, else the
domain's, else the site's; thresholds are checked (above 0, two decimals, below the reject
score) where the CLI, the API and the site config take them; hundredths for Sieve."""

from __future__ import annotations

import math

import pytest

from mailprov.errors import ConfigInvalid, InvalidValue
from mailprov.rules.spam import SpamLevel, check_threshold, hundredths, resolve
from mailprov.settings import load_settings

SITE = SpamLevel(6.0, True)


@pytest.mark.parametrize(
    ("mailbox", "domain", "expected"),
    [
        (SpamLevel(), SpamLevel(), (6.0, True, "site", "site")),
        (SpamLevel(), SpamLevel(8.5, False), (8.5, False, "domain", "domain")),
        (SpamLevel(3.0), SpamLevel(8.5, False), (3.0, False, "mailbox", "domain")),
        (SpamLevel(None, True), SpamLevel(8.5, False), (8.5, True, "domain", "mailbox")),
        (SpamLevel(2.25, False), SpamLevel(), (2.25, False, "mailbox", "mailbox")),
    ],
)
def test_resolve_takes_the_nearest_level_that_sets_a_value(
    mailbox: SpamLevel, domain: SpamLevel, expected: tuple[object, ...]
) -> None:
    """Each value comes from the mailbox, else the domain, else the site — independently."""
    got = resolve(mailbox, domain, SITE)
    assert (got.threshold, got.to_junk, got.threshold_from, got.to_junk_from) == expected


def test_resolve_needs_the_site_to_set_both() -> None:
    """The site level decides last, so it must set both values."""
    with pytest.raises(ValueError, match="site level"):
        resolve(SpamLevel(), SpamLevel(), SpamLevel(6.0, None))


@pytest.mark.parametrize(
    ("given", "kept"), [(0.01, 0.01), (6, 6.0), ("5.25", 5.25), (14.99, 14.99)]
)
def test_thresholds_accepted(given: object, kept: float) -> None:
    """Numbers above 0 with at most two decimals, below the reject score, are kept."""
    assert check_threshold(given, below=15.0) == kept


@pytest.mark.parametrize(
    ("given", "why"),
    [
        (0, "out of range"),
        (-1, "out of range"),
        (1001, "out of range"),
        (math.nan, "out of range"),
        (math.inf, "out of range"),
        (5.125, "two decimals"),
        (15, "not below the reject score"),
        (20, "not below the reject score"),
        ("six", "not a number"),
        (True, "must be a number"),
        (None, "must be a number"),
    ],
)
def test_thresholds_refused(given: object, why: str) -> None:
    """Everything else is refused with a message saying what is wrong."""
    with pytest.raises(InvalidValue, match=why):
        check_threshold(given, below=15.0)


def test_hundredths_are_whole_numbers() -> None:
    """Sieve compares whole numbers: 6.5 -> 650, 0.29 -> 29 (no float truncation)."""
    assert [hundredths(t) for t in (6.5, 0.29, 0.01, 14.99)] == [650, 29, 1, 1499]


def test_site_defaults_are_checked_where_the_config_loads() -> None:
    """[rspamd] spam_threshold obeys the owners' rules, against the site's reject score."""
    base = {"MAILPROV_CONFIG": ""}
    loaded = load_settings(env={**base, "MAILPROV_RSPAMD_SPAM_THRESHOLD": "4.5"})
    assert (loaded.rspamd.spam_threshold, loaded.rspamd.spam_to_junk) == (4.5, True)
    for value, why in (("15", "reject score"), ("5.555", "two decimals"), ("0", "out of range")):
        with pytest.raises(ConfigInvalid, match=why):
            load_settings(env={**base, "MAILPROV_RSPAMD_SPAM_THRESHOLD": value})
    with pytest.raises(ConfigInvalid, match="reject score"):
        load_settings(
            env={**base, "MAILPROV_RSPAMD_REJECT_SCORE": "5", "MAILPROV_RSPAMD_SPAM_THRESHOLD": "6"}
        )
