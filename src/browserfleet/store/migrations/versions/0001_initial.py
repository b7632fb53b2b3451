"""Initial schema: projects, api_keys, sessions, session_metadata, ledger_entries, instances.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    _create_projects_and_keys()
    _create_sessions()
    _create_session_metadata()
    _create_ledger_entries()
    op.create_table(
        "instances",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("heartbeat_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_instances"),
    )


def downgrade() -> None:
    for table in (
        "instances",
        "ledger_entries",
        "session_metadata",
        "sessions",
        "api_keys",
        "projects",
    ):
        op.drop_table(table)


def _create_projects_and_keys() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("concurrent_limit", sa.Integer(), nullable=True),
        sa.Column("credit_balance_micros", sa.BigInteger(), nullable=True),
        sa.Column("active_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint("active_count >= 0", name="ck_projects_active_count_not_negative"),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("name", name="uq_projects_name"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("revoked_at", _TZ, nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_api_keys_project_id_projects"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("digest", name="uq_api_keys_digest"),
    )
    op.create_index("ix_api_keys_project_id", "api_keys", ["project_id"])
    op.create_index("ix_api_keys_prefix", "api_keys", ["prefix"])


def _create_sessions() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("token", sa.String(128), nullable=False),
        sa.Column("timeout_minutes", sa.Integer(), nullable=False),
        sa.Column("screen_width", sa.Integer(), nullable=False),
        sa.Column("screen_height", sa.Integer(), nullable=False),
        sa.Column("allow_resizing", sa.Boolean(), nullable=False),
        sa.Column("pdf_viewer", sa.Boolean(), nullable=False),
        sa.Column("enable_recording", sa.Boolean(), nullable=False),
        sa.Column("solve_captchas", sa.Boolean(), nullable=False),
        sa.Column("proxy_country_code", sa.String(8), nullable=True),
        sa.Column("profile_id", sa.String(64), nullable=True),
        sa.Column("proxy_host", sa.String(255), nullable=True),
        sa.Column("proxy_port", sa.Integer(), nullable=True),
        sa.Column("proxy_username", sa.String(255), nullable=True),
        sa.Column("proxy_ignore_cert_errors", sa.Boolean(), nullable=True),
        sa.Column("metadata_json", sa.JSON(), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("started_at", _TZ, nullable=False),
        sa.Column("timeout_at", _TZ, nullable=False),
        sa.Column("finished_at", _TZ, nullable=True),
        sa.Column("stop_reason", sa.String(16), nullable=True),
        sa.Column("upfront_micros", sa.BigInteger(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=True),
        sa.Column("proxy_bytes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("proxy_route", sa.String(length=16), nullable=True),
        sa.Column(
            "proxy_rate_micros_per_gb", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("proxy_cost_micros", sa.BigInteger(), nullable=True),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("browser_pid", sa.Integer(), nullable=True),
        sa.Column("session_dir", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_sessions_project_id_projects"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.UniqueConstraint("token", name="uq_sessions_token"),
    )
    op.create_index("ix_sessions_project_started", "sessions", ["project_id", "started_at", "id"])
    op.create_index("ix_sessions_owner_status", "sessions", ["owner", "status"])
    op.create_index("ix_sessions_status_timeout", "sessions", ["status", "timeout_at"])


def _create_session_metadata() -> None:
    op.create_table(
        "session_metadata",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.String(512), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name="fk_session_metadata_session_id_sessions"
        ),
        sa.PrimaryKeyConstraint("session_id", "key", name="pk_session_metadata"),
    )
    op.create_index("ix_session_metadata_key_value", "session_metadata", ["key", "value"])


def _create_ledger_entries() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.CheckConstraint(
            "kind IN ('charge', 'refund', 'credit_set', 'egress')", name="ck_ledger_entries_kind"
        ),
        sa.CheckConstraint(
            "kind = 'credit_set' OR amount_micros IS NOT NULL", name="ck_ledger_entries_amount"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_ledger_entries_project_id_projects"
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name="fk_ledger_entries_session_id_sessions"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_entries"),
        sa.UniqueConstraint("idempotency_key", name="uq_ledger_entries_idempotency_key"),
    )
    op.create_index("ix_ledger_entries_project_id", "ledger_entries", ["project_id"])
    op.create_index("ix_ledger_entries_session_id", "ledger_entries", ["session_id"])
