"""scoring rules, score event types and behaviour events (issue 7)

Revision ID: 0007
Revises: 0006
"""
import datetime

import sqlalchemy as sa
from alembic import op

from leadhub.platform.db import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")

# The examples, so a fresh instance scores leads with reasons at once;
# admins change or delete them like any other rule or event type.
EVENT_TYPES = [
    ("website_enquiry", {"en": "Website enquiry", "zh_CN": "官网咨询"}, 30, "strong"),
    ("attended_event", {"en": "Attended an event", "zh_CN": "参加活动"}, 20, "medium"),
    ("replied_email", {"en": "Replied to an email", "zh_CN": "回复邮件"}, 10, "weak"),
    ("reported_spam", {"en": "Reported as spam", "zh_CN": "举报垃圾信息"}, -50, "strong"),
]
RULES = [
    ("Company with 500+ employees", "company_size >= 500", 20),
    ("Target industry (IT, finance)", "industry in ['it', 'finance']", 15),
]


def upgrade() -> None:
    settings = op.create_table(
        "lh_score_settings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("half_life_days", sa.Float, nullable=False),
        sa.Column("grades", sa.JSON, nullable=False),
        sa.Column("mql_threshold", sa.Integer),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_by", sa.Integer),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    rules = op.create_table(
        "lh_scoring_rules",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("object", sa.String(40), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("condition", sa.Text, nullable=False),
        sa.Column("points", sa.Integer, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_by", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", sa.Integer),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_lh_scoring_rules_object", "lh_scoring_rules", ["object", "active"])
    types = op.create_table(
        "lh_score_event_types",
        sa.Column("key", sa.String(40), primary_key=True),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("points", sa.Integer, nullable=False),
        sa.Column("strength", sa.String(8), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "lh_score_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("lead_id", BigId, nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("points", sa.Integer, nullable=False),
        sa.Column("occurred_at", UTCDateTime, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("data", sa.JSON),
        sa.Column("created_by", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_lh_score_events_lead", "lh_score_events", ["lead_id", "occurred_at"])
    op.create_index("ix_lh_score_events_type", "lh_score_events", ["type"])
    op.create_table(
        "lh_score_jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer),
        sa.Column("done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("changed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.Column("created_by", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("started_at", UTCDateTime),
        sa.Column("finished_at", UTCDateTime),
    )
    op.create_index("ix_lh_score_jobs_status", "lh_score_jobs", ["status"])
    now = datetime.datetime.now(datetime.timezone.utc)
    op.bulk_insert(settings, [{"id": 1, "half_life_days": 30.0, "grades": {"A": 80, "B": 50, "C": 20},
                               "mql_threshold": 60, "version": 1, "updated_at": now}])
    op.bulk_insert(types, [{"key": k, "labels": labels, "points": p, "strength": s, "active": True,
                            "created_at": now, "updated_at": now} for k, labels, p, s in EVENT_TYPES])
    op.bulk_insert(rules, [{"object": "lead", "label": label, "condition": cond, "points": p, "active": True,
                            "created_at": now, "updated_at": now} for label, cond, p in RULES])


def downgrade() -> None:
    for name in ("lh_score_jobs", "lh_score_events", "lh_score_event_types", "lh_scoring_rules",
                 "lh_score_settings"):
        op.drop_table(name)
