"""record versions: every object table gets `version`, bumped by each change
through the record service, so a write that read an older version is refused
(optimistic concurrency, issue 13). Existing records start at 1.

Revision ID: 0016
Revises: 0015
"""
import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def _object_tables(conn) -> list[str]:
    existing = set(sa.inspect(conn).get_table_names())
    names = conn.execute(sa.text("SELECT table_name FROM lh_objects")).scalars().all()
    return [n for n in names if n in existing]


def upgrade() -> None:
    conn = op.get_bind()
    for table in _object_tables(conn):
        if "version" not in {c["name"] for c in sa.inspect(conn).get_columns(table)}:
            op.add_column(table, sa.Column("version", sa.Integer, nullable=False, server_default="1"))


def downgrade() -> None:
    conn = op.get_bind()
    for table in _object_tables(conn):
        op.drop_column(table, "version")
