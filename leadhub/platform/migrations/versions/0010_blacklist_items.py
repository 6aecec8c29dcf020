"""blacklists become items of the metadata kind `blacklist` (issue 12)

Each row of lh_lead_blacklist becomes an item keyed "<type>:<value>" (the
values were stored normalised already), with a first version, where the
lead plugin is installed; then the table goes.

Revision ID: 0010
Revises: 0009
"""
import datetime

import sqlalchemy as sa
from alembic import op

from leadhub.platform.db import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    if conn.execute(sa.text("SELECT 1 FROM lh_plugins WHERE name = 'lead'")).first() is not None:
        now = datetime.datetime.now(datetime.timezone.utc)
        rows = conn.execute(sa.text("SELECT type, value, note FROM lh_lead_blacklist ORDER BY id")).mappings().all()
        items = sa.table("lh_meta_items", sa.column("data", sa.JSON), sa.column("created_at", UTCDateTime),
                         sa.column("updated_at", UTCDateTime),
                         *(sa.column(c) for c in ("kind", "key", "version", "plugin")))
        history = sa.table("lh_meta_history", sa.column("data", sa.JSON), sa.column("at", UTCDateTime),
                           *(sa.column(c) for c in ("kind", "key", "version", "action", "note")))
        entries = [(f"{r['type']}:{r['value']}", {"type": r["type"], "value": r["value"], "note": r["note"]})
                   for r in rows]
        if entries:
            conn.execute(items.insert(), [{"kind": "blacklist", "key": k, "data": d,
                                           "version": 1, "plugin": "lead", "created_at": now, "updated_at": now}
                                          for k, d in entries])
            conn.execute(history.insert(), [{"kind": "blacklist", "key": k, "version": 1, "action": "created",
                                             "data": d, "at": now,
                                             "note": "moved from lh_lead_blacklist"} for k, d in entries])
            conn.execute(sa.text("UPDATE lh_meta_version SET version = version + 1"))
    op.drop_table("lh_lead_blacklist")


def downgrade() -> None:
    raise NotImplementedError("Blacklists moved into lh_meta_items cannot be moved back; restore a backup.")
