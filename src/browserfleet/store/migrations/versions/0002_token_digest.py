"""CDP tokens are no longer stored: sessions keep a sha256 digest of theirs; and the API key that
created each session, so revoking a key can stop its sessions.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("token_digest", sa.String(64), nullable=True))
        batch.add_column(sa.Column("api_key_id", sa.Uuid(), nullable=True))
    sessions = sa.table(
        "sessions",
        sa.column("id"),
        sa.column("token", sa.String()),
        sa.column("token_digest", sa.String()),
    )
    connection = op.get_bind()
    for session_id, token in connection.execute(sa.select(sessions.c.id, sessions.c.token)):
        digest = hashlib.sha256(token.encode()).hexdigest()
        connection.execute(
            sessions.update().where(sessions.c.id == session_id).values(token_digest=digest)
        )
    with op.batch_alter_table("sessions") as batch:
        batch.drop_constraint("uq_sessions_token", type_="unique")
        batch.drop_column("token")
        batch.alter_column("token_digest", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint("uq_sessions_token_digest", ["token_digest"])
        batch.create_index("ix_sessions_api_key_id", ["api_key_id"])


def downgrade() -> None:
    raise NotImplementedError("CDP tokens cannot be recovered from their digests")
