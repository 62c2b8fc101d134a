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

from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from mailprov.model import (
    AddressKind,
    CodeState,
    ContactKind,
    RequestKind,
    RequestState,
    SessionStage,
)


def one_of(column: str, values: type[StrEnum]) -> str:
    """A CHECK constraint's SQL: ``column`` holds one of the enum's values (in its order)."""
    return f"{column} IN (" + ", ".join(f"'{v.value}'" for v in values) + ")"


#: The Alembic revision this code expects; ``open_store`` refuses an older store.
SCHEMA_HEAD = "0004"

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
    # Ownership proof (identity gate): a TXT challenge, and when it was proven.
    Column("verified_at", BigInteger, nullable=True),
    Column("challenge", String(64), nullable=True),
    Column("challenge_created_at", BigInteger, nullable=True),
    # Defaults for the domain's mailboxes (revision 0004); NULL = the site's default.
    Column("backend", String(64), nullable=True),  # home backend of new mailboxes
    Column("spam_threshold", Float, nullable=True),  # rspamd score from which mail is junk
    Column("spam_to_junk", Boolean, nullable=True),  # file junk into Junk (Sieve)
    # Proven through the portal (revision 0004): the HMAC (site pepper) of the secret domain
    # handle its prover was shown; requests at the domain must give it. NULL: open to all.
    Column("proof_mac", String(64), nullable=True),
)

