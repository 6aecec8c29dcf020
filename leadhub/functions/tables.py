"""Tables of admin functions: the current definition, every saved version,
and the execution log. Created by migration 0003."""
from __future__ import annotations

import sqlalchemy as sa

from leadhub.platform.db import UTCDateTime
from leadhub.platform.tables import metadata

RUN_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

functions = sa.Table(
    "lh_functions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("api_name", sa.String(40), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("object", sa.String(40)),
    sa.Column("definition", sa.JSON, nullable=False),   # params, code, condition, schedule, limits, ...
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("run_as", sa.Integer, sa.ForeignKey("lh_users.id")),
    sa.Column("owner", sa.Integer, sa.ForeignKey("lh_users.id")),
    sa.Column("version", sa.Integer, nullable=False),
    # scheduled functions: when the scheduler should run it next (a database
    # column, so a restart or a Redis flush loses nothing)
    sa.Column("next_run_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("deleted_at", UTCDateTime),
    sa.Index("ix_lh_functions_kind_object", "kind", "object"),
    sa.Index("ix_lh_functions_next_run", "next_run_at"),
)

function_versions = sa.Table(
    "lh_function_versions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("function_id", sa.Integer, sa.ForeignKey("lh_functions.id", ondelete="CASCADE"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("snapshot", sa.JSON, nullable=False),
    sa.Column("saved_by", sa.Integer),
    sa.Column("saved_at", UTCDateTime, nullable=False),
    sa.Column("note", sa.String(200)),
    sa.UniqueConstraint("function_id", "version", name="uq_lh_function_versions"),
)

function_runs = sa.Table(
    "lh_function_runs", metadata,
    sa.Column("id", RUN_ID, primary_key=True),
    sa.Column("function", sa.String(40), nullable=False),
    sa.Column("version", sa.Integer),                   # None: draft code on the test bench
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
    sa.Column("reads", sa.Integer, nullable=False, default=0),
    sa.Column("writes", sa.Integer, nullable=False, default=0),
    sa.Column("queries", sa.Integer, nullable=False, default=0),
    sa.Column("outcome", sa.String(20), nullable=False),   # ok, refused, error, limit
    sa.Column("error_type", sa.String(20)),
    sa.Column("error_message", sa.Text),
    sa.Column("error_line", sa.Integer),
    sa.Column("log", sa.Text),
    sa.Column("dry_run", sa.Boolean, nullable=False, default=False),
    sa.Index("ix_lh_function_runs_function", "function", "started_at"),
    sa.Index("ix_lh_function_runs_started", "started_at"),
)
