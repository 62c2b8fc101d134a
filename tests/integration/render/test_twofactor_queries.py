"""The two-factor parts of the rendered passdb queries, run as Dovecot runs them, on each backend.

The main passdb query answers no row for a mailbox with two-factor authentication on;
the app-password query answers exactly the row whose hash is the SHA-256 of the
password given (Dovecot's ``%{sha256:password}``), and none for a disabled mailbox.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from mailprov.rules import hashing
from mailprov.store.schema import app_passwords, owner_totp
from tests.integration.render.test_render_queries import dovecot_query, rendered_sql, rows

PW = "Tr0ub4dor-and-3"


def app_query(conf: str, user: str, password: str) -> str:
    """The app-password query with Dovecot's expansion of %u and %{sha256:password}."""
    digest = hashlib.sha256(password.encode()).hexdigest()
    return dovecot_query(conf, "password_query", user).replace("%{sha256:password}", digest)


@pytest.fixture(name="confs")
def fixture_confs(run: Any, store: Any, tmp_path: Path) -> dict[str, str]:
    """ann@ with 2FA on and two app passwords, bob@ without 2FA, off@ disabled with one."""
    for name in ("ann", "bob", "off"):
        made = run("mailbox", "add", f"{name}@example.test", "--password-stdin", input=PW + "\n")
        assert made.exit_code == 0
    assert run("mailbox", "disable", "off@example.test").exit_code == 0
    with store.begin() as conn:
        conn.execute(
            insert(owner_totp).values(
                address="ann@example.test", secret="x", enabled_at=1, created_at=1
            )
        )
        conn.execute(
            insert(owner_totp).values(address="bob@example.test", secret="x", created_at=1)
        )
        for address, label, secret in (
            ("ann@example.test", "laptop", "aaaa-1111"),
            ("ann@example.test", "phone", "bbbb-2222"),
            ("off@example.test", "old", "cccc-3333"),
        ):
            conn.execute(
                insert(app_passwords).values(
                    address=address,
                    label=label,
                    password_hash=hashing.app_password_hash(secret),
                    created_at=1,
                )
            )
    url = "sqlite:////x.sqlite" if store.dialect == "sqlite" else "postgresql+psycopg://u@h/db"
    return rendered_sql(store, tmp_path, MAILPROV_STORE_URL=url)


def test_main_password_query_skips_mailboxes_with_2fa_on(confs: dict[str, str], store: Any) -> None:
    """ann@ (2FA on) gets no row; bob@ (a set-up never confirmed) still does."""
    conf = confs["dovecot-sql.conf.ext"]
    assert rows(store, dovecot_query(conf, "password_query", "ann@example.test")) == []
    assert len(rows(store, dovecot_query(conf, "password_query", "bob@example.test"))) == 1


def test_app_password_query_finds_exactly_the_one_given(confs: dict[str, str], store: Any) -> None:
    """One row for each of ann@'s app passwords, none for a wrong one, another mailbox's,
    or a disabled mailbox's."""
    conf = confs["dovecot-app-passwords.conf.ext"]
    assert "default_pass_scheme = SHA256.HEX" in conf
    for secret in ("aaaa-1111", "bbbb-2222"):
        found = rows(store, app_query(conf, "ann@example.test", secret))
        assert found == [("ann@example.test", hashing.app_password_hash(secret))]
    assert rows(store, app_query(conf, "ann@example.test", PW)) == []
    assert rows(store, app_query(conf, "bob@example.test", "aaaa-1111")) == []
    assert rows(store, app_query(conf, "off@example.test", "cccc-3333")) == []


def test_app_passdb_comes_first_in_dovecot_conf(confs: dict[str, str]) -> None:
    """The cheap app-password lookup is asked before the main password's slow hash."""
    conf = confs["dovecot.conf"]
    assert conf.index("dovecot-app-passwords.conf.ext") < conf.index("dovecot-sql.conf.ext")
