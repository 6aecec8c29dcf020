"""The execution log through the kernel's one query compiler: the log's
table is described as a read-only object, so `GET /meta/function-runs`
takes the same JSON filter tree, sort and paging as record lists."""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from leadhub.data.query import QueryCompiler, load_spec
from leadhub.functions.tables import function_runs
from leadhub.metadata.definitions import FieldDef, ObjectDef

if TYPE_CHECKING:
    from leadhub.runtime import Runtime

NAME = "function_run"
_TYPES = {"id": "integer", "function": "text", "version": "integer", "kind": "text", "trigger": "text",
          "user_id": "user", "run_as": "user", "object": "text", "record_id": "integer",
          "started_at": "datetime", "wall_ms": "integer", "cpu_ms": "integer", "peak_memory_kb": "integer",
          "reads": "integer", "writes": "integer", "queries": "integer", "outcome": "text",
          "error_type": "text", "error_message": "long_text", "error_line": "integer", "log": "long_text",
          "dry_run": "boolean"}


class _LogRegistry:
    """Just enough of a Registry for the compiler: one object, no lookups
    but users."""

    def __init__(self, obj: ObjectDef):
        self.obj = obj

    def get(self, name: str, **_kw) -> ObjectDef:
        return self.obj


@lru_cache(maxsize=1)
def _object() -> tuple[ObjectDef, sa.FromClause]:
    obj = ObjectDef(api_name=NAME, table_name=function_runs.name, labels={"en": "Function run", "zh_CN": "函数运行"})
    obj.fields = {name: FieldDef(object=NAME, api_name=name, type_name=type_name, labels={"en": name, "zh_CN": name},
                                 settings={"reference_to": "user"} if type_name == "user" else {}, system=True)
                  for name, type_name in _TYPES.items()}
    # the compiler filters out soft-deleted rows; log rows are never soft-deleted
    source = sa.select(function_runs, sa.null().label("deleted_at")).subquery("runs")
    return obj, source


def query_runs(runtime: "Runtime", actor, spec: Any) -> dict:
    spec = load_spec(spec if spec is not None else {})
    if not spec.sort:
        spec.sort = ["-id"]
    obj, source = _object()
    qc = QueryCompiler(_LogRegistry(obj), NAME, actor, runtime.config.timezone, table=source)
    stmt, count, cols = qc.compile(spec)
    with runtime.db.read() as conn:
        rows = conn.execute(stmt).all()
        total = conn.execute(count).scalar_one() if count is not None else None
    return {"runs": [{n: f.type.from_db(v) for (n, f), v in zip(cols, r)} for r in rows[:spec.page_size]],
            "page": spec.page, "page_size": spec.page_size, "has_more": len(rows) > spec.page_size, "total": total}
