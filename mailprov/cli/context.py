"""The typed context every command reaches: global options, settings, the store, the actor.

Commands take it with ``@pass_app`` (``click.make_pass_decorator``) or, in helpers
called from a command, :func:`app_context`; both are typed ``AppContext``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from mailprov.services.accounts import Actor
    from mailprov.settings import SiteConfig
    from mailprov.store import Store


@dataclass
class AppContext:
    """What every command can reach: global options, settings and the store (opened lazily)."""

    config_file: str | None = None
    store_url: str | None = None
    actor_name: str | None = None
    json: bool = False
    debug: bool = False
    non_interactive: bool = False
    #: ``--dry-run`` of a store command: its write transactions are rolled back.
    rehearsal: bool = False
    _settings: SiteConfig | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)

    @property
    def settings(self) -> SiteConfig:
        """The site configuration (loaded once)."""
        if self._settings is None:
            from mailprov.settings import load_settings

            self._settings = load_settings(
                config_file=self.config_file, flags={"store.url": self.store_url}
            )
        return self._settings

    @property
    def store(self) -> Store:
        """The opened account store (opened once, closed when the command ends)."""
        if self._store is None:
            from mailprov.store import open_store

            self._store = open_store(self.settings.store.url)
            self._store.rehearsal = self.rehearsal
        return self._store

    def actor(self) -> Actor:
        """Who is acting (``--actor`` or the OS user) and the time now."""
        from mailprov.services.accounts import Actor

        name = self.actor_name or _os_user()
        return Actor(name=name, now=int(time.time()))

    @property
    def interactive(self) -> bool:
        """True when prompts may be shown: a terminal on stdin, and no --non-interactive."""
        return not self.non_interactive and sys.stdin.isatty()

    def close(self) -> None:
        """Release the store."""
        if self._store is not None:
            self._store.close()


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


pass_app = click.make_pass_decorator(AppContext)


def app_context() -> AppContext:
    """The AppContext of the running command (from click's current context)."""
    app = click.get_current_context().find_object(AppContext)
    if app is None:  # pragma: no cover - only when a command runs outside the mailprov group
        msg = "no mailprov AppContext: run commands through mailprov.cli.app.cli"
        raise RuntimeError(msg)
    return app
