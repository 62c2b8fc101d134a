"""The config line editor keeps what a person wrote and sets only the keys asked for."""

from __future__ import annotations

import tomllib

from mailprov.rules.tomledit import set_keys

TEXT = """# my site
[site]
hostname = "mail.example.test"  # the MX

[tls]
# Let's Encrypt later
cert_file = "/old/cert.pem"

[store]
url = "sqlite:///x"
"""


def test_replaces_a_key_in_its_section_and_keeps_comments() -> None:
    """The key's line changes; every other line, comments included, stays."""
    new = set_keys(TEXT, "tls", {"cert_file": "/new/cert.pem", "key_file": "/new/key.pem"})
    parsed = tomllib.loads(new)
    assert parsed["tls"] == {"cert_file": "/new/cert.pem", "key_file": "/new/key.pem"}
    assert parsed["store"]["url"] == "sqlite:///x"
    assert "# Let's Encrypt later" in new and "# the MX" in new


def test_adds_a_missing_section() -> None:
    """A section that is not there is added at the end."""
    new = set_keys('[site]\nhostname = "a.test"\n', "tls", {"cert_file": '/c "q".pem'})
    assert tomllib.loads(new)["tls"]["cert_file"] == '/c "q".pem'


def test_same_value_gives_the_same_text() -> None:
    """Setting what is already there changes nothing (so callers can report changed: false)."""
    once = set_keys(TEXT, "tls", {"cert_file": "/new/cert.pem"})
    assert set_keys(once, "tls", {"cert_file": "/new/cert.pem"}) == once


def test_a_commented_out_key_is_not_taken_for_the_key() -> None:
    """'# key_file = ...' stays a comment; the key is added below it."""
    text = '[tls]\n# key_file = "/x"\n'
    new = set_keys(text, "tls", {"key_file": "/y"})
    assert '# key_file = "/x"' in new
    assert tomllib.loads(new)["tls"]["key_file"] == "/y"
