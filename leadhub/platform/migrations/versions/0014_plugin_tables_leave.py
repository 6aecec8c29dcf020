"""plugin tables leave the kernel's migrations (issue 12)

Migrations 0005-0008 made the lead plugin's tables in every database. A
plugin's tables are now its own migrations' (plugins/<name>/migrations/, a
branch of its own, run when it is installed), so where the lead plugin is not
installed its tables go; only empty ones: a table holding rows is kept (and
named in the log) so nothing is lost. Where it is installed they stay, and
its branch takes them over.

Revision ID: 0014
Revises: 0013
"""
import logging

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

LEAD_TABLES = ("lh_duplicate_scans", "lh_score_events", "lh_score_jobs", "lh_web_form_hits", "lh_web_forms")


def upgrade() -> None:
    conn = op.get_bind()
    if conn.execute(sa.text("SELECT 1 FROM lh_plugins WHERE name = 'lead'")).first() is not None:
        return
    existing = set(sa.inspect(conn).get_table_names())
    for table in LEAD_TABLES:       # hits before forms: they point at them
        if table not in existing:
            continue
        if conn.execute(sa.text(f"SELECT 1 FROM {table} LIMIT 1")).first() is None:
            op.drop_table(table)
        else:
            logging.getLogger("alembic").warning("%s holds rows though the lead plugin is not installed; kept", table)


def downgrade() -> None:
    raise NotImplementedError("Plugin tables are their plugins' migrations' now; restore a backup.")
