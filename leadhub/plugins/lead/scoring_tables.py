"""Tables of lead scoring (made by the plugin's own migrations, migrations/):
the behaviour events and rescoring job rows. Rules, event types and settings are metadata kinds
(scoring_config.py)."""
from __future__ import annotations

import sqlalchemy as sa

from leadhub.platform.db import UTCDateTime
from leadhub.platform.tables import metadata

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")

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
    info={"plugin": "lead"},       # made by the plugin's own migrations
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
    info={"plugin": "lead"},       # made by the plugin's own migrations
)
