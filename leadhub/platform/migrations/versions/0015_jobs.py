"""durable jobs: lh_jobs, the outbox of background work (issue 13)

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op

from leadhub.platform.db import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lh_jobs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("fn", sa.String(200), nullable=False),
        sa.Column("args", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=False, server_default="3"),
        sa.Column("not_before", UTCDateTime, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("queued_at", UTCDateTime),
        sa.Column("started_at", UTCDateTime),
        sa.Column("heartbeat_at", UTCDateTime),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("worker", sa.String(120)),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_lh_jobs_status_not_before", "lh_jobs", ["status", "not_before"])


def downgrade() -> None:
    op.drop_index("ix_lh_jobs_status_not_before", "lh_jobs")
    op.drop_table("lh_jobs")
