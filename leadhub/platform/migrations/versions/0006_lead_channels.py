"""imports, web forms and follow-up rules (issue 7)

File imports (leadhub/data/imports.py) and web-to-lead forms
(leadhub/plugins/lead/webforms.py).

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

from leadhub.platform.db import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
OUTCOMES = ("created", "updated", "duplicate", "quarantined", "rejected", "skipped")


def upgrade() -> None:
    op.create_table(
        "lh_imports",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("object", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("stored_name", sa.String(80), nullable=False),
        sa.Column("file_format", sa.String(8), nullable=False),
        sa.Column("encoding", sa.String(16)),
        sa.Column("file_size", sa.BigInteger, nullable=False),
        sa.Column("header", sa.JSON, nullable=False),
        sa.Column("mapping", sa.JSON, nullable=False),
        sa.Column("update_key", sa.String(40)),
        sa.Column("warnings", sa.JSON, nullable=False),
        sa.Column("rows_total", sa.Integer),
        sa.Column("rows_done", sa.Integer, nullable=False),
        *[sa.Column(o, sa.Integer, nullable=False) for o in OUTCOMES],
        sa.Column("error", sa.Text),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("lh_users.id"), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("started_at", UTCDateTime),
        sa.Column("finished_at", UTCDateTime),
    )
    op.create_index("ix_lh_imports_created_by", "lh_imports", ["created_by", "id"])
    op.create_table(
        "lh_import_rows",
        sa.Column("id", ROW_ID, primary_key=True),
        sa.Column("import_id", sa.Integer, sa.ForeignKey("lh_imports.id", ondelete="CASCADE"), nullable=False),
        sa.Column("row_no", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("record_id", sa.BigInteger),
        sa.Column("reason", sa.Text),
        sa.Column("cells", sa.JSON, nullable=False),
    )
    op.create_index("ix_lh_import_rows_import", "lh_import_rows", ["import_id", "row_no"])
    op.create_table(
        "lh_import_keys",
        sa.Column("object", sa.String(40), primary_key=True),
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("record_id", sa.BigInteger, nullable=False),
        sa.Column("import_id", sa.Integer, nullable=False),
        sa.Column("row_no", sa.Integer, nullable=False),
    )
    op.create_table(
        "lh_import_mappings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("object", sa.String(40), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("mapping", sa.JSON, nullable=False),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("lh_users.id"), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("object", "name", name="uq_lh_import_mappings_object_name"),
    )
    op.create_table(
        "lh_web_forms",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("fields", sa.JSON, nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("campaign", sa.BigInteger),
        sa.Column("success_message", sa.Text),
        sa.Column("redirect_url", sa.String(500)),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False, unique=True),
        sa.Column("owner", sa.Integer, sa.ForeignKey("lh_users.id")),
        sa.Column("submissions", sa.Integer, nullable=False),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("lh_users.id")),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "lh_web_form_hits",
        sa.Column("form_id", sa.Integer, sa.ForeignKey("lh_web_forms.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("client", sa.String(64), primary_key=True),
        sa.Column("minute", sa.BigInteger, primary_key=True),
        sa.Column("hits", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("lh_web_form_hits")
    op.drop_table("lh_web_forms")
    op.drop_table("lh_import_mappings")
    op.drop_table("lh_import_keys")
    op.drop_index("ix_lh_import_rows_import", "lh_import_rows")
    op.drop_table("lh_import_rows")
    op.drop_index("ix_lh_imports_created_by", "lh_imports")
    op.drop_table("lh_imports")
