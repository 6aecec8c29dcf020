"""the lead plugin's own tables, the first revision of its branch (issue 12)

Where the kernel's migrations 0005-0008 made them (an instance from before
plugins had branches), the duplicate scans and scoring tables are taken over
as they are; elsewhere they are made. Web forms become items of the metadata
kind `web_form`: each form an item named form_<its old id>, its owner kept by
login; its public key and submission count move to lh_web_form_keys, so the
pages that embed it keep posting to the same address. The per-minute hit
counts are transient and start afresh.

Revision ID: lead_0001
Revises: (the base of the lead branch; needs the kernel at 0014)
"""
import datetime

import sqlalchemy as sa
from alembic import op

from leadhub.platform.db import UTCDateTime

revision = "lead_0001"
down_revision = None
branch_labels = ("lead",)
depends_on = "0014"

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    conn = op.get_bind()
    existing = set(sa.inspect(conn).get_table_names())
    if "lh_duplicate_scans" not in existing:
        op.create_table(
            "lh_duplicate_scans",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("rule", sa.String(40), nullable=False),
            sa.Column("status", sa.String(20), nullable=False),
            sa.Column("requested_by", sa.Integer),
            sa.Column("created_at", UTCDateTime, nullable=False),
            sa.Column("finished_at", UTCDateTime),
            sa.Column("scanned", sa.Integer, nullable=False, server_default="0"),
            sa.Column("groups", sa.JSON),
            sa.Column("error", sa.Text),
        )
        op.create_index("ix_lh_duplicate_scans_rule", "lh_duplicate_scans", ["rule", "id"])
    if "lh_score_events" not in existing:
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
    if "lh_score_jobs" not in existing:
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
    keys = op.create_table(
        "lh_web_form_keys",
        sa.Column("form", sa.String(40), primary_key=True),
        sa.Column("public_key", sa.String(64), nullable=False, unique=True),
        sa.Column("submissions", sa.Integer, nullable=False, default=0),
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    items = sa.table("lh_meta_items", sa.column("data", sa.JSON), sa.column("created_at", UTCDateTime),
                     sa.column("updated_at", UTCDateTime),
                     *(sa.column(c) for c in ("kind", "key", "version", "plugin", "created_by", "updated_by")))
    history = sa.table("lh_meta_history", sa.column("data", sa.JSON), sa.column("at", UTCDateTime),
                       *(sa.column(c) for c in ("kind", "key", "version", "action", "actor_id", "note")))
    forms = sa.table("lh_web_forms", *(sa.column(c) for c in (
        "id", "name", "source", "campaign", "success_message", "redirect_url", "language", "active", "public_key",
        "owner", "submissions", "created_by")), sa.column("fields", sa.JSON),
        sa.column("created_at", UTCDateTime), sa.column("updated_at", UTCDateTime))
    logins = dict(conn.execute(sa.text("SELECT id, login FROM lh_users")).all())
    rows = conn.execute(sa.select(forms).order_by(forms.c.id)).mappings().all() if "lh_web_forms" in existing else []
    for row in rows:
        name = f"form_{row['id']}"
        data = {"api_name": name, "name": row["name"], "fields": row["fields"], "source": row["source"],
                "campaign": row["campaign"], "success_message": row["success_message"],
                "redirect_url": row["redirect_url"], "language": row["language"], "active": bool(row["active"]),
                "owner": logins.get(row["owner"])}
        conn.execute(history.insert().values(kind="web_form", key=name, version=1, action="created", data=data,
                                             actor_id=row["created_by"], at=row["created_at"] or now))
        conn.execute(items.insert().values(kind="web_form", key=name, data=data, version=1, plugin="lead",
                                           created_by=row["created_by"], updated_by=row["created_by"],
                                           created_at=row["created_at"] or now, updated_at=row["updated_at"] or now))
        conn.execute(keys.insert().values(form=name, public_key=row["public_key"], submissions=row["submissions"]))
    if rows:
        conn.execute(sa.text("UPDATE lh_meta_version SET version = version + 1"))
    if "lh_web_form_hits" in existing:
        op.drop_table("lh_web_form_hits")
    if "lh_web_forms" in existing:
        op.drop_table("lh_web_forms")
    op.create_table(
        "lh_web_form_hits",
        sa.Column("form", sa.String(40), primary_key=True),
        sa.Column("client", sa.String(64), primary_key=True),
        sa.Column("minute", sa.BigInteger, primary_key=True),
        sa.Column("hits", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("The lead plugin's tables and forms cannot be moved back; restore a backup.")
