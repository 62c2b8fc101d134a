"""[cluster]: a host's role, the site's backends and the home of a mailbox, checked at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailprov.errors import ConfigInvalid, InvalidValue
from mailprov.rules.backends import home_backend, parse_backend
from mailprov.settings import load_settings

PG = "postgresql+psycopg://mailprov@db.example.test/mailprov"


def load(tmp_path: Path, cluster: str, url: str = PG) -> object:
    config = tmp_path / "mailprov.toml"
    config.write_text(
        f'[site]\nhostname = "mail.example.test"\n[store]\nurl = "{url}"\n[cluster]\n{cluster}'
    )
    return load_settings(config_file=config, env={"MAILPROV_CONFIG": ""})


def test_a_frontend_knows_every_backend_in_order(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        'role = "frontend"\nbackends = ["b2=10.0.0.3", "b1=mail-b1.example.test"]\n',
    )
    cluster = config.cluster  # type: ignore[attr-defined]
    assert cluster.backend_hosts() == {"b2": "10.0.0.3", "b1": "mail-b1.example.test"}
    assert cluster.default_home() == "b2"


def test_one_host_has_no_home_to_name(tmp_path: Path) -> None:
    config = load(tmp_path, "", url="sqlite:///x.sqlite")
    assert config.cluster.role == "all"  # type: ignore[attr-defined]
    assert config.cluster.default_home() == ""  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("cluster", "url", "names", "says"),
    [
        (
            'role = "backend"\nname = "b1"\nbackends = ["b1=10.0.0.2"]\n',
            "sqlite:///x.sqlite",
            "cluster.role",
            "not PostgreSQL",
        ),
        ('role = "frontend"\n', PG, "cluster.backends", "is empty"),
        ('backends = ["b1=10.0.0.2"]\n', PG, "cluster.backends", "role is 'all'"),
        ('role = "backend"\nbackends = ["b1=10.0.0.2"]\n', PG, "cluster.name", "is not set"),
        (
            'role = "backend"\nname = "b9"\nbackends = ["b1=10.0.0.2"]\n',
            PG,
            "cluster.name",
            "not one of",
        ),
        (
            'role = "frontend"\ndefault_backend = "b9"\nbackends = ["b1=10.0.0.2"]\n',
            PG,
            "cluster.default_backend",
            "use one of: b1",
        ),
        (
            'role = "frontend"\nbackends = ["b1=10.0.0.2", "b1=10.0.0.3"]\n',
            PG,
            "cluster.backends",
            "more than once",
        ),
        (
            'role = "frontend"\nbackends = ["B1=10.0.0.2"]\n',
            PG,
            "cluster.backends",
            "not a backend name",
        ),
        ('role = "frontend"\nbackends = ["10.0.0.2"]\n', PG, "cluster.backends", "NAME=HOST"),
        (
            'role = "frontend"\nbackends = ["b1=not a host"]\n',
            PG,
            "cluster.backends",
            "not an IP address or host name",
        ),
        ('role = "proxy"\n', PG, "cluster.role", "proxy"),
        (
            'role = "backend"\nname = "b1"\nbackends = ["b1=10.0.0.2"]\n',
            PG,
            "cluster.frontends",
            "is empty",
        ),
        (
            'role = "backend"\nname = "b1"\nbackends = ["b1=10.0.0.2"]\nfrontends = ["x/8"]\n',
            PG,
            "cluster.frontends",
            "not a network",
        ),
    ],
)
def test_settings_that_do_not_fit_are_refused_by_name(
    tmp_path: Path, cluster: str, url: str, names: str, says: str
) -> None:
    with pytest.raises(ConfigInvalid) as caught:
        load(tmp_path, cluster, url)
    text = f"{caught.value.message} {caught.value.hint or ''}"
    assert names in text
    assert says in text


def test_home_is_the_mailbox_then_the_domain_then_the_site() -> None:
    assert home_backend("b2", "b1", "b0") == "b2"
    assert home_backend(None, "b1", "b0") == "b1"
    assert home_backend(None, None, "b0") == "b0"
    assert home_backend(None, None, "") == ""


@pytest.mark.parametrize("entry", ["=10.0.0.2", "b1=", "b1", "-b1=10.0.0.2", "b 1=10.0.0.2"])
def test_backend_entries_are_name_equals_host(entry: str) -> None:
    with pytest.raises(InvalidValue):
        parse_backend(entry)
