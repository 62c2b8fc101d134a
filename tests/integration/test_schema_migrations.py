"""The migrations build exactly the schema the code declares (store/schema.py), on both backends.

Alembic's own comparison (the one ``alembic revision --autogenerate`` uses) runs
between the upgraded store and ``schema.metadata``: a column, table, index or
nullability that one has and the other lacks fails here, not on a user's host.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from mailprov.store.migrate import upgrade
from mailprov.store.schema import SCHEMA_HEAD, metadata


def _differences(url: str) -> list[object]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            diffs = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    # Index differences on SQLite are names only for unique columns (sqlite_autoindex);
    # compare tables, columns and nullability, which is what Postfix and Dovecot read.
    return [
        d for d in diffs if not (isinstance(d, tuple) and d[0] in {"add_index", "remove_index"})
    ]


def test_migrations_build_the_declared_schema(store_url: str) -> None:
    """Upgrading an empty store to head gives every table and column of schema.py, no more."""
    result = upgrade(store_url)
    assert result.after == SCHEMA_HEAD
    assert _differences(store_url) == []
