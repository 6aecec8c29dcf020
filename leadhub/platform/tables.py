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
    sa.Column("security_version", sa.Integer, nullable=False, server_default="1"),
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
    sa.Column("password_hash", sa.String(255)),
    sa.Column("phone", sa.String(32)),
    sa.Column("department_id", sa.Integer, sa.ForeignKey("lh_departments.id", name="fk_lh_users_department")),
    sa.Column("manager_id", sa.Integer, sa.ForeignKey("lh_users.id", name="fk_lh_users_manager")),
    sa.Column("timezone", sa.String(64), nullable=False, server_default="Asia/Shanghai"),
    sa.Column("working_hours", sa.JSON),   # {"days": [1..7], "start": "09:00", "end": "18:00"}
    sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
    sa.Column("locked_until", UTCDateTime),
    sa.Column("password_changed_at", UTCDateTime),
    sa.Index("ix_lh_users_department", "department_id"),      # named as migration 0002 made them
    sa.Index("ix_lh_users_manager", "manager_id"),
)

departments = sa.Table(
    "lh_departments", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("lh_departments.id")),
    sa.Column("head_id", sa.Integer, sa.ForeignKey("lh_users.id")),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

groups = sa.Table(
    "lh_groups", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

group_members = sa.Table(
    "lh_group_members", metadata,
    sa.Column("group_id", sa.Integer, sa.ForeignKey("lh_groups.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("lh_users.id", ondelete="CASCADE"), primary_key=True),
)

# objects: {"<object>" | "*": {"create", "read", "edit", "delete", "import", "export": bool,
#           "scope": "own" | "department" | "department_tree" | "all", "fields": {"<f>": "hidden"|"read"|"edit"}}}
roles = sa.Table(
    "lh_roles", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("api_name", sa.String(40), nullable=False, unique=True),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("objects", sa.JSON, nullable=False),
    sa.Column("builtin", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

user_roles = sa.Table(
    "lh_user_roles", metadata,
    sa.Column("user_id", sa.Integer, sa.ForeignKey("lh_users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role_id", sa.Integer, sa.ForeignKey("lh_roles.id", ondelete="CASCADE"), primary_key=True),
)

# A share opens one record (record_id) or all of one owner's records
# (record_id null, owner_id set) of an object to a user, group or department.
shares = sa.Table(
    "lh_shares", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("object", sa.String(40), nullable=False),
    sa.Column("record_id", sa.BigInteger().with_variant(sa.Integer, "sqlite")),
    sa.Column("owner_id", sa.Integer),
    sa.Column("principal_type", sa.String(16), nullable=False),
    sa.Column("principal_id", sa.Integer, nullable=False),
    sa.Column("access", sa.String(8), nullable=False),
    sa.Column("created_by", sa.Integer),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_lh_shares_record", "object", "record_id"),
    sa.Index("ix_lh_shares_owner", "object", "owner_id"),
    sa.Index("ix_lh_shares_principal", "principal_type", "principal_id"),
)

audit = sa.Table(
    "lh_audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor_id", sa.Integer),
    sa.Column("actor_login", sa.String(64)),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("object", sa.String(40)),
    sa.Column("target", sa.String(128)),
    sa.Column("details", sa.JSON),
    sa.Column("ip", sa.String(64)),
    sa.Index("ix_lh_audit_at", "at"),
    sa.Index("ix_lh_audit_action", "action", "at"),
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
    sa.Column("read_only", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("objects", sa.JSON),   # null: every object
)

# Browser sessions, kept on the server: the cookie carries a random id whose
# hash is the key here, so signing out, a password reset or deactivation ends
# a session for good (a copied cookie no longer works).
sessions = sa.Table(
    "lh_sessions", metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("lh_users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
    sa.Column("ip", sa.String(64)),
)

plugins = sa.Table(
    "lh_plugins", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("installed_at", UTCDateTime, nullable=False),
    sa.Column("upgraded_at", UTCDateTime, nullable=False),
)


# Periodic platform work (sweeps, scheduled functions, log retention): one row
# per registered task with its next due time (see scheduler.py).
schedules = sa.Table(
    "lh_schedules", metadata,
    sa.Column("name", sa.String(80), primary_key=True),
    sa.Column("next_run_at", UTCDateTime, nullable=False),
    sa.Column("last_run_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
)


# Background work (jobs.py): the database is its source of truth. A job row is
# written in the enqueuing transaction (an outbox), dispatched to RQ or run
# inline after commit, claimed by one runner, kept alive by a heartbeat, and
# retried or failed visibly when its runner dies.
jobs = sa.Table(
    "lh_jobs", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("fn", sa.String(200), nullable=False),              # dotted path of a module-level function
    sa.Column("args", sa.JSON, nullable=False),                   # {"args": [...], "kwargs": {...}}
    sa.Column("status", sa.String(16), nullable=False),           # pending | queued | running | done | failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False, server_default="3"),
    sa.Column("not_before", UTCDateTime, nullable=False),         # a retry waits until then
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("queued_at", UTCDateTime),
    sa.Column("started_at", UTCDateTime),
    sa.Column("heartbeat_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("worker", sa.String(120)),                          # host:pid of the runner
    sa.Column("error", sa.Text),
    sa.Index("ix_lh_jobs_status_not_before", "status", "not_before"),
)


# Metadata kinds (metadata/kinds.py): every rule, view and setting is one item
# of one kind, its definition a JSON document validated by the kind's schema.
# Objects and fields keep their own tables (they carry DDL) but share the
# history below.
meta_items = sa.Table(
    "lh_meta_items", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("plugin", sa.String(64)),          # installed by a plugin or bundle (its name)
    sa.Column("created_by", sa.Integer),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.Integer),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("kind", "key", name="uq_lh_meta_items_kind_key"),
)

# Every saved state of every item (and of objects and fields): created,
# updated, deleted, rolled back. History is appended, never rewritten.
meta_history = sa.Table(
    "lh_meta_history", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),    # created | updated | deleted | restored
    sa.Column("data", sa.JSON),                            # null once deleted
    sa.Column("actor_id", sa.Integer),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("note", sa.String(200)),
    sa.UniqueConstraint("kind", "key", "version", name="uq_lh_meta_history_version"),
)

# Bundles installed here: the manifest and every definition as installed,
# the baseline of a later upgrade's three-way merge.
bundles = sa.Table(
    "lh_bundles", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("manifest", sa.JSON, nullable=False),
    sa.Column("baseline", sa.JSON, nullable=False),        # {"<kind>/<key>": definition}
    sa.Column("installed_at", UTCDateTime, nullable=False),
    sa.Column("upgraded_at", UTCDateTime, nullable=False),
)
