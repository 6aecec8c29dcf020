"""server-side browser sessions (issue 13): signing out, a password reset or
deactivation ends a session for good

Revision ID: 0017
Revises: 0016
"""
import sqlalchemy as sa
from alembic import op

from leadhub.platform.db import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lh_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("lh_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_seen_at", UTCDateTime, nullable=False),
        sa.Column("ended_at", UTCDateTime),
        sa.Column("ip", sa.String(64)),
    )
    op.create_index("ix_lh_sessions_user_id", "lh_sessions", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_lh_sessions_user_id", "lh_sessions")
    op.drop_table("lh_sessions")
