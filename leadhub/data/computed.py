"""Keeping computed fields current: formulas on every write of a record,
roll-up summaries on every write of a child, and backfills when a computed
field is added or changed. The record service and the metadata service both
call these; nothing else writes computed columns."""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Iterable

import sqlalchemy as sa

from leadhub.expressions import EvaluationError
from leadhub.metadata.registry import Registry
from leadhub.platform.errors import ValidationFailed
from leadhub.platform.permissions import Actor

log = logging.getLogger(__name__)
MAX_ROLLUP_DEPTH = 5
BATCH = 1000


def apply_formulas(registry: Registry, obj_name: str, values: dict[str, Any], now: dt.datetime) -> None:
    """Evaluate the object's formulas into `values`, dependencies first. A
    formula that fails on this record's data stores null (like a spreadsheet's
    #ERROR) rather than refusing the user's write; a result too large for
    its column is refused (422 naming the formula), never a database error."""
    for fd, expr in registry.formulas(obj_name):
        try:
            result = expr.evaluate(values, now)
        except EvaluationError as exc:
            log.info("formula %s.%s failed: %s", obj_name, fd.api_name, exc)
            result = None
        try:
            values[fd.api_name] = fd.type.coerce(fd, result)
        except OverflowError as exc:
            raise ValidationFailed({fd.api_name: f"The formula's result is too large to store: {exc}."},
                                   f"Formula {fd.api_name} gives a result too large to store"
                                   + (f" for record {values['id']}." if values.get("id") else ".")) from None


def initial_rollups(rollups, values: dict[str, Any]) -> None:
    """A new record has no children yet (`rollups`: the object's roll-up fields)."""
    for fd in rollups:
        values[fd.api_name] = 0 if fd.settings["function"] in ("count", "sum") else None


def _aggregate(registry: Registry, fd, link_col, child_table, actor: Actor):
    from leadhub.data.query import QueryCompiler  # query imports registry; avoid a cycle at import

    s = fd.settings
    fn = s["function"]
    if fn == "count":
        agg = sa.func.count(child_table.c.id)
    else:
        col = child_table.c[s["aggregate_field"]]
        agg = {"sum": sa.func.coalesce(sa.func.sum(col), 0), "min": sa.func.min(col), "max": sa.func.max(col)}[fn]
    where = [child_table.c.deleted_at.is_(None)]
    if s.get("filter"):
        compiler = QueryCompiler(registry, s["child_object"], Actor.system(), table=child_table)
        where.append(compiler.where(s["filter"]))
    return agg, where


def refresh_rollups(conn: sa.Connection, registry: Registry, child_name: str,
                    parent_ids: dict[str, set[int]], now: dt.datetime, depth: int = 0) -> None:
    """Recompute roll-ups fed by `child_name` for the given parents.
    `parent_ids` maps a child's link field to the parent ids it touched."""
    if depth > MAX_ROLLUP_DEPTH:
        return
    child_table = registry.table(child_name)
    touched: dict[str, set[int]] = {}
    for parent, fd in registry.rollups_fed_by(child_name):
        ids = {i for i in parent_ids.get(fd.settings["child_field"], ()) if i is not None}
        if not ids:
            continue
        link_col = child_table.c[fd.settings["child_field"]]
        agg, where = _aggregate(registry, fd, link_col, child_table, Actor.system())
        results = dict(conn.execute(
            sa.select(link_col, agg).where(link_col.in_(ids), *where).group_by(link_col)).all())
        empty = 0 if fd.settings["function"] in ("count", "sum") else None
        ptable = registry.table(parent.api_name)
        stmt = (sa.update(ptable).where(ptable.c.id == sa.bindparam("pid"))
                .values({fd.column: sa.bindparam("val")}))
        conn.execute(stmt, [{"pid": i, "val": results.get(i, empty)} for i in sorted(ids)])
        touched.setdefault(parent.api_name, set()).update(ids)
    for parent_name, ids in touched.items():
        recompute_records(conn, registry, parent_name, ids, now, depth + 1)


