"""functions, their versions and runs; the scheduler's due times (issue 4)

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

from leadhub.platform.db import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

RUN_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "lh_functions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("api_name", sa.String(40), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("object", sa.String(40)),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("run_as", sa.Integer, sa.ForeignKey("lh_users.id")),
        sa.Column("owner", sa.Integer, sa.ForeignKey("lh_users.id")),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("next_run_at", UTCDateTime),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("deleted_at", UTCDateTime),
    )
    # one live function per api name; deleted ones keep theirs for the log
    op.create_index("uq_lh_functions_api_name", "lh_functions", ["api_name"], unique=True,
                    sqlite_where=sa.text("deleted_at IS NULL"), postgresql_where=sa.text("deleted_at IS NULL"))
    op.create_index("ix_lh_functions_kind_object", "lh_functions", ["kind", "object"])
    op.create_index("ix_lh_functions_next_run", "lh_functions", ["next_run_at"])
    op.create_table(
        "lh_function_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("function_id", sa.Integer, sa.ForeignKey("lh_functions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("snapshot", sa.JSON, nullable=False),
        sa.Column("saved_by", sa.Integer),
        sa.Column("saved_at", UTCDateTime, nullable=False),
        sa.Column("note", sa.String(200)),
        sa.UniqueConstraint("function_id", "version", name="uq_lh_function_versions"),
    )
    op.create_table(
        "lh_function_runs",
        sa.Column("id", RUN_ID, primary_key=True),
        sa.Column("function", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("user_id", sa.Integer),
        sa.Column("run_as", sa.Integer),
        sa.Column("object", sa.String(40)),
        sa.Column("record_id", RUN_ID),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("wall_ms", sa.Integer),
        sa.Column("cpu_ms", sa.Integer),
        sa.Column("peak_memory_kb", sa.Integer),
        sa.Column("reads", sa.Integer, nullable=False, server_default="0"),
        sa.Column("writes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("queries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("error_type", sa.String(20)),
        sa.Column("error_message", sa.Text),
        sa.Column("error_line", sa.Integer),
        sa.Column("log", sa.Text),
        sa.Column("dry_run", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_lh_function_runs_function", "lh_function_runs", ["function", "started_at"])
    op.create_index("ix_lh_function_runs_started", "lh_function_runs", ["started_at"])
    op.create_table(
        "lh_schedules",
        sa.Column("name", sa.String(80), primary_key=True),
        sa.Column("next_run_at", UTCDateTime, nullable=False),
        sa.Column("last_run_at", UTCDateTime),
        sa.Column("last_error", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("lh_schedules")
    op.drop_table("lh_function_runs")
    op.drop_table("lh_function_versions")
    op.drop_table("lh_functions")
