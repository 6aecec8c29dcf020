"""web forms become items of the metadata kind `web_form` (issue 12)

Each form becomes an item named form_<its old id>, its owner kept by login;
its public key and submission count move to lh_web_form_keys, so the pages
that embed it keep posting to the same address. The per-minute hit counts
are transient and start afresh.

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
    rows = conn.execute(sa.select(forms).order_by(forms.c.id)).mappings().all()
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
    op.drop_table("lh_web_form_hits")
    op.drop_table("lh_web_forms")
    op.create_table(
        "lh_web_form_hits",
        sa.Column("form", sa.String(40), primary_key=True),
        sa.Column("client", sa.String(64), primary_key=True),
        sa.Column("minute", sa.BigInteger, primary_key=True),
        sa.Column("hits", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("Web forms moved into lh_meta_items cannot be moved back; restore a backup.")