def recompute_records(conn: sa.Connection, registry: Registry, obj_name: str, ids: Iterable[int] | None,
                      now: dt.datetime, depth: int = 0) -> int:
    """Re-evaluate formulas of the given records (all live ones when ids is
    None) and pass the change up to the roll-ups they feed. Returns rows seen."""
    obj = registry.get(obj_name)
    table = registry.table(obj_name)
    formulas = registry.formulas(obj_name)
    feeds = registry.rollups_fed_by(obj_name)
    if not formulas and not feeds:
        return 0
    cols = [table.c[f.column] for f in obj.fields.values()]
    base = sa.select(*cols).where(table.c.deleted_at.is_(None)).order_by(table.c.id)
    id_list = None if ids is None else sorted(ids)
    seen, last_id = 0, None
    while True:
        stmt = base.limit(BATCH)
        if id_list is not None:
            chunk, id_list = id_list[:BATCH], id_list[BATCH:]
            if not chunk:
                break
            stmt = base.where(table.c.id.in_(chunk))
        elif last_id is not None:
            stmt = stmt.where(table.c.id > last_id)
        rows = conn.execute(stmt).mappings().all()
        if not rows:
            break
        seen += len(rows)
        last_id = rows[-1]["id"]
        updates = []
        for row in rows:
            values = {f.api_name: f.type.from_db(row[f.column]) for f in obj.fields.values()}
            before = {fd.api_name: values[fd.api_name] for fd, _ in formulas}
            apply_formulas(registry, obj_name, values, now)
            after = {k: values[k] for k in before}
            if after != before:
                updates.append({"pid": row["id"], **{f"v_{k}": v for k, v in after.items()}})
        if updates and formulas:
            stmt = (sa.update(table).where(table.c.id == sa.bindparam("pid"))
                    .values({fd.column: sa.bindparam(f"v_{fd.api_name}") for fd, _ in formulas}))
            conn.execute(stmt, updates)
        if feeds:
            links = {fd.settings["child_field"] for _p, fd in feeds}
            refresh_rollups(conn, registry, obj_name,
                            {link: {r[link] for r in rows} for link in links}, now, depth)
        if id_list is None and len(rows) < BATCH:
            break
    return seen


def backfill_rollup(conn: sa.Connection, registry: Registry, parent_name: str, fd, now: dt.datetime) -> None:
    """Compute a new or changed roll-up for every live parent in one statement."""
    child_table = registry.table(fd.settings["child_object"])
    ptable = registry.table(parent_name)
    link_col = child_table.c[fd.settings["child_field"]]
    agg, where = _aggregate(registry, fd, link_col, child_table, Actor.system())
    sub = sa.select(agg).where(link_col == ptable.c.id, *where).scalar_subquery()
    conn.execute(sa.update(ptable).where(ptable.c.deleted_at.is_(None)).values({fd.column: sub}))
    if fd.settings["function"] in ("count", "sum"):
        conn.execute(sa.update(ptable).where(ptable.c[fd.column].is_(None)).values({fd.column: 0}))
    recompute_records(conn, registry, parent_name, None, now)


def recompute_object(obj_name: str) -> int:
    """Job: re-evaluate every record's formulas (and the roll-ups they feed),
    e.g. nightly for formulas that read today(). Returns the records seen."""
    from leadhub.platform.db import utcnow
    from leadhub.platform.jobs import current_runtime

    runtime = current_runtime()
    with runtime.db.write() as conn:
        return recompute_records(conn, runtime.cache.current(conn), obj_name, None, utcnow())


recompute_object.job_label = "Formula recalculation"


def backfill(conn: sa.Connection, registry: Registry, obj_name: str, fd, now: dt.datetime) -> None:
    """Existing records' values of a new or changed formula or roll-up field
    (MetadataService calls this in the field's own transaction)."""
    if fd.type_name == "formula":
        recompute_records(conn, registry, obj_name, None, now)
    else:
        backfill_rollup(conn, registry, obj_name, fd, now)
