"""platform tables: metadata, field history, auto-numbers, users, tokens, plugins

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

from leadhub.platform.db import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = ("platform",)    # the kernel; each plugin has a branch of its own
depends_on = None


def upgrade() -> None:
    t = op.create_table("lh_meta_version",
                        sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("version", sa.Integer, nullable=False))
    op.bulk_insert(t, [{"id": 1, "version": 1}])
    op.create_table(
        "lh_objects",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("api_name", sa.String(40), nullable=False, unique=True),
        sa.Column("table_name", sa.String(63), nullable=False, unique=True),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("name_field", sa.String(40)),
        sa.Column("track_history", sa.Boolean, nullable=False),
        sa.Column("plugin", sa.String(64)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("deleted_at", UTCDateTime),
    )
    op.create_table(
        "lh_fields",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("object_id", sa.Integer, sa.ForeignKey("lh_objects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("api_name", sa.String(40), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("help_text", sa.JSON),
        sa.Column("required", sa.Boolean, nullable=False),
        sa.Column("is_unique", sa.Boolean, nullable=False),
        sa.Column("indexed", sa.Boolean, nullable=False),
        sa.Column("read_only", sa.Boolean, nullable=False),
        sa.Column("track_history", sa.Boolean, nullable=False),
        sa.Column("default_value", sa.JSON),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("plugin", sa.String(64)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("deleted_at", UTCDateTime),
        sa.UniqueConstraint("object_id", "api_name", name="uq_lh_fields_object_api_name"),
    )
    op.create_table(
        "lh_field_history",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("object", sa.String(40), nullable=False),
        sa.Column("record_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
        sa.Column("field", sa.String(40), nullable=False),
        sa.Column("old_value", sa.JSON),
        sa.Column("new_value", sa.JSON),
        sa.Column("changed_by", sa.Integer),
        sa.Column("changed_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_lh_field_history_record", "lh_field_history", ["object", "record_id"])
    op.create_table(
        "lh_autonumbers",
        sa.Column("object", sa.String(40), primary_key=True),
        sa.Column("field", sa.String(40), primary_key=True),
        sa.Column("period", sa.String(16), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "lh_users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("login", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("email", sa.String(254)),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "lh_api_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("lh_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(12), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime),
        sa.Column("last_used_at", UTCDateTime),
        sa.Column("revoked_at", UTCDateTime),
    )
    op.create_table(
        "lh_plugins",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("installed_at", UTCDateTime, nullable=False),
        sa.Column("upgraded_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    for name in ("lh_plugins", "lh_api_tokens", "lh_users", "lh_autonumbers",
                 "lh_field_history", "lh_fields", "lh_objects", "lh_meta_version"):
        op.drop_table(name)
