"""functions become items of the metadata kind `function` (issue 12)

Each live row of lh_functions becomes an item keyed by its api name, its
saved versions (lh_function_versions) its history; run-as users are kept by
login. When scheduled functions run next moves to lh_function_schedules.
Deleted functions keep their versions in the history as deleted items.

Revision ID: 0011
Revises: 0010
"""
import datetime
import json

import sqlalchemy as sa
from alembic import op

from leadhub.platform.db import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COLUMNS = ("api_name", "label", "description", "kind", "object", "active", "run_as")


def upgrade() -> None:
    schedules = op.create_table(
        "lh_function_schedules",
        sa.Column("function", sa.String(40), primary_key=True),
        sa.Column("next_run_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_lh_function_schedules_next_run", "lh_function_schedules", ["next_run_at"])
    conn = op.get_bind()
    logins = dict(conn.execute(sa.text("SELECT id, login FROM lh_users")).all())
    items = sa.table("lh_meta_items", sa.column("data", sa.JSON), sa.column("created_at", UTCDateTime),
                     sa.column("updated_at", UTCDateTime),
                     *(sa.column(c) for c in ("kind", "key", "version", "plugin", "created_by", "updated_by")))
    history = sa.table("lh_meta_history", sa.column("data", sa.JSON), sa.column("at", UTCDateTime),
                       *(sa.column(c) for c in ("kind", "key", "version", "action", "actor_id", "note")))
    fns = sa.table("lh_functions", *(sa.column(c) for c in (
        "id", "api_name", "description", "kind", "object", "active", "run_as", "owner", "version")),
        sa.column("labels", sa.JSON), sa.column("definition", sa.JSON), sa.column("next_run_at", UTCDateTime),
        sa.column("created_at", UTCDateTime), sa.column("updated_at", UTCDateTime),
        sa.column("deleted_at", UTCDateTime))
    versions = sa.table("lh_function_versions", *(sa.column(c) for c in (
        "function_id", "version", "saved_by", "note")), sa.column("snapshot", sa.JSON),
        sa.column("saved_at", UTCDateTime))

    def portable(data: dict) -> dict:
        data = {k: v for k, v in data.items() if v is not None and k != "note"}
        if isinstance(data.get("run_as"), int):
            data["run_as"] = logins.get(data["run_as"])
        return {k: v for k, v in data.items() if v is not None}

    now = datetime.datetime.now(datetime.timezone.utc)
    rows = conn.execute(sa.select(fns)).mappings().all()
    for row in rows:
        saved = conn.execute(sa.select(versions).where(versions.c.function_id == row["id"])
                             .order_by(versions.c.version)).mappings().all()
        for i, v in enumerate(saved):
            conn.execute(history.insert().values(
                kind="function", key=row["api_name"], version=v["version"], action="created" if i == 0 else "updated",
                data=portable(_json(v["snapshot"])), actor_id=v["saved_by"], at=v["saved_at"], note=v["note"]))
        if row["deleted_at"] is not None:
            conn.execute(history.insert().values(
                kind="function", key=row["api_name"], version=(saved[-1]["version"] if saved else 0) + 1,
                action="deleted", data=None, at=row["deleted_at"]))
            continue
        data = portable({"api_name": row["api_name"], "label": _json(row["labels"]),
                         "description": row["description"], "kind": row["kind"], "object": row["object"],
                         "active": bool(row["active"]), "run_as": row["run_as"], **_json(row["definition"])})
        conn.execute(items.insert().values(kind="function", key=row["api_name"], data=data, version=row["version"],
                                           created_by=row["owner"], created_at=row["created_at"] or now,
                                           updated_at=row["updated_at"] or now))
        if row["next_run_at"] is not None and row["active"] and row["kind"] == "scheduled":
            conn.execute(schedules.insert().values(function=row["api_name"], next_run_at=row["next_run_at"]))
    if rows:
        conn.execute(sa.text("UPDATE lh_meta_version SET version = version + 1"))
    op.drop_table("lh_function_versions")
    op.drop_table("lh_functions")


def _json(value):
    return json.loads(value) if isinstance(value, str) else (value or {})


def downgrade() -> None:
    raise NotImplementedError("Functions moved into lh_meta_items cannot be moved back; restore a backup.")
