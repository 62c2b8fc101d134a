"""The mailbox owner's side: sessions, sign-in throttling, two-factor, app passwords,
recovery contacts and codes, filters, the request's secret handle, and the started
sign-ins of identity by redirect (OpenID Connect).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _address_fk() -> sa.ForeignKey:
    return sa.ForeignKey("mailboxes.address", ondelete="CASCADE")


def upgrade() -> None:
    op.add_column("mailboxes", sa.Column("identity", sa.String(600), nullable=True))
    op.add_column("requests", sa.Column("handle_mac", sa.String(64), nullable=True))
    op.create_table(
        "owner_sessions",
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("address", sa.String(254), _address_fk(), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "stage IN ('second-factor', 'change-password', 'full')",
            name="ck_owner_sessions_stage",
        ),
        sa.PrimaryKeyConstraint("id_hash", name="pk_owner_sessions"),
    )
    op.create_index("ix_owner_sessions_address", "owner_sessions", ["address"])
    op.create_index("ix_owner_sessions_expires_at", "owner_sessions", ["expires_at"])
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(320), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("locked_until", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_login_failures"),
    )
    op.create_table(
        "owner_totp",
        sa.Column("address", sa.String(254), _address_fk(), nullable=False),
        sa.Column("secret", sa.String(64), nullable=False),
        sa.Column("enabled_at", sa.BigInteger(), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("address", name="pk_owner_totp"),
    )
    op.create_table(
        "owner_recovery_codes",
        sa.Column("address", sa.String(254), _address_fk(), nullable=False),
        sa.Column("code_hash", sa.String(128), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("address", "code_hash", name="pk_owner_recovery_codes"),
    )
    op.create_table(
        "app_passwords",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(254), _address_fk(), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_app_passwords"),
        sa.UniqueConstraint("address", "label", name="uq_app_passwords_address_label"),
    )
    op.create_index("ix_app_passwords_address", "app_passwords", ["address"])
    op.create_table(
        "recovery_contacts",
        sa.Column("address", sa.String(254), _address_fk(), nullable=False),
        sa.Column("contact", sa.String(254), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("verified_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("kind IN ('email', 'phone')", name="ck_recovery_contacts_kind"),
        sa.PrimaryKeyConstraint("address", "contact", name="pk_recovery_contacts"),
    )
    op.create_table(
        "owner_codes",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("address", sa.String(254), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("destination", sa.String(254), nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("client", sa.String(64), nullable=True),
        sa.CheckConstraint(
            "state IN ('live', 'used', 'locked', 'expired', 'superseded', 'undelivered')",
            name="ck_owner_codes_state",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_owner_codes"),
    )
    op.create_index("ix_owner_codes_address", "owner_codes", ["address"])
    op.create_table(
        "owner_filters",
        sa.Column("address", sa.String(254), _address_fk(), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("address", name="pk_owner_filters"),
    )

    op.create_table(
        "admin_tokens",
        sa.Column("id", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.String(128), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_admin_tokens"),
    )
    # The portal reads a request's history and an owner's security events by target.
    op.create_index("ix_audit_log_target", "audit_log", ["target"])

    op.create_table(
        "oidc_flows",
        sa.Column("state_hash", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(16), nullable=False),
        sa.Column("browser_hash", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(12), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name="fk_oidc_flows_request_id_requests",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("state_hash", name="pk_oidc_flows"),
    )
    op.create_index("ix_oidc_flows_request_id", "oidc_flows", ["request_id"])
    op.create_index("ix_oidc_flows_expires_at", "oidc_flows", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_target", table_name="audit_log")
    for table in (
        "oidc_flows",
        "admin_tokens",
        "owner_filters",
        "owner_codes",
        "recovery_contacts",
        "app_passwords",
        "owner_recovery_codes",
        "owner_totp",
        "login_failures",
        "owner_sessions",
    ):
        op.drop_table(table)
    op.drop_column("requests", "handle_mac")
    op.drop_column("mailboxes", "identity")
