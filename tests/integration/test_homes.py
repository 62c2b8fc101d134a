"""Home backends in the store through the CLI: mailbox add --backend, domain add/set --backend,
and what mailbox show/list say (on PostgreSQL: a site on several hosts shares one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from mailprov.rules.hashing import hash_password
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


def test_state_apply_and_export_carry_the_home(site: Cli, tmp_path: Path) -> None:
    """apply makes a domain with its backend and mailboxes with their homes (own, else the
    domain's), export writes them back, and a changed home of an existing mailbox is a
    problem at its line (a move), not a silent re-homing."""
    state = tmp_path / "site.toml"
    state.write_text(
        "version = 1\n"
        '[domains."other.test"]\nbackend = "b1"\n'
        '[mailboxes."gus@other.test"]\ngenerate_password = true\n'
        '[mailboxes."hal@other.test"]\ngenerate_password = true\nbackend = "b2"\n'
    )
    status, doc = site.json("apply", str(state))
    assert status == 0, doc
    homes = {
        a: site.json("mailbox", "show", a)[1]["mailbox"]["backend"]
        for a in ("gus@other.test", "hal@other.test")
    }
    assert homes == {"gus@other.test": "b1", "hal@other.test": "b2"}
    status, exported = site.json("export", "--format", "json")
    assert status == 0, exported
    state_doc = exported.get("state", exported)
    assert state_doc["domains"]["other.test"]["backend"] == "b1"
    assert state_doc["mailboxes"]["hal@other.test"]["backend"] == "b2"
    assert site.json("apply", str(state))[1]["changed"] is False
    state.write_text(
        state.read_text().replace('backend = "b2"', 'backend = "b1"')
        + '[mailboxes."ivy@other.test"]\ngenerate_password = true\nbackend = "b9"\n'
    )
    status, doc = site.json("apply", str(state))
    assert doc["error"]["code"] == "state-invalid", doc
    text = str(doc["error"])
    assert "mailbox move" in text
    assert "b9 is not one of [cluster] backends" in text
    assert site.json("mailbox", "show", "ivy@other.test")[0] == 3


def test_imported_mailboxes_get_their_home_written(site: Cli, tmp_path: Path) -> None:
    """mailbox import gives each new mailbox its home as 'mailbox add' does (the domain's,
    else the site's), kept in its row."""
    assert site.json("domain", "add", "third.test", "--backend", "b1")[0] == 0
    digest = hash_password("Pw-1234-abcd!", "SHA512-CRYPT")
    csv = tmp_path / "boxes.csv"
    csv.write_text(
        "address,name,quota,password-hash\n"
        f"jo@third.test,Jo,0,{digest}\nkim@example.test,Kim,0,{digest}\n"
    )
    status, doc = site.json("mailbox", "import", str(csv))
    assert status == 0, doc
    shown = {
        a: site.json("mailbox", "show", a)[1]["mailbox"]
        for a in ("jo@third.test", "kim@example.test")
    }
    assert {a: (m["backend"], m["home_from"]) for a, m in shown.items()} == {
        "jo@third.test": ("b1", "mailbox"),
        "kim@example.test": ("b2", "mailbox"),
    }


def test_exist_ok_compares_the_home(site: Cli) -> None:
    """add --exist-ok with the mailbox's own home is unchanged; with another, a conflict."""
    assert _add(site, "lou@example.test", "--backend", "b1")[0] == 0
    status, doc = _add(site, "lou@example.test", "--backend", "b1", "--exist-ok")
    assert (status, doc["changed"]) == (0, False)
    status, doc = _add(site, "lou@example.test", "--backend", "b2", "--exist-ok")
    assert (status, doc["error"]["code"]) == (91, "conflict")
    assert doc["error"]["differing"] == {"backend": {"before": "b1", "after": "b2"}}
