"""Schema migrations (Alembic), run programmatically: ``mailprov db upgrade`` and ``init``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailprov.store import _unavailable, current_revision, make_engine

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class UpgradeResult:
    """What an upgrade did."""

    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        """True if any migration ran."""
        return self.before != self.after


def upgrade(url: str) -> UpgradeResult:
    """Bring the store at ``url`` to the newest schema, creating it (SQLite file too) if new.

    Runs in one transaction: a failing migration leaves the store as it was.
    """
    from alembic import command  # noqa: PLC0415  (lazy: slow import)
    from alembic.config import Config  # noqa: PLC0415  (lazy: a heavy import only this path needs)
    from sqlalchemy.exc import DBAPIError  # noqa: PLC0415  (lazy: a heavy import only this path needs)

    engine = make_engine(url, create=True)
    try:
        with engine.begin() as conn:
            before = current_revision(conn)
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            after = current_revision(conn)
    except DBAPIError as exc:
        raise _unavailable(url, exc) from None
    finally:
        engine.dispose()
    return UpgradeResult(before, after)
