"""Indexes for the sorts shared list views declare.

A list view sorted by a field needs an index on it, or every page sorts the
whole table (118 ms at 1,000,000 rows); and a reader who sees only some
owners' records needs (owner, field) as well, or the query walks the field's
index past everyone else's rows (the query compiler then splits the page by
owner, see query._owner_branches). So for the first sort key of every shared
list view the kernel keeps, over live rows:

    ix_<table>__sort_<column>    (column, id)          unless the field already has an index
    ix_<table>__owner_<column>   (owner, column, id)

They are built after the list view's change commits, as a durable job: on
PostgreSQL with CREATE INDEX CONCURRENTLY, so writes to a big table go on
while it builds (an index a crash left half-built is dropped and built
again). Indexes no view sorts by any more are dropped the same way. The
metadata version is bumped afterwards so every process sees the new index
(Registry.owner_sorted). Personal views are a user's preference and get
none: a per-user index would not scale."""
from __future__ import annotations

import contextlib
import logging

import sqlalchemy as sa

from leadhub.metadata.definitions import ObjectDef
from leadhub.metadata.kind_service import bump_version
from leadhub.metadata.registry import Registry
from leadhub.platform import ddl, jobs

log = logging.getLogger(__name__)
LOCK_TIMEOUT_S = 120
SORT, OWNER = "_sort_", "_owner_"       # name parts no field can produce (api names start with a letter)


def sorted_fields(reg: Registry, obj: ObjectDef) -> list[str]:
    """The fields the object's shared list views sort by first (plain
    fields of the object; a lookup path sorts by another table)."""
    out = []
    for item in reg.items.get("list_view", {}).values():
        sort = item.data.get("sort") or []
        if item.data.get("object") == obj.api_name and sort and isinstance(sort[0], str):
            name = sort[0].lstrip("-")
            if name in obj.fields and name not in out and "." not in name:
                out.append(name)
    return out


def wanted(reg: Registry, obj: ObjectDef) -> dict[str, list[str]]:
    """{index name: columns} the object's list views need."""
    out: dict[str, list[str]] = {}
    for name in sorted_fields(reg, obj):
        fd = obj.fields[name]
        if fd.column == "id":
            continue                     # (owner, id) and the primary key are always there
        if not (ddl.has_own_index(fd) or fd.column == "created_at"):
            out[ddl.index_name(obj.table_name, SORT + fd.column, False)] = [fd.column, "id"]
        out[ddl.index_name(obj.table_name, OWNER + fd.column, False)] = ["owner", fd.column, "id"]
    return out


def unindexed(reg: Registry, obj: ObjectDef, paths) -> list[str]:
    """The filter or sort paths of a view no index serves (for the designer's warning):
    the object's own fields that are neither indexed nor a list view's sort."""
    sorts = set(sorted_fields(reg, obj))
    out = []
    for path in paths:
        fd = obj.fields.get(path.split(".")[0]) if isinstance(path, str) else None
        if fd is None or "." in path or fd.column in ("id", "owner", "created_at"):
            continue
        if not (ddl.has_own_index(fd) or path in sorts) and path not in out:
            out.append(path)
    return out


def schedule(runtime, obj_name: str) -> None:
    """Called in the list view's write: the indexes follow once it commits."""
    runtime.jobs.enqueue(sync_sort_indexes, obj_name)


def sync_sort_indexes(obj_name: str) -> dict:
    """Build the indexes the object's list views need and drop those no view
    needs; returns what it did."""
    rt = jobs.current_runtime()
    reg = rt.cache.current()
    obj = reg.objects.get(obj_name)
    if obj is None:
        return {"created": [], "dropped": []}
    want = wanted(reg, obj)
    created, dropped = [], []
    with _ddl_connection(rt) as conn:
        have = _ours(conn, obj.table_name)
        quote = conn.dialect.identifier_preparer.quote
        concurrently = " CONCURRENTLY" if conn.dialect.name == "postgresql" else ""
        for name, valid in have.items():
            if name not in want or not valid:
                conn.exec_driver_sql(f"DROP INDEX{concurrently} IF EXISTS {quote(name)}")
                dropped.append(name)
        for name, cols in want.items():
            if have.get(name):
                continue
            body = ", ".join(quote(c) for c in cols)
            conn.exec_driver_sql(f"CREATE INDEX{concurrently} IF NOT EXISTS {quote(name)} "
                                 f"ON {quote(obj.table_name)} ({body}) WHERE deleted_at IS NULL")
            created.append(name)
    if created or dropped:
        log.info("list view sort indexes on %s: created %s, dropped %s", obj.table_name, created, dropped)
        with rt.db.write() as conn:      # every process reloads and sees them (Registry.owner_sorted)
            bump_version(conn)
    return {"created": created, "dropped": dropped}


@contextlib.contextmanager
def _ddl_connection(rt):
    """PostgreSQL: a connection outside any transaction (CONCURRENTLY needs
    one; each statement commits alone). SQLite: one write transaction."""
    if rt.db.engine.dialect.name != "postgresql":
        with rt.db.write() as conn:
            yield conn
        return
    with rt.db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        # a concurrent build waits for every older transaction; one that never ends
        # (the caller's own, run inline) fails the job instead of hanging it
        conn.exec_driver_sql(f"SET lock_timeout = '{LOCK_TIMEOUT_S}s'")
        try:
            yield conn
        finally:
            conn.exec_driver_sql("RESET lock_timeout")


def _ours(conn: sa.Connection, table: str) -> dict[str, bool]:
    """This module's indexes on `table`: {name: built and valid}."""
    marks = (f"ix_{table}_{SORT}", f"ix_{table}_{OWNER}")
    if conn.dialect.name == "postgresql":
        rows = conn.execute(sa.text(
            "SELECT i.relname, x.indisvalid AND x.indisready FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "WHERE t.relname = :table AND t.relnamespace = to_regnamespace(current_schema())"),
            {"table": table}).all()
    else:
        rows = [(r[0], True) for r in conn.execute(
            sa.text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :table"), {"table": table})]
    return {name: bool(valid) for name, valid in rows if name.startswith(marks)}
