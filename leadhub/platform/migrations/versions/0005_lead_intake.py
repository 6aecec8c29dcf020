"""lead cleaning, duplicate rules and scoring (issue 7)

Revision ID: 0005
Revises: 0004

Tables of the lead plugin's intake (leadhub/plugins/lead/intake_tables.py
declares the same tables for the code): blacklists, duplicate rules and
duplicate scans.
"""
import sqlalchemy as sa
from alembic import op

from leadhub.platform.db import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lh_lead_blacklist",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("note", sa.String(500)),
        sa.Column("created_by", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("type", "value", name="uq_lh_lead_blacklist_type_value"),
    )
    op.create_table(
        "lh_duplicate_rules",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(40), nullable=False, unique=True),
        sa.Column("label", sa.String(100)),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("object", sa.String(40), nullable=False),
        sa.Column("match_objects", sa.JSON, nullable=False),
        sa.Column("conditions", sa.JSON, nullable=False),
        sa.Column("window_months", sa.Integer),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_lh_duplicate_rules_object", "lh_duplicate_rules", ["object", "active"])
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


def downgrade() -> None:
    op.drop_index("ix_lh_duplicate_scans_rule", "lh_duplicate_scans")
    op.drop_table("lh_duplicate_scans")
    op.drop_index("ix_lh_duplicate_rules_object", "lh_duplicate_rules")
    op.drop_table("lh_duplicate_rules")
    op.drop_table("lh_lead_blacklist")
