"""metadata kinds: one table of items, one history, installed bundles (issue 12)

The lead plugin's rules and settings move from tables of their own into
lh_meta_items: duplicate rules, scoring rules, score event types, the
scoring settings and follow-up rules. Rows are copied only where the lead
plugin is installed (elsewhere the old tables hold nothing but seeds the
plugin now ships as metadata), then the old tables go.

Revision ID: 0009
Revises: 0008
"""
import datetime

import sqlalchemy as sa
from alembic import op

from leadhub.platform.db import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

OLD_TABLES = ("lh_duplicate_rules", "lh_scoring_rules", "lh_score_event_types", "lh_score_settings",
              "lh_follow_up_rules")


def upgrade() -> None:
    items = op.create_table(
        "lh_meta_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("plugin", sa.String(64)),
        sa.Column("created_by", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", sa.Integer),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("kind", "key", name="uq_lh_meta_items_kind_key"),
    )
    history = op.create_table(
        "lh_meta_history",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("data", sa.JSON),
        sa.Column("actor_id", sa.Integer),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("note", sa.String(200)),
        sa.UniqueConstraint("kind", "key", "version", name="uq_lh_meta_history_version"),
    )
    op.create_table(
        "lh_bundles",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("manifest", sa.JSON, nullable=False),
        sa.Column("baseline", sa.JSON, nullable=False),
        sa.Column("installed_at", UTCDateTime, nullable=False),
        sa.Column("upgraded_at", UTCDateTime, nullable=False),
    )
    conn = op.get_bind()
    lead_installed = conn.execute(sa.text("SELECT 1 FROM lh_plugins WHERE name = 'lead'")).first() is not None
    if lead_installed:
        rows = list(_old_items(conn))
        now = datetime.datetime.now(datetime.timezone.utc)
        if rows:
            op.bulk_insert(items, [{"kind": k, "key": key, "data": data, "version": 1, "plugin": "lead",
                                    "created_at": now, "updated_at": now} for k, key, data in rows])
            op.bulk_insert(history, [{"kind": k, "key": key, "version": 1, "action": "created", "data": data,
                                      "at": now, "note": "moved from the lead plugin's own tables"}
                                     for k, key, data in rows])
        conn.execute(sa.text("UPDATE lh_meta_version SET version = version + 1"))
    for name in OLD_TABLES:
        op.drop_table(name)


def _old_items(conn):
    m = lambda sql: conn.execute(sa.text(sql)).mappings().all()  # noqa: E731
    for r in m("SELECT * FROM lh_duplicate_rules ORDER BY id"):
        yield "duplicate_rule", r["name"], {
            "name": r["name"], "label": r["label"], "active": bool(r["active"]), "object": r["object"],
            "match_objects": _json(r["match_objects"]), "conditions": _json(r["conditions"]),
            "window_months": r["window_months"], "action": r["action"]}
    for r in m("SELECT * FROM lh_scoring_rules ORDER BY id"):
        name = f"rule_{r['id']}"
        yield "scoring_rule", name, {"name": name, "label": r["label"], "object": r["object"],
                                     "condition": r["condition"], "points": r["points"], "active": bool(r["active"])}
    for r in m("SELECT * FROM lh_score_event_types ORDER BY key"):
        yield "score_event_type", r["key"], {"key": r["key"], "label": _json(r["labels"]), "points": r["points"],
                                             "strength": r["strength"], "active": bool(r["active"])}
    for r in m("SELECT * FROM lh_score_settings WHERE id = 1"):
        yield "scoring_settings", "default", {"half_life_days": r["half_life_days"], "grades": _json(r["grades"]),
                                              "mql_threshold": r["mql_threshold"]}
    for r in m("SELECT * FROM lh_follow_up_rules ORDER BY id"):
        yield "follow_up_rule", r["status"], {"status": r["status"], "hours": r["hours"],
                                              "remind_before_hours": r["remind_before_hours"],
                                              "active": bool(r["active"])}


def _json(value):
    import json
    return json.loads(value) if isinstance(value, str) else value


def downgrade() -> None:
    raise NotImplementedError("Metadata moved into lh_meta_items cannot be moved back; restore a backup.")
