"""saved import mappings become items of the metadata kind `import_mapping` (issue 12)

Each saved mapping becomes an item keyed "<object>.<name>", its author kept
as the item's creator (who, with admins, may change or delete it).

Revision ID: 0013
Revises: 0012
"""
import datetime

import sqlalchemy as sa
from alembic import op

from leadhub.platform.db import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    now = datetime.datetime.now(datetime.timezone.utc)
    items = sa.table("lh_meta_items", sa.column("data", sa.JSON), sa.column("created_at", UTCDateTime),
                     sa.column("updated_at", UTCDateTime),
                     *(sa.column(c) for c in ("kind", "key", "version", "plugin", "created_by", "updated_by")))
    history = sa.table("lh_meta_history", sa.column("data", sa.JSON), sa.column("at", UTCDateTime),
                       *(sa.column(c) for c in ("kind", "key", "version", "action", "actor_id", "note")))
    mappings = sa.table("lh_import_mappings", *(sa.column(c) for c in ("id", "object", "name", "created_by")),
                        sa.column("mapping", sa.JSON), sa.column("created_at", UTCDateTime))
    rows = conn.execute(sa.select(mappings).order_by(mappings.c.id)).mappings().all()
    for row in rows:
        key = f"{row['object']}.{row['name']}"
        data = {"object": row["object"], "name": row["name"], "mapping": row["mapping"]}
        at = row["created_at"] or now
        conn.execute(history.insert().values(kind="import_mapping", key=key, version=1, action="created", data=data,
                                             actor_id=row["created_by"], at=at))
        conn.execute(items.insert().values(kind="import_mapping", key=key, data=data, version=1,
                                           created_by=row["created_by"], updated_by=row["created_by"],
                                           created_at=at, updated_at=at))
    if rows:
        conn.execute(sa.text("UPDATE lh_meta_version SET version = version + 1"))
    op.drop_table("lh_import_mappings")


def downgrade() -> None:
    raise NotImplementedError("Import mappings moved into lh_meta_items cannot be moved back; restore a backup.")
