"""layouts, shared list views and the menu become metadata items (issue 12)

Each layout becomes an item of the kind `layout` keyed "<object>.<name>",
with the roles assigned to it (lh_layout_assignments) in its definition and
its saved versions (lh_layout_versions) as its history. Each shared list
view becomes an item of `list_view` named after its English name (as the
plugins' files name theirs; view_<old id> when that is taken or empty), so
a plugin upgrade matches it; its old number is kept in lh_list_view_links,
so links that named it by that number are redirected. Personal views stay in lh_list_views. The menu
order becomes the singleton item of `menu`.

Revision ID: 0012
Revises: 0011
"""
import datetime
import json
import re

import sqlalchemy as sa
from alembic import op

from leadhub.platform.db import UTCDateTime

revision = "0012"
down_revision = "0011"
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
    layouts = sa.table("lh_layouts", *(sa.column(c) for c in (
        "id", "object", "name", "is_default", "version", "created_by", "updated_by")),
        sa.column("definition", sa.JSON), sa.column("created_at", UTCDateTime), sa.column("updated_at", UTCDateTime))
    versions = sa.table("lh_layout_versions", *(sa.column(c) for c in (
        "layout_id", "version", "name", "is_default", "saved_by")), sa.column("definition", sa.JSON),
        sa.column("saved_at", UTCDateTime))
    assignments = sa.table("lh_layout_assignments", *(sa.column(c) for c in ("object", "role", "layout_id")))
    views = sa.table("lh_list_views", *(sa.column(c) for c in (
        "id", "object", "shared", "owner_id", "position")), *(sa.column(c, sa.JSON) for c in (
            "labels", "columns", "filter", "sort")),
        sa.column("created_at", UTCDateTime), sa.column("updated_at", UTCDateTime))
    menu = sa.table("lh_menu", sa.column("object"), sa.column("position"))
    changed = False

    roles: dict[int, list[str]] = {}
    for role, lid in conn.execute(sa.select(assignments.c.role, assignments.c.layout_id)):
        roles.setdefault(lid, []).append(role)
    for row in conn.execute(sa.select(layouts).order_by(layouts.c.id)).mappings().all():
        key = f"{row['object']}.{row['name']}"

        def data(name, default, definition):
            return {"object": row["object"], "name": name, "default": bool(default), **_json(definition),
                    "roles": sorted(roles.get(row["id"], []))}
        saved = conn.execute(sa.select(versions).where(versions.c.layout_id == row["id"])
                             .order_by(versions.c.version)).mappings().all()
        for i, v in enumerate(saved):
            conn.execute(history.insert().values(
                kind="layout", key=key, version=v["version"], action="created" if i == 0 else "updated",
                data=data(v["name"], v["is_default"], v["definition"]), actor_id=v["saved_by"], at=v["saved_at"]))
        conn.execute(items.insert().values(
            kind="layout", key=key, data=data(row["name"], row["is_default"], row["definition"]),
            version=row["version"], created_by=row["created_by"], updated_by=row["updated_by"],
            created_at=row["created_at"] or now, updated_at=row["updated_at"] or now))
        changed = True

    links = op.create_table(
        "lh_list_view_links",
        sa.Column("old_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("object", sa.String(40), nullable=False),
        sa.Column("api_name", sa.String(40), nullable=False),
    )
    taken: set[tuple[str, str]] = set()
    for row in conn.execute(sa.select(views).where(views.c.shared.is_(True)).order_by(views.c.id)).mappings().all():
        labels = _json(row["labels"]) or {}
        name = re.sub(r"[^a-z0-9]+", "_", (labels.get("en") or "").lower()).strip("_")[:36]
        if not name or not name[0].isalpha() or (row["object"], name) in taken:
            name = f"view_{row['id']}"
        taken.add((row["object"], name))
        data = {"object": row["object"], "api_name": name, "name": _json(row["labels"]),
                "columns": _json(row["columns"]), "filter": _json(row["filter"]) or None,
                "sort": _json(row["sort"]) or [], "position": row["position"]}
        key = f"{row['object']}.{name}"
        conn.execute(links.insert().values(old_id=row["id"], object=row["object"], api_name=name))
        conn.execute(history.insert().values(kind="list_view", key=key, version=1, action="created", data=data,
                                             actor_id=row["owner_id"], at=row["created_at"] or now))
        conn.execute(items.insert().values(kind="list_view", key=key, data=data, version=1,
                                           created_by=row["owner_id"], updated_by=row["owner_id"],
                                           created_at=row["created_at"] or now, updated_at=row["updated_at"] or now))
        changed = True
    conn.execute(sa.delete(views).where(views.c.shared.is_(True)))

    order = list(conn.execute(sa.select(menu.c.object).order_by(menu.c.position)).scalars())
    if order:
        data = {"objects": order}
        conn.execute(history.insert().values(kind="menu", key="default", version=1, action="created", data=data,
                                             at=now))
        conn.execute(items.insert().values(kind="menu", key="default", data=data, version=1, created_at=now,
                                           updated_at=now))
        changed = True
    if changed:
        conn.execute(sa.text("UPDATE lh_meta_version SET version = version + 1"))
    op.drop_table("lh_menu")
    op.drop_table("lh_layout_assignments")
    op.drop_table("lh_layout_versions")
    op.drop_table("lh_layouts")


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def downgrade() -> None:
    raise NotImplementedError("Layouts, shared views and the menu moved into lh_meta_items cannot be moved back; "
                              "restore a backup.")
