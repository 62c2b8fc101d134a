"""The project's integration tests' view of the shipped real-stack harness.

:mod:`mailprov.mailstack` renders and runs the real Postfix + Dovecot (the ``mail_stack``
fixture rigs get is the same code); this module only adds what mailprov's own tests
want on top: the in-process ``Cli`` harness, certificates from the session's test CA,
and throwaway PostgreSQL databases.
"""

from __future__ import annotations

import functools
import secrets
import subprocess
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mailprov import mailstack
from mailprov.mailstack import DOMAIN, HOST, PORT_NAMES, alive
from tests.conftest import SERVER_NAMES, Cli, session_ca

__all__ = ["DOMAIN", "HOST", "PORT_NAMES", "MailStack", "alive", "render_site", "start_stack"]


class MailStack(mailstack.MailStack):
    """The shipped stack, plus ``cli``: ``mailprov`` in-process against this site."""

    @property
    def cli(self) -> Cli:
        """``mailprov`` in-process against this site (``stack.cli.json(...)`` for --json)."""
        return Cli(self.root / "xdg", config=self.config_file)

    def add_mailbox(self, address: str, password: str, *extra: str) -> None:
        """Create a mailbox through the in-process CLI (password on stdin; faster than the
        shipped subprocess, which the ``mail_stack`` fixture's own test covers)."""
        result = self.cli(
            "mailbox", "add", address, "--password-stdin", *extra, input=password + "\n"
        )
        assert result.exit_code == 0, result.output


def _test_ca_tls(folder: Path, host: str = HOST) -> None:
    session_ca().issue(folder, *dict.fromkeys((*SERVER_NAMES, host)))


def render_site(
    root: Path,
    store_url: str,
    *,
    name: str,
    extra_toml: str = "",
    prepare: Callable[[MailStack], None] | None = None,
    extra_ports: tuple[str, ...] = (),
    host: str = HOST,
    ports: Mapping[str, int] | None = None,
    mail_root: Path | None = None,
) -> MailStack:
    """:func:`mailprov.mailstack.render_site` with the test CA's certificate."""
    return mailstack.render_site(
        root,
        store_url,
        name=name,
        extra_toml=extra_toml,
        prepare=prepare,
        issue_tls=functools.partial(_test_ca_tls, host=host),
        factory=MailStack,
        extra_ports=extra_ports,
        host=host,
        ports=ports,
        mail_root=mail_root,
    )


def start_stack(
    store_url: str,
    *,
    name: str,
    base: str = "/tmp",
    extra_toml: str = "",
    prepare: Callable[[MailStack], None] | None = None,
    extra_ports: tuple[str, ...] = (),
    host: str = HOST,
    ports: Mapping[str, int] | None = None,
    mail_root: Path | None = None,
) -> MailStack:
    """:func:`mailprov.mailstack.start_stack` with the test CA's certificate
    (``host``, ``ports``: one host of a site on several, see the shipped module)."""
    return mailstack.start_stack(
        store_url,
        name=name,
        base=base,
        extra_toml=extra_toml,
        prepare=prepare,
        issue_tls=functools.partial(_test_ca_tls, host=host),
        factory=MailStack,
        extra_ports=extra_ports,
        host=host,
        ports=ports,
        mail_root=mail_root,
    )


def create_pg_database(base_url: str) -> str:
    """A new database on the test PostgreSQL server (the maps cannot set search_path)."""

    name = f"mailprov_{secrets.token_hex(4)}"
    engine = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(base_url: str, url: str) -> None:
    """Drop a database made by :func:`create_pg_database`."""

    name = make_url(url).database
    engine = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def loopback_addresses(wanted: Iterable[str]) -> str | None:
    """Give ``lo`` each address in ``wanted`` that it lacks (Postfix's inet_interfaces must
    name an interface's addresses), for stacks playing several hosts; the problem, if any.

    They stay: a concurrent run may use them, and they change nothing for 127.0.0.1.
    """
    shown = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True, check=False
    ).stdout
    for address in wanted:
        if f" {address}/" in shown:
            continue
        added = subprocess.run(
            ["ip", "addr", "add", f"{address}/32", "dev", "lo"],
            capture_output=True,
            text=True,
            check=False,
        )
        if added.returncode != 0 and "File exists" not in added.stderr:
            return f"cannot add {address} to lo (needs root): {added.stderr.strip()}"
    return None
