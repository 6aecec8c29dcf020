"""layouts, list views and menu order (issue 6)

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

from leadhub.platform.db import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lh_layouts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("object", sa.String(40), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_by", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", sa.Integer),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("object", "name", name="uq_lh_layouts_object_name"),
    )
    op.create_table(
        "lh_layout_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("layout_id", sa.Integer, sa.ForeignKey("lh_layouts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("saved_by", sa.Integer),
        sa.Column("saved_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("layout_id", "version", name="uq_lh_layout_versions_layout_version"),
    )
    op.create_table(
        "lh_layout_assignments",
        sa.Column("object", sa.String(40), primary_key=True),
        sa.Column("role", sa.String(40), primary_key=True),
        sa.Column("layout_id", sa.Integer, sa.ForeignKey("lh_layouts.id", ondelete="CASCADE"), nullable=False),
    )
    op.create_table(
        "lh_list_views",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("object", sa.String(40), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("columns", sa.JSON, nullable=False),
        sa.Column("filter", sa.JSON),
        sa.Column("sort", sa.JSON, nullable=False),
        sa.Column("shared", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("lh_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_lh_list_views_object_owner", "lh_list_views", ["object", "owner_id"])
    op.create_table(
        "lh_menu",
        sa.Column("object", sa.String(40), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("lh_menu")
    op.drop_index("ix_lh_list_views_object_owner", "lh_list_views")
    for name in ("lh_list_views", "lh_layout_assignments", "lh_layout_versions", "lh_layouts"):
        op.drop_table(name)
