"""old numbers of shared list views (issue 12): 0012 now keeps them in
lh_list_view_links so old links redirect; a database that ran 0012 before
that gets the table here, empty (those numbers are gone).

Revision ID: 0018
Revises: 0017
"""
import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "lh_list_view_links" not in sa.inspect(op.get_bind()).get_table_names():
        op.create_table(
            "lh_list_view_links",
            sa.Column("old_id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("object", sa.String(40), nullable=False),
            sa.Column("api_name", sa.String(40), nullable=False),
        )


def downgrade() -> None:
    """The table stays: 0012 made it on databases that ran it after this change."""
