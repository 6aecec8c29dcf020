"""The platform's own tables (lh_*), versioned by the Alembic migrations beside
this module. Objects defined at runtime get tables of their own (see ddl.py)."""
from __future__ import annotations

import sqlalchemy as sa

from leadhub.platform.db import UTCDateTime

metadata = sa.MetaData()

# One row; every metadata change bumps it in the same transaction, and every
# process compares it with the version its caches were built from.
meta_version = sa.Table(
    "lh_meta_version", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

objects = sa.Table(
    "lh_objects", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("api_name", sa.String(40), nullable=False, unique=True),
    sa.Column("table_name", sa.String(63), nullable=False, unique=True),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("name_field", sa.String(40)),
    sa.Column("track_history", sa.Boolean, nullable=False, default=False),
    sa.Column("plugin", sa.String(64)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("deleted_at", UTCDateTime),
)

fields = sa.Table(
    "lh_fields", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("object_id", sa.Integer, sa.ForeignKey("lh_objects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("api_name", sa.String(40), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("help_text", sa.JSON),
    sa.Column("required", sa.Boolean, nullable=False, default=False),
    sa.Column("is_unique", sa.Boolean, nullable=False, default=False),
    sa.Column("indexed", sa.Boolean, nullable=False, default=False),
    sa.Column("read_only", sa.Boolean, nullable=False, default=False),
    sa.Column("track_history", sa.Boolean, nullable=False, default=False),
    sa.Column("default_value", sa.JSON),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("position", sa.Integer, nullable=False, default=0),
    sa.Column("plugin", sa.String(64)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("deleted_at", UTCDateTime),
    sa.UniqueConstraint("object_id", "api_name", name="uq_lh_fields_object_api_name"),
)

field_history = sa.Table(
    "lh_field_history", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("object", sa.String(40), nullable=False),
    sa.Column("record_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    sa.Column("field", sa.String(40), nullable=False),
    sa.Column("old_value", sa.JSON),
    sa.Column("new_value", sa.JSON),
    sa.Column("changed_by", sa.Integer),
    sa.Column("changed_at", UTCDateTime, nullable=False),
    sa.Index("ix_lh_field_history_record", "object", "record_id"),
)

# Auto-number counters, one row per (object, field, period); the period is the
# pattern's date part, so `LD-{YYYY}{MM}-{00000}` restarts every month.
autonumbers = sa.Table(
    "lh_autonumbers", metadata,
    sa.Column("object", sa.String(40), primary_key=True),
    sa.Column("field", sa.String(40), primary_key=True),
    sa.Column("period", sa.String(16), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

users = sa.Table(
    "lh_users", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("login", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("email", sa.String(254)),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("language", sa.String(8), nullable=False, default="zh_CN"),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

api_tokens = sa.Table(
    "lh_api_tokens", metadata,
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

plugins = sa.Table(
    "lh_plugins", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("installed_at", UTCDateTime, nullable=False),
    sa.Column("upgraded_at", UTCDateTime, nullable=False),
)
