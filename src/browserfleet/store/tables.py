"""The schema, as one SQLAlchemy Core MetaData (migrations/ creates the same tables).

Timestamps are stored in UTC and always come back timezone-aware (UtcDateTime). The custom
proxy password and the CDP token have no column on purpose: secrets never reach the database
(the token's digest does, for lookups).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime in, an aware UTC datetime out, on every backend (SQLite drops tzinfo)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store takes aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Ledger-style ids: 64-bit on PostgreSQL, SQLite's rowid alias INTEGER PRIMARY KEY on SQLite.
SerialId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(naming_convention=NAMING_CONVENTION)

projects = Table(
    "projects",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("concurrent_limit", Integer(), nullable=True),  # NULL: the server-wide default
    Column("credit_balance_micros", BigInteger(), nullable=True),  # NULL: unlimited
    Column("active_count", Integer(), nullable=False, server_default=text("0")),
    CheckConstraint("active_count >= 0", name="active_count_not_negative"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("project_id", Uuid(), ForeignKey("projects.id"), nullable=False, index=True),
    Column("digest", String(128), nullable=False, unique=True),
    Column("prefix", String(32), nullable=False, index=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("project_id", Uuid(), ForeignKey("projects.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("token_digest", String(64), nullable=False, unique=True),  # sha256 of the CDP token
    Column("timeout_minutes", Integer(), nullable=False),
    Column("screen_width", Integer(), nullable=False),
    Column("screen_height", Integer(), nullable=False),
    Column("allow_resizing", Boolean(), nullable=False),
    Column("pdf_viewer", Boolean(), nullable=False),
    Column("enable_recording", Boolean(), nullable=False),
    Column("solve_captchas", Boolean(), nullable=False),
    Column("proxy_country_code", String(8), nullable=True),
    Column("profile_id", String(64), nullable=True),
    Column("proxy_host", String(255), nullable=True),
    Column("proxy_port", Integer(), nullable=True),
    Column("proxy_username", String(255), nullable=True),
    Column("proxy_ignore_cert_errors", Boolean(), nullable=True),
    Column("metadata_json", JSON(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("timeout_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("stop_reason", String(16), nullable=True),
    Column("upfront_micros", BigInteger(), nullable=False),
    Column("cost_micros", BigInteger(), nullable=True),
    Column("proxy_bytes", BigInteger(), nullable=False, server_default=text("0")),
    Column("proxy_route", String(16), nullable=True),
    Column("proxy_rate_micros_per_gb", BigInteger(), nullable=False, server_default=text("0")),
    Column("proxy_cost_micros", BigInteger(), nullable=True),
    Column("owner", String(128), nullable=True),
    Column("browser_pid", Integer(), nullable=True),
    Column("session_dir", Text(), nullable=True),
    Column("api_key_id", Uuid(), nullable=True, index=True),
    # When the session's end (its end-of-session steps and teardown) was over; NULL while a
    # stopped session's state is still being saved.
    Column("ended_at", UtcDateTime(), nullable=True),
    # Serves "newest first" (started_at DESC, id DESC) by a backward scan on SQLite and
    # PostgreSQL alike; a plain index also keeps alembic's autogenerate comparison exact.
    Index("ix_sessions_project_started", "project_id", "started_at", "id"),
    Index("ix_sessions_owner_status", "owner", "status"),
    Index("ix_sessions_status_timeout", "status", "timeout_at"),
    Index("ix_sessions_profile_status", "profile_id", "status"),
)

profiles = Table(
    "profiles",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("project_id", Uuid(), ForeignKey("projects.id"), nullable=False),
    Column("name", String(100), nullable=True),
    Column("user_id", String(255), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("last_used_at", UtcDateTime(), nullable=True),
    Column("cookie_domains", JSON(), nullable=True),
    # The stored version sessions load (a blob key), its size, and when it was saved.
    Column("version_key", Text(), nullable=True),
    Column("version_bytes", BigInteger(), nullable=True),
    Column("saved_at", UtcDateTime(), nullable=True),
    Index("ix_profiles_project_created", "project_id", "created_at", "id"),
    Index("ix_profiles_project_user", "project_id", "user_id"),
)

session_metadata = Table(
    "session_metadata",
    metadata,
    Column("session_id", Uuid(), ForeignKey("sessions.id"), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("value", String(512), nullable=False),
    Index("ix_session_metadata_key_value", "key", "value"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", SerialId, primary_key=True, autoincrement=True),
    Column("project_id", Uuid(), ForeignKey("projects.id"), nullable=False, index=True),
    Column("session_id", Uuid(), ForeignKey("sessions.id"), nullable=True, index=True),
    Column("kind", String(16), nullable=False),
    Column("amount_micros", BigInteger(), nullable=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    CheckConstraint("kind IN ('charge', 'refund', 'credit_set', 'egress')", name="kind"),
    CheckConstraint("kind = 'credit_set' OR amount_micros IS NOT NULL", name="amount"),
)

instances = Table(
    "instances",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer(), nullable=False),
    Column("heartbeat_at", UtcDateTime(), nullable=False),
    # The base of the URLs this server hands out (its public URL); None: not configured.
    Column("public_url", String(2048), nullable=True),
)

# Values every server on one database must agree on, named; the first server to start writes
# each. Today: a check value derived from the server secret (never the secret itself), so a
# server started with another secret is refused instead of handing out CDP tokens the others
# cannot recognise.
shared_settings = Table(
    "shared_settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)
