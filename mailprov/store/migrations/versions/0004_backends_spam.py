"""Beyond one machine and inbound protection: each mailbox's home backend (and the one it
is leaving while a move finishes), a domain's default backend, and the owner's spam
settings with a per-domain default; and the binding of a domain proven through the portal
to whoever proved it (``domains.proof_mac``: the HMAC of the secret domain handle, NULL for
domains the administrator added, which bind nothing).

NULL everywhere means "not set here: take the default one level up" (mailbox → domain →
site), so existing rows need no backfill.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("domains", sa.Column("backend", sa.String(64), nullable=True))
    op.add_column("domains", sa.Column("spam_threshold", sa.Float(), nullable=True))
    op.add_column("domains", sa.Column("spam_to_junk", sa.Boolean(), nullable=True))
    op.add_column("domains", sa.Column("proof_mac", sa.String(64), nullable=True))
    op.add_column("mailboxes", sa.Column("backend", sa.String(64), nullable=True))
    op.add_column("mailboxes", sa.Column("moving_from", sa.String(64), nullable=True))
    op.add_column("mailboxes", sa.Column("spam_threshold", sa.Float(), nullable=True))
    op.add_column("mailboxes", sa.Column("spam_to_junk", sa.Boolean(), nullable=True))
    op.create_index("ix_mailboxes_backend", "mailboxes", ["backend"])


def downgrade() -> None:
    op.drop_index("ix_mailboxes_backend", table_name="mailboxes")
    for column in ("spam_to_junk", "spam_threshold", "moving_from", "backend"):
        op.drop_column("mailboxes", column)
    for column in ("proof_mac", "spam_to_junk", "spam_threshold", "backend"):
        op.drop_column("domains", column)
