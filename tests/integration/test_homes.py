"""Home backends in the store through the CLI: mailbox add --backend, domain add/set --backend,
and what mailbox show/list say (on PostgreSQL: a site on several hosts shares one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from mailprov.store.migrate import upgrade
from tests.conftest import Cli, PgSchema

pytestmark = pytest.mark.requires_postgres

CLUSTER = """
[cluster]
role = "frontend"
backends = ["b1=127.0.0.3", "b2=127.0.0.4"]
{extra}
"""


def _site(tmp_path: Path, url: str, cluster: str) -> Cli:
    config = tmp_path / "mailprov.toml"
    config.write_text(
        f'[site]\nhostname = "mail.example.test"\n[store]\nurl = "{url}"\n'
        '[passwords]\nscheme = "SHA512-CRYPT"\n' + cluster
    )
    return Cli(tmp_path / "state", config=config)


@pytest.fixture
def site(pg: PgSchema, tmp_path: Path) -> Cli:
    """A frontend's CLI on a fresh PostgreSQL store, backends b1 and b2, default b2."""
    url = pg.fresh()
    upgrade(url)
    cli = _site(tmp_path, url, CLUSTER.format(extra='default_backend = "b2"'))
    assert cli("domain", "add", "example.test").exit_code == 0
    return cli


def _add(cli: Cli, address: str, *extra: str) -> tuple[int, Any]:
    return cli.json("mailbox", "add", address, "--password-stdin", *extra, input="Pw-1234-abcd!\n")


def test_new_mailbox_takes_the_site_default_and_keeps_it(site: Cli) -> None:
    """Without --backend a mailbox gets the site's default home, written into its row."""
    status, doc = _add(site, "ann@example.test")
    assert status == 0, doc
    assert doc["mailbox"]["home"] == "b2"
    status, shown = site.json("mailbox", "show", "ann@example.test")
    assert shown["mailbox"]["backend"] == "b2"
    assert shown["mailbox"]["home_inherited"] is False


def test_backend_option_and_domain_default(site: Cli) -> None:
    """--backend wins; else the domain's backend (domain set), which list shows per mailbox."""
    assert _add(site, "bob@example.test", "--backend", "b1")[1]["mailbox"]["home"] == "b1"
    status, doc = site.json("domain", "set", "example.test", "--backend", "b1")
    assert status == 0, doc
    assert doc == {"changed": True, "domain": doc["domain"]}
    assert doc["domain"]["backend"] == "b1"
    assert site.json("domain", "set", "example.test", "--backend", "b1")[1]["changed"] is False
    assert _add(site, "cat@example.test")[1]["mailbox"]["home"] == "b1"
    _, listed = site.json("mailbox", "list")
    assert {m["address"]: m["home"] for m in listed["mailboxes"]} == {
        "bob@example.test": "b1",
        "cat@example.test": "b1",
    }
    human = site("mailbox", "list").stdout
    assert human.splitlines()[0].endswith("\tb1")  # the home column (TSV without a TTY)


def test_unknown_backend_is_refused_and_nothing_written(site: Cli) -> None:
    """A name not in [cluster] backends: unknown-backend (exit 28), no mailbox made."""
    status, doc = _add(site, "dan@example.test", "--backend", "b9")
    assert status == 28
    assert doc["error"]["code"] == "unknown-backend"
    assert "b1, b2" in doc["error"]["message"]
    assert site.json("mailbox", "show", "dan@example.test")[0] == 3
    status, doc = site.json("domain", "add", "other.test", "--backend", "nope")
    assert doc["error"]["code"] == "unknown-backend"
    assert site.json("domain", "show", "other.test")[0] == 3


def test_domain_set_refuses_to_rehome_inheriting_mailboxes(site: Cli) -> None:
    """Mailboxes that take their home from the domain (NULL: made before the site had
    backends) keep it: changing the domain's backend under them is refused (in-use)."""
    assert _add(site, "eve@example.test")[0] == 0
    engine = create_engine(_url(site))
    with engine.begin() as conn:
        conn.execute(text("UPDATE mailboxes SET backend = NULL"))
    engine.dispose()
    _, shown = site.json("mailbox", "show", "eve@example.test")
    assert (shown["mailbox"]["home"], shown["mailbox"]["home_from"]) == ("b2", "site")
    status, doc = site.json("domain", "set", "example.test", "--backend", "b1")
    assert status == 22, doc
    assert doc["error"]["inheriting"] == 1
    # Naming the home they already have is fine.
    assert site.json("domain", "set", "example.test", "--backend", "b2")[0] == 0


def test_one_host_site_has_no_backends(tmp_path: Path, pg: PgSchema) -> None:
    """On a role 'all' site, --backend is refused with a clear error."""
    url = pg.fresh()
    upgrade(url)
    cli = _site(tmp_path, url, "")
    assert cli("domain", "add", "example.test").exit_code == 0
    status, doc = _add(cli, "fay@example.test", "--backend", "b1")
    assert doc["error"]["code"] == "unknown-backend"
    assert "no backends" in doc["error"]["message"]
    status, doc = _add(cli, "fay@example.test")
    assert status == 0
    assert (doc["mailbox"]["home"], doc["mailbox"]["backend"]) == (None, None)


def _url(cli: Cli) -> str:
    assert cli.config is not None
    for line in cli.config.read_text().splitlines():
        if line.startswith("url = "):
            return line.split('"')[1]
    raise AssertionError
