"""Persistent profiles: the profiles table, and sessions.ended_at (when a stopped session's end,
its state saved and its browser gone, was over) so a create with a profile can wait for a save
still in flight, across servers.

One self-contained revision: to put it after another one, change only down_revision.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
_TZ = sa.DateTime(timezone=True)
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "profiles",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("project_id", sa.Uuid(), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.Column("last_used_at", _TZ, nullable=True),
        sa.Column("cookie_domains", sa.JSON(), nullable=True),
        sa.Column("version_key", sa.Text(), nullable=True),
        sa.Column("version_bytes", sa.BigInteger(), nullable=True),
        sa.Column("saved_at", _TZ, nullable=True),
    )
    op.create_index("ix_profiles_project_created", "profiles", ["project_id", "created_at", "id"])
    op.create_index("ix_profiles_project_user", "profiles", ["project_id", "user_id"])
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("ended_at", _TZ, nullable=True))
        batch.create_index("ix_sessions_profile_status", ["profile_id", "status"])
    # Sessions stopped before this revision have long ended.
    sessions = sa.table(
        "sessions",
        sa.column("status", sa.String()),
        sa.column("finished_at", _TZ),
        sa.column("ended_at", _TZ),
    )
    op.execute(
        sessions.update()
        .where(sessions.c.status.in_(("stopped", "failed")))
        .values(ended_at=sessions.c.finished_at)
    )


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_index("ix_sessions_profile_status")
        batch.drop_column("ended_at")
    op.drop_index("ix_profiles_project_user", table_name="profiles")
    op.drop_index("ix_profiles_project_created", table_name="profiles")
    op.drop_table("profiles")
