"""Identity gate: requests, replay store, code challenges, key bindings, trust, domain ownership.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATES = (
    "open",
    "identity-verified",
    "confirmed",
    "provisioned",
    "rejected",
    "expired",
    "locked",
    "cancelled",
)


def upgrade() -> None:
    op.add_column("domains", sa.Column("verified_at", sa.BigInteger(), nullable=True))
    op.add_column("domains", sa.Column("challenge", sa.String(64), nullable=True))
    op.add_column("domains", sa.Column("challenge_created_at", sa.BigInteger(), nullable=True))
    op.create_table(
        "requests",
        sa.Column("id", sa.String(16), nullable=False),
        sa.Column("address", sa.String(254), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("recovery", sa.String(254), nullable=False),
        sa.Column("requested_name", sa.String(256), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("challenge", sa.String(128), nullable=True),
        sa.Column("challenge_expires_at", sa.BigInteger(), nullable=True),
        sa.Column("account", sa.String(600), nullable=True),
        sa.Column("evidence_iss", sa.String(512), nullable=True),
        sa.Column("evidence_sub", sa.String(256), nullable=True),
        sa.Column("evidence_jti", sa.String(128), nullable=True),
        sa.Column("spki_sha256", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(16), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("kind IN ('personal', 'corporate')", name="ck_requests_kind"),
        sa.CheckConstraint(
            "state IN (" + ", ".join(f"'{s}'" for s in STATES) + ")", name="ck_requests_state"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_requests"),
    )
    op.create_index("ix_requests_address", "requests", ["address"])
    op.create_index("ix_requests_state", "requests", ["state"])
    op.create_table(
        "seen_token",
        sa.Column("iss", sa.String(512), nullable=False),
        sa.Column("jti", sa.String(128), nullable=False),
        sa.Column("exp", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("iss", "jti", name="pk_seen_token"),
    )
    op.create_index("ix_seen_token_exp", "seen_token", ["exp"])
    op.create_table(
        "code_challenges",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(16), nullable=False),
        sa.Column("account", sa.String(600), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("destination", sa.String(254), nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "state IN ('live', 'used', 'locked', 'expired', 'superseded', 'undelivered')",
            name="ck_code_challenges_state",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name="fk_code_challenges_request_id_requests",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_code_challenges"),
    )
    op.create_index("ix_code_challenges_request_id", "code_challenges", ["request_id"])
    op.create_index("ix_code_challenges_account", "code_challenges", ["account"])
    op.create_index("ix_code_challenges_destination", "code_challenges", ["destination"])
    op.create_table(
        "gate_accounts",
        sa.Column("account", sa.String(600), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account", name="pk_gate_accounts"),
    )
    op.create_table(
        "key_bindings",
        sa.Column("spki_sha256", sa.String(64), nullable=False),
        sa.Column("address", sa.String(254), nullable=False),
        sa.Column("request_id", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("spki_sha256", name="pk_key_bindings"),
    )
    op.create_table(
        "trusted_issuers",
        sa.Column("iss", sa.String(512), nullable=False),
        sa.Column("audience", sa.String(512), nullable=False),
        sa.Column("jwks", sa.Text(), nullable=False),
        sa.Column("jwks_file", sa.String(1024), nullable=False),
        sa.Column("framework", sa.String(32), nullable=True),
        sa.Column("min_level", sa.String(32), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("iss", name="pk_trusted_issuers"),
    )
    op.create_table(
        "trusted_keys",
        sa.Column("kid", sa.String(256), nullable=False),
        sa.Column("iss", sa.String(512), nullable=False),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["iss"],
            ["trusted_issuers.iss"],
            name="fk_trusted_keys_iss_trusted_issuers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("kid", name="pk_trusted_keys"),
    )
    op.create_index("ix_trusted_keys_iss", "trusted_keys", ["iss"])
    op.create_table(
        "trusted_cas",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(1024), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("crl_files", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_trusted_cas"),
    )


def downgrade() -> None:
    for table in (
        "trusted_cas",
        "trusted_keys",
        "trusted_issuers",
        "key_bindings",
        "gate_accounts",
        "code_challenges",
        "seen_token",
        "requests",
    ):
        op.drop_table(table)
    with op.batch_alter_table("domains") as batch:
        batch.drop_column("challenge_created_at")
        batch.drop_column("challenge")
        batch.drop_column("verified_at")
