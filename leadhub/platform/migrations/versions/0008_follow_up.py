"""notifications, follow-up deadline rules and reminders (issue 7)

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

from leadhub.platform.db import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lh_notifications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("lh_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False, server_default=""),
        sa.Column("link", sa.String(500)),
        sa.Column("data", sa.JSON),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("read_at", UTCDateTime),
        sa.Column("emailed_at", UTCDateTime),
    )
    op.create_index("ix_lh_notifications_user", "lh_notifications", ["user_id", "read_at", "id"])
    # the lead plugin's follow-up deadline rules: one per lead status
    op.create_table(
        "lh_follow_up_rules",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(40), nullable=False, unique=True),
        sa.Column("hours", sa.Integer, nullable=False),
        sa.Column("remind_before_hours", sa.Integer, nullable=False, server_default="0"),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("lh_follow_up_rules")
    op.drop_index("ix_lh_notifications_user", "lh_notifications")
    op.drop_table("lh_notifications")
