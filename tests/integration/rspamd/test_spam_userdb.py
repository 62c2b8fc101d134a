"""The user_query Dovecot asks at delivery gives the same spam settings as
:func:`mailprov.rules.spam.resolve`, for every mix of mailbox, domain and site values, run
on both store backends (SQLite and PostgreSQL) exactly as rendered."""

from __future__ import annotations

import itertools
import time
from typing import Any

from mailprov.rules.spam import DEFAULT, SpamLevel, hundredths, resolve
from mailprov.services import accounts
from mailprov.services.accounts import Actor
from mailprov.services.mailbox_state import update_mailbox
from mailprov.services.spam import update_domain
from tests.unit.test_render_rspamd import (
    ON,
    fixture_tls_env,  # noqa: F401  (a fixture: tls_env)
    render,
)
from tests.unit.test_render_spam import USER_QUERY

SITES = [SpamLevel(6.0, True), SpamLevel(4.25, False)]


def _user_query(tls_env: dict[str, str], site: SpamLevel) -> str:
    """The rendered user_query as the SQL Dovecot sends (its '\\' continuations joined)."""
    out = render(
        tls_env,
        **ON,
        MAILPROV_RSPAMD_SPAM_THRESHOLD=str(site.threshold),
        MAILPROV_RSPAMD_SPAM_TO_JUNK=str(site.to_junk).lower(),
    )
    found = USER_QUERY.search(out["dovecot/dovecot-sql.conf.ext"])
    assert found is not None
    return found.group(1).replace("\\\n", " ")


def test_user_query_agrees_with_resolve(tls_env: dict[str, str], store: Any) -> None:
    """sieve_env_mailprov_spam_threshold is the effective threshold in hundredths and
    sieve_env_mailprov_spam_to_junk 'yes'/'no', whichever level sets them."""
    actor = Actor("tester", int(time.time()))
    accounts.add_domain(store, "example.test", actor=actor)
    address = "owner@example.test"
    accounts.add_mailbox(store, address, accounts.NewPassword("{PLAIN}x", None), actor=actor)
    queries = {(s.threshold, s.to_junk): _user_query(tls_env, s) for s in SITES}
    checked = 0
    for own_t, own_j, dom_t, dom_j in itertools.product(
        (None, 3.5), (None, False), (None, 8.25), (None, True, False)
    ):
        update_mailbox(
            store,
            address,
            actor=actor,
            spam_threshold=DEFAULT if own_t is None else own_t,
            spam_to_junk=DEFAULT if own_j is None else own_j,
        )
        update_domain(
            store,
            "example.test",
            actor=actor,
            spam_threshold=DEFAULT if dom_t is None else dom_t,
            spam_to_junk=DEFAULT if dom_j is None else dom_j,
        )
        for site in SITES:
            sql = queries[(site.threshold, site.to_junk)].replace("%u", address)
            with store.read() as conn:
                row = conn.exec_driver_sql(sql).mappings().one()
            want = resolve(SpamLevel(own_t, own_j), SpamLevel(dom_t, dom_j), site)
            got = (
                int(row["sieve_env_mailprov_spam_threshold"]),
                row["sieve_env_mailprov_spam_to_junk"],
            )
            assert got == (hundredths(want.threshold), "yes" if want.to_junk else "no"), (
                own_t,
                own_j,
                dom_t,
                dom_j,
                site,
            )
            checked += 1
    assert checked == 48


def test_user_query_is_the_same_for_both_backends(tls_env: dict[str, str]) -> None:
    """The rendered user_query does not depend on the store's backend (the test above runs
    that one query on both)."""
    pg = {**tls_env, "MAILPROV_STORE_URL": "postgresql+psycopg://mailprov@db.example.test/mp"}
    queries = []
    for env in (tls_env, pg):
        found = USER_QUERY.search(render(env, **ON)["dovecot/dovecot-sql.conf.ext"])
        assert found is not None
        queries.append(found.group(1))
    assert "sieve_env_mailprov_spam_threshold" in queries[0]
    assert queries[0] == queries[1]
