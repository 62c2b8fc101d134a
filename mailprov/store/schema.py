"""The account store's schema (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Postfix and Dovecot read these tables directly through their SQL maps and
passdb/userdb queries, so the schema is plain on purpose: stable table and
column names, one row per routing fact, no JSON in routing data, and times as
integer Unix seconds (comparable in SQL on both backends without conversions).

Mailboxes and aliases share one namespace: each of their addresses is first a
row of ``addresses`` (primary key ``address``), so two writers can never both
claim the same address — the database refuses the second.

Changes to this file need an Alembic migration in ``migrations/versions`` and a
new ``SCHEMA_HEAD``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

#: The Alembic revision this code expects; ``open_store`` refuses an older store.
SCHEMA_HEAD = "0001"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

domains = Table(
    "domains",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(253), nullable=False, unique=True),  # IDNA A-label
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", BigInteger, nullable=False),
)

addresses = Table(
    "addresses",
    metadata,
    # The one namespace: 'local@domain', or '@domain' for a catch-all alias.
    Column("address", String(254), primary_key=True),
    Column("domain_id", Integer, ForeignKey("domains.id"), nullable=False, index=True),
    Column("kind", String(8), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint("kind IN ('mailbox', 'alias')", name="kind"),
)

mailboxes = Table(
    "mailboxes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "address",
        String(254),
        ForeignKey("addresses.address", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("domain_id", Integer, ForeignKey("domains.id"), nullable=False, index=True),
    Column("local_part", String(64), nullable=False),
    Column("domain", String(253), nullable=False),
    Column("display_name", String(256), nullable=False, default=""),
    Column("password_hash", Text, nullable=False),
    Column("quota_bytes", BigInteger, nullable=False, default=0),  # 0 = unlimited
    Column("active", Boolean, nullable=False, default=True),
    Column("must_change", Boolean, nullable=False, default=False),
    Column("password_changed_at", BigInteger, nullable=False),
    Column("temp_password_expires_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

aliases = Table(
    "aliases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "address",
        String(254),
        ForeignKey("addresses.address", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("domain_id", Integer, ForeignKey("domains.id"), nullable=False, index=True),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", BigInteger, nullable=False),
)

alias_destinations = Table(
    "alias_destinations",
    metadata,
    Column(
        "alias_id",
        Integer,
        ForeignKey("aliases.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("destination", String(254), primary_key=True),
    Index(None, "destination"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", BigInteger, nullable=False, index=True),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(256), nullable=False),
    Column("details", Text, nullable=False, default="{}"),  # JSON; never routing data
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("prev_hash"),  # a fork of the chain is refused by the database
)