addresses = Table(
    "addresses",
    metadata,
    # The one namespace: 'local@domain', or '@domain' for a catch-all alias.
    Column("address", String(254), primary_key=True),
    Column("domain_id", Integer, ForeignKey("domains.id"), nullable=False, index=True),
    Column("kind", String(8), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint(one_of("kind", AddressKind), name="kind"),
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
    # Beyond one machine (revision 0004): the backend that stores this mailbox's mail
    # (NULL = the domain's, else the site's default), and the one it is leaving while a
    # `mailbox move` has switched the home but not yet copied the last messages.
    Column("backend", String(64), nullable=True, index=True),
    Column("moving_from", String(64), nullable=True),
    # The owner's spam settings (revision 0004); NULL = the domain's default.
    Column("spam_threshold", Float, nullable=True),
    Column("spam_to_junk", Boolean, nullable=True),
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
    # A request's history and an owner's security events are read by target (revision 0003).
    Index(None, "target"),
)


# -- identity gate (revision 0002) ---------------------------------------------------

requests = Table(
    "requests",
    metadata,
    Column("id", String(16), primary_key=True),  # short enough to read over the phone
    Column("address", String(254), nullable=False, index=True),
    Column("kind", String(10), nullable=False),
    Column("recovery", String(254), nullable=False),
    Column("requested_name", String(256), nullable=False, default=""),
    Column("display_name", String(256), nullable=False, default=""),
    Column("state", String(20), nullable=False, index=True),
    Column("nonce", String(64), nullable=False),  # the gate-issued token nonce (single use)
    Column("challenge", String(128), nullable=True),  # certificate challenge (single use)
    Column("challenge_expires_at", BigInteger, nullable=True),
    Column("account", String(600), nullable=True),  # iss|sub or spki:<sha256>, after verify
    Column("evidence_iss", String(512), nullable=True),
    Column("evidence_sub", String(256), nullable=True),
    Column("evidence_jti", String(128), nullable=True),
    Column("spki_sha256", String(64), nullable=True),
    Column("reason", String(16), nullable=True),  # the IDG code that ended it, if any
    Column("actor", String(128), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    CheckConstraint(one_of("kind", RequestKind), name="kind"),
    CheckConstraint(one_of("state", RequestState), name="state"),
)

seen_token = Table(
    "seen_token",
    metadata,
    # The replay store: a plain INSERT; an IntegrityError means a replay.
    Column("iss", String(512), primary_key=True),
    Column("jti", String(128), primary_key=True),
    Column("exp", BigInteger, nullable=False, index=True),
    Column("used_at", BigInteger, nullable=False),
)

code_challenges = Table(
    "code_challenges",
    metadata,
    Column("id", String(32), primary_key=True),  # the challenge id (cid)
    Column(
        "request_id",
        String(16),
        ForeignKey("requests.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("account", String(600), nullable=False, index=True),
    Column("purpose", String(32), nullable=False),
    Column("destination", String(254), nullable=False, index=True),
    Column("mac", String(64), nullable=False),  # HMAC-SHA256(pepper, cid|account|purpose|code)
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    CheckConstraint(one_of("state", CodeState), name="state"),
)

gate_accounts = Table(
    "gate_accounts",
    metadata,
    # Consecutive code failures per verified subject, and the lock they cause.
    Column("account", String(600), primary_key=True),
    Column("failures", Integer, nullable=False, default=0),
    Column("locked_until", BigInteger, nullable=True),  # -1: until an administrator unlocks
    Column("updated_at", BigInteger, nullable=False),
)

key_bindings = Table(
    "key_bindings",
    metadata,
    # One certificate key (SPKI SHA-256) belongs to one mailbox: catches re-issued certificates.
    Column("spki_sha256", String(64), primary_key=True),
    Column("address", String(254), nullable=False),
    Column("request_id", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

trusted_issuers = Table(
    "trusted_issuers",
    metadata,
    Column("iss", String(512), primary_key=True),
    Column("audience", String(512), nullable=False),
    Column("jwks", Text, nullable=False),  # public keys only (checked on add)
    Column("jwks_file", String(1024), nullable=False),
    Column("framework", String(32), nullable=True),  # None: every known framework, default levels
    Column("min_level", String(32), nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

trusted_keys = Table(
    "trusted_keys",
    metadata,
    # A kid is unique across issuers: the database refuses a second owner.
    Column("kid", String(256), primary_key=True),
    Column(
        "iss",
        String(512),
        ForeignKey("trusted_issuers.iss", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("alg", String(16), nullable=False),
)

trusted_cas = Table(
    "trusted_cas",
    metadata,
    Column("fingerprint", String(64), primary_key=True),  # SHA-256 of the DER certificate
    Column("subject", String(1024), nullable=False),
    Column("pem", Text, nullable=False),
    Column("crl_files", Text, nullable=False, default=""),  # one path per line, read at use
    Column("created_at", BigInteger, nullable=False),
)


# -- the mailbox owner's side (revision 0003) ------------------------------------------


def _owner() -> Column[str]:
    """The owning mailbox's address: the owner's rows go when the mailbox goes."""
    return Column(
        "address",
        String(254),
        ForeignKey("mailboxes.address", ondelete="CASCADE"),
        nullable=False,
    )


mailboxes.append_column(Column("identity", String(600), nullable=True))  # gate account bound
requests.append_column(Column("handle_mac", String(64), nullable=True))  # HMAC of the handle

owner_sessions = Table(
    "owner_sessions",
    metadata,
    # SHA-256 of the session token: a stolen store copy opens no session.
    Column("id_hash", String(64), primary_key=True),
    _owner(),
    Column("stage", String(16), nullable=False),
    Column("client", String(64), nullable=False),  # the client IP that signed in
    Column("created_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
    Index(None, "address"),
    CheckConstraint(one_of("stage", SessionStage), name="stage"),
)

login_failures = Table(
    "login_failures",
    metadata,
    # 'account:ADDRESS' or 'client:IP': failures in the current window, and the lock.
    Column("key", String(320), primary_key=True),
    Column("failures", Integer, nullable=False, default=0),
    Column("window_start", BigInteger, nullable=False),
    Column("locked_until", BigInteger, nullable=True),
)

owner_totp = Table(
    "owner_totp",
    metadata,
    Column(
        "address",
        String(254),
        ForeignKey("mailboxes.address", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("secret", String(64), nullable=False),  # base32; enabled once a first code is given
    Column("enabled_at", BigInteger, nullable=True),
    Column("last_step", BigInteger, nullable=True),  # the last accepted time step: no reuse
    Column("created_at", BigInteger, nullable=False),
)

owner_recovery_codes = Table(
    "owner_recovery_codes",
    metadata,
    Column(
        "address",
        String(254),
        ForeignKey("mailboxes.address", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("code_hash", String(128), primary_key=True),
    Column("used_at", BigInteger, nullable=True),
)

app_passwords = Table(
    "app_passwords",
    metadata,
    Column("id", Integer, primary_key=True),
    _owner(),
    Column("label", String(64), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
    Index(None, "address"),
    UniqueConstraint("address", "label"),
)

recovery_contacts = Table(
    "recovery_contacts",
    metadata,
    Column(
        "address",
        String(254),
        ForeignKey("mailboxes.address", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("contact", String(254), primary_key=True),  # an e-mail address or E.164 number
    Column("kind", String(8), nullable=False),
    Column("verified_at", BigInteger, nullable=True),  # only verified contacts are used
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint(one_of("kind", ContactKind), name="kind"),
)

owner_codes = Table(
    "owner_codes",
    metadata,
    # One-time codes of the owner's side (contact verification, reset), like
    # code_challenges but not tied to a request. No foreign key: a reset for an
    # unknown address must look the same from outside.
    Column("id", String(32), primary_key=True),
    Column("address", String(254), nullable=False, index=True),
    Column("purpose", String(32), nullable=False),
    Column("destination", String(254), nullable=False),
    Column("mac", String(64), nullable=False),
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    # The client IP that asked for a reset code: the per-client rate limit counts these.
    Column("client", String(64), nullable=True),
    CheckConstraint(one_of("state", CodeState), name="state"),
)

owner_filters = Table(
    "owner_filters",
    metadata,
    Column(
        "address",
        String(254),
        ForeignKey("mailboxes.address", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("spec", Text, nullable=False),  # JSON: forwarding, vacation, rules (compiled to Sieve)
    Column("updated_at", BigInteger, nullable=False),
)

admin_tokens = Table(
    "admin_tokens",
    metadata,
    # Bearer tokens of the admin API: 'mpa_<id>_<secret>'; only the secret's SHA-256 is kept
    # (it is 32 random bytes, so a fast hash is enough: nothing to brute-force).
    Column("id", String(16), primary_key=True),
    Column("secret_hash", String(64), nullable=False),
    Column("scopes", String(128), nullable=False),  # space-separated, e.g. "accounts:read deploy"
    Column("label", String(64), nullable=False),
    Column("actor", String(128), nullable=False),  # who created it
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("last_used_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
)

oidc_flows = Table(
    "oidc_flows",
    metadata,
    # Identity by redirect: one started sign-in at the OpenID Connect provider. Only HMACs
    # (with the site pepper) of the state and of the browser's binding cookie are kept; the
    # nonce and the PKCE verifier are derived from the state and the pepper, never stored.
    Column("state_hash", String(64), primary_key=True),
    Column(
        "request_id",
        String(16),
        ForeignKey("requests.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("browser_hash", String(64), nullable=False),
    Column("outcome", String(12), nullable=True),  # NULL while live; 'used' or 'superseded'
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
)
