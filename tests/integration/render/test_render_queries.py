"""The rendered SQL, run as the servers run it, against real SQLite and PostgreSQL stores."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update

from mailprov.render import Layout, render_bundle
from mailprov.settings import load_settings
from mailprov.store.schema import mailboxes
from tests.conftest import session_ca


def rendered_sql(store: Any, tmp_path: Path, **env: str) -> dict[str, str]:
    """The rendered files for a site on this store, by name."""

    made = session_ca().issue(tmp_path / "tls", "mail.example.test")
    cfg = load_settings(
        env={
            "MAILPROV_CONFIG": "",
            "MAILPROV_STORE_URL": "sqlite:////x.sqlite",
            "MAILPROV_TLS_CERT_FILE": str(made.cert_file),
            "MAILPROV_TLS_KEY_FILE": str(made.key_file),
            **env,
        }
    )
    return {
        f.path.name: f.content for f in render_bundle(cfg, Layout.for_target(cfg, tmp_path / "t"))
    }


def dovecot_query(conf: str, key: str, user: str) -> str:
    """A query from dovecot-sql.conf.ext with Dovecot's expansion of %u and %%."""
    joined = conf.replace("\\\n", " ")
    line = next(v for k, _, v in (ln.partition(" = ") for ln in joined.splitlines()) if k == key)
    return line.replace("%u", user).replace("%%", "%")


def postfix_query(conf: str, key: str) -> str:
    """The query of a Postfix SQL map with Postfix's expansion of %s, %u and %d."""
    joined = re.sub(r"\n\s+", " ", conf)
    query = next(ln.partition(" = ")[2] for ln in joined.splitlines() if ln.startswith("query = "))
    local, _, domain = key.partition("@")
    return query.replace("%s", key).replace("%u", local).replace("%d", domain)


def rows(store: Any, sql: str) -> list[tuple[Any, ...]]:
    with store.read() as conn:
        return [tuple(r) for r in conn.execute(text(sql.replace(":", "\\:")))]


@pytest.fixture(name="accounts")
def fixture_accounts(run: Any, store: Any) -> Any:
    """Mailboxes in several states, plus aliases and a catch-all, on each backend."""
    for name in ("ok", "off", "temp", "old"):
        assert (
            run(
                "mailbox",
                "add",
                f"{name}@example.test",
                "--password-stdin",
                input="Tr0ub4dor-and-3\n",
            ).exit_code
            == 0
        )
    assert run("mailbox", "disable", "off@example.test").exit_code == 0
    assert (
        run("alias", "add", "team@example.test", "ok@example.test", "old@example.test").exit_code
        == 0
    )
    assert run("alias", "add", "@example.test", "ok@example.test").exit_code == 0
    now = int(time.time())
    with store.begin() as conn:
        conn.execute(
            update(mailboxes)
            .where(mailboxes.c.address == "temp@example.test")
            .values(must_change=True, temp_password_expires_at=now - 5)
        )
        conn.execute(
            update(mailboxes)
            .where(mailboxes.c.address == "old@example.test")
            .values(password_changed_at=now - 100 * 86400)
        )
    return store


def test_passdb_refuses_disabled_expired_and_stale(accounts: Any, tmp_path: Path) -> None:
    """The passdb query answers only for usable accounts; the age limit only when enforced."""
    backend = "sqlite" if accounts.dialect == "sqlite" else "postgresql"
    url = "sqlite:////x.sqlite" if backend == "sqlite" else "postgresql+psycopg://u@h.example/db"
    lenient = rendered_sql(accounts, tmp_path / "a", MAILPROV_STORE_URL=url)["dovecot-sql.conf.ext"]
    strict = rendered_sql(
        accounts,
        tmp_path / "b",
        MAILPROV_STORE_URL=url,
        MAILPROV_PASSWORDS_ENFORCE_MAX_AGE="true",
        MAILPROV_PASSWORDS_MAX_AGE_DAYS="90",
    )["dovecot-sql.conf.ext"]
    found = {}
    for conf_name, conf in (("lenient", lenient), ("strict", strict)):
        for user in ("ok", "off", "temp", "old"):
            q = dovecot_query(conf, "password_query", f"{user}@example.test")
            found[(conf_name, user)] = bool(rows(accounts, q))
    assert found == {
        ("lenient", "ok"): True,
        ("lenient", "off"): False,
        ("lenient", "temp"): False,
        ("lenient", "old"): True,
        ("strict", "ok"): True,
        ("strict", "off"): False,
        ("strict", "temp"): False,
        ("strict", "old"): False,
    }


def test_user_query_gives_home_and_quota(accounts: Any, tmp_path: Path) -> None:
    """The userdb query returns the Maildir home and the quota rule from the store."""
    url = (
        "sqlite:////x.sqlite"
        if accounts.dialect == "sqlite"
        else "postgresql+psycopg://u@h.example/db"
    )
    conf = rendered_sql(accounts, tmp_path, MAILPROV_STORE_URL=url)["dovecot-sql.conf.ext"]
    ((home, uid, gid, quota),) = rows(
        accounts, dovecot_query(conf, "user_query", "ok@example.test")
    )
    assert (home, int(uid), int(gid), quota) == (
        "/var/vmail/example.test/ok",
        5000,
        5000,
        "*:bytes=0",
    )


