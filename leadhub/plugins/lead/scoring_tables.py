"""Tables of lead scoring (created by migration 0007): settings (one row
whose `version` every rule, event type or settings change bumps, so each
process knows when its compiled rules are stale), attribute rules, behaviour
event types, the behaviour events themselves, and rescoring job rows."""
from __future__ import annotations

import sqlalchemy as sa

from leadhub.platform.db import UTCDateTime
from leadhub.platform.tables import metadata

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")

score_settings = sa.Table(
    "lh_score_settings", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("half_life_days", sa.Float, nullable=False),         # 0: behaviour points never decay
    sa.Column("grades", sa.JSON, nullable=False),                  # {"A": 80, "B": 50, "C": 20}; below C is D
    sa.Column("mql_threshold", sa.Integer),                        # null: nobody becomes an MQL
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_by", sa.Integer),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

scoring_rules = sa.Table(
    "lh_scoring_rules", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("object", sa.String(40), nullable=False),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("condition", sa.Text, nullable=False),               # the platform's expression language
    sa.Column("points", sa.Integer, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_by", sa.Integer),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.Integer),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_lh_scoring_rules_object", "object", "active"),
)

score_event_types = sa.Table(
    "lh_score_event_types", metadata,
    sa.Column("key", sa.String(40), primary_key=True),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("points", sa.Integer, nullable=False),
    sa.Column("strength", sa.String(8), nullable=False),           # strong | medium | weak
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# An event keeps the points its type had when it happened: changing a type
# later changes what new events are worth, not what old ones were.
score_events = sa.Table(
    "lh_score_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("lead_id", BigId, nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("points", sa.Integer, nullable=False),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("data", sa.JSON),
    sa.Column("created_by", sa.Integer),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_lh_score_events_lead", "lead_id", "occurred_at"),
    sa.Index("ix_lh_score_events_type", "type"),
)

score_jobs = sa.Table(
    "lh_score_jobs", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),              # rescore | decay
    sa.Column("status", sa.String(16), nullable=False),            # queued | running | finished | failed
    sa.Column("total", sa.Integer),
    sa.Column("done", sa.Integer, nullable=False, server_default="0"),
    sa.Column("changed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.Text),
    sa.Column("created_by", sa.Integer),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Index("ix_lh_score_jobs_status", "status"),
)
