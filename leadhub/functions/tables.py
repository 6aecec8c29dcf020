"""Tables of admin functions: when scheduled ones run next (migration 0011)
and the execution log (migration 0003). Definitions and their versions are
metadata items (the kind `function`)."""
from __future__ import annotations

import sqlalchemy as sa

from leadhub.platform.db import UTCDateTime
from leadhub.platform.tables import metadata

RUN_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

# When each active scheduled function runs next: a database column, so a
# restart or a Redis flush loses nothing. The definitions themselves are
# items of the metadata kind `function` (service.py).
schedules = sa.Table(
    "lh_function_schedules", metadata,
    sa.Column("function", sa.String(40), primary_key=True),
    sa.Column("next_run_at", UTCDateTime, nullable=False),
    sa.Index("ix_lh_function_schedules_next_run", "next_run_at"),
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