def test_catch_all_map_never_answers_for_existing_addresses(accounts: Any, tmp_path: Path) -> None:
    """The catch-all answers only for unknown addresses: no mailbox, alias or user+tag base."""
    url = (
        "sqlite:////x.sqlite"
        if accounts.dialect == "sqlite"
        else "postgresql+psycopg://u@h.example/db"
    )
    conf = rendered_sql(accounts, tmp_path, MAILPROV_STORE_URL=url)["sql-catchall.cf"]
    answers = {
        key: rows(accounts, postfix_query(conf, key))
        for key in (
            "nobody@example.test",
            "ok@example.test",
            "off@example.test",
            "team@example.test",
            "ok+news@example.test",
            "nobody+x@example.test",
        )
    }
    assert answers == {
        "nobody@example.test": [("ok@example.test",)],
        "ok@example.test": [],
        "off@example.test": [],
        "team@example.test": [],
        "ok+news@example.test": [],
        "nobody+x@example.test": [("ok@example.test",)],
    }


def test_sender_login_map_lists_owners(accounts: Any, tmp_path: Path) -> None:
    """A mailbox owns itself; an alias is owned by the mailboxes it delivers to."""
    url = (
        "sqlite:////x.sqlite"
        if accounts.dialect == "sqlite"
        else "postgresql+psycopg://u@h.example/db"
    )
    conf = rendered_sql(accounts, tmp_path, MAILPROV_STORE_URL=url)["sql-sender-login.cf"]
    assert rows(accounts, postfix_query(conf, "ok@example.test")) == [("ok@example.test",)]
    assert sorted(rows(accounts, postfix_query(conf, "team@example.test"))) == [
        ("ok@example.test",),
        ("old@example.test",),
    ]
    assert rows(accounts, postfix_query(conf, "off@example.test")) == []


def test_quota_limited_map_answers_only_for_mailboxes_with_a_quota(
    accounts: Any, tmp_path: Path
) -> None:
    """Only an active mailbox with a quota is routed to the quota_check restriction class."""
    with accounts.begin() as conn:
        conn.execute(
            update(mailboxes)
            .where(mailboxes.c.address.in_(["ok@example.test", "off@example.test"]))
            .values(quota_bytes=1024**2)
        )
    url = (
        "sqlite:////x.sqlite"
        if accounts.dialect == "sqlite"
        else "postgresql+psycopg://u@h.example/db"
    )
    conf = rendered_sql(accounts, tmp_path, MAILPROV_STORE_URL=url)["sql-quota-limited.cf"]
    answers = {
        key: rows(accounts, postfix_query(conf, key))
        for key in ("ok@example.test", "off@example.test", "old@example.test", "team@example.test")
    }
    assert answers == {
        "ok@example.test": [("quota_check",)],
        "off@example.test": [],
        "old@example.test": [],
        "team@example.test": [],
    }


def test_alias_maps_return_only_deliverable_destinations(
    run: Any, accounts: Any, tmp_path: Path
) -> None:
    """Disabled mailboxes drop out of aliases and the catch-all; nested aliases follow suit."""
    for source, dests in (
        ("dead@example.test", ["off@example.test"]),
        ("nest@example.test", ["dead@example.test"]),
        ("mix@example.test", ["off@example.test", "ok@example.test"]),
        ("fwd@example.test", ["off@example.test", "friend@example.net"]),
        ("@other.test", ["off@example.test"]),
    ):
        if source.endswith("other.test"):
            assert run("domain", "add", "other.test").exit_code == 0
        assert run("alias", "add", source, *dests).exit_code == 0
    url = (
        "sqlite:////x.sqlite"
        if accounts.dialect == "sqlite"
        else "postgresql+psycopg://u@h.example/db"
    )
    out = rendered_sql(accounts, tmp_path, MAILPROV_STORE_URL=url)
    answers = {
        key: sorted(r[0] for r in rows(accounts, postfix_query(out[conf], key)))
        for conf, key in (
            ("sql-aliases.cf", "dead@example.test"),
            ("sql-aliases.cf", "nest@example.test"),
            ("sql-aliases.cf", "mix@example.test"),
            ("sql-aliases.cf", "fwd@example.test"),
            ("sql-aliases.cf", "team@example.test"),
            ("sql-catchall.cf", "anyone@other.test"),
        )
    }
    assert {
        "dead@example.test": [],
        "nest@example.test": [],
        "mix@example.test": ["ok@example.test"],
        "fwd@example.test": ["friend@example.net"],
        "team@example.test": ["ok@example.test", "old@example.test"],
        "anyone@other.test": [],
    } == answers


def test_local_sender_map_refuses_local_domains_unless_opened(
    accounts: Any, tmp_path: Path
) -> None:
    """Local domains answer REJECT 5.7.1; outside domains and opened local ones do not."""
    url = (
        "sqlite:////x.sqlite"
        if accounts.dialect == "sqlite"
        else "postgresql+psycopg://u@h.example/db"
    )
    closed = rendered_sql(accounts, tmp_path / "a", MAILPROV_STORE_URL=url)
    opened = rendered_sql(
        accounts,
        tmp_path / "b",
        MAILPROV_STORE_URL=url,
        MAILPROV_POSTFIX_UNAUTHENTICATED_SENDER_DOMAINS="example.test",
    )
    answers = {
        (name, key): [r[0] for r in rows(accounts, postfix_query(out["sql-local-sender.cf"], key))]
        for name, out in (("closed", closed), ("opened", opened))
        for key in ("ok@example.test", "x@example.net")
    }
    assert {
        ("closed", "ok@example.test"): [
            "REJECT 5.7.1 Log in to send as an address of example.test"
        ],
        ("closed", "x@example.net"): [],
        ("opened", "ok@example.test"): [],
        ("opened", "x@example.net"): [],
    } == answers
