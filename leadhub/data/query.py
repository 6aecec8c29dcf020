"""The query compiler: a JSON filter tree, sort, field selection and page
become one SQLAlchemy Core SELECT, with the caller's permission predicate
added. Every read (API, pages, reports, pools, roll-up filters, functions)
goes through it; no SQL text is ever built from input.

Filter tree:
  {"field": "city", "op": "eq", "value": "深圳"}
  {"and": [node, ...]}  {"or": [node, ...]}  {"not": node}
A bare list means "and". Fields may cross lookups: "owner.name", "campaign.name".
On user fields the value "$me" is the reader: {"field": "owner", "op": "eq", "value": "$me"};
on date and datetime fields "$now" is when the query runs.
"""
from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field as dc_field
from typing import Any

import marshmallow as mm
import sqlalchemy as sa

from leadhub.metadata.definitions import FieldDef, ObjectDef
from leadhub.metadata.registry import Registry
from leadhub.metadata.types.base import RELATIVE_DATES
from leadhub.platform import permissions, tables as t
from leadhub.platform.errors import BadRequest, Forbidden
from leadhub.platform.permissions import Actor

MAX_DEPTH = 3          # lookups followed in one path, e.g. a.b.c
MAX_NODES = 200        # filter tree size
MAX_NESTING = 20       # and/or/not levels
MAX_SORT = 5
MAX_IN = 1000          # values in one in/not_in list
MAX_OWNER_BRANCHES = 8    # a scoped page is split by owner up to this many (measured: bench_scope)
USER = "user"
ME = "$me"         # a filter value on user fields: the reader's own id
NOW = "$now"       # on date and datetime fields: when the query runs

USER_OBJECT = ObjectDef(api_name=USER, table_name="lh_users", labels={"en": "User", "zh_CN": "用户"})
USER_OBJECT.fields = {name: FieldDef(object=USER, api_name=name, type_name=type_name,
                                     labels={"en": name, "zh_CN": name}, system=True)
                      for name, type_name in [("id", "integer"), ("login", "text"), ("name", "text"),
                                              ("email", "email"), ("active", "boolean")]}


@dataclass
class QuerySpec:
    filter: Any = None
    sort: list = dc_field(default_factory=list)
    fields: list[str] | None = None
    page: int = 1
    page_size: int = 50
    count: bool = False
    deleted: bool = False  # True: the recycle bin (soft-deleted records) instead


class QuerySpecSchema(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    filter = mm.fields.Raw(load_default=None, allow_none=True)
    sort = mm.fields.Raw(load_default=list)
    fields = mm.fields.List(mm.fields.String(), load_default=None, allow_none=True)
    page = mm.fields.Integer(load_default=1, strict=True, validate=mm.validate.Range(1, 100_000))
    page_size = mm.fields.Integer(load_default=50, strict=True, validate=mm.validate.Range(1, 500))
    count = mm.fields.Boolean(load_default=False)
    deleted = mm.fields.Boolean(load_default=False)


def load_spec(payload: Any) -> QuerySpec:
    if not isinstance(payload, dict):
        raise BadRequest("The query must be a JSON object.")
    try:
        return QuerySpec(**QuerySpecSchema().load(payload))
    except mm.ValidationError as exc:
        raise BadRequest("Invalid query.", exc.normalized_messages()) from None


class QueryCompiler:
    """Compiles against one object for one actor; collects the joins that
    lookup paths need so that each is joined once."""

    def __init__(self, registry: Registry, obj_name: str, actor: Actor,
                 timezone: str = "Asia/Shanghai", table: sa.Table | None = None):
        self.registry = registry
        self.obj = registry.get(obj_name)
        self.actor = actor
        self.tz = zoneinfo.ZoneInfo(timezone)
        self.table = table if table is not None else registry.table(obj_name)
        self._joins: dict[str, tuple[sa.FromClause, sa.ColumnElement]] = {}
        self._nodes = 0

    # --- paths ---------------------------------------------------------------
    def _target(self, name: str) -> tuple[ObjectDef, sa.Table]:
        if name == USER:
            return USER_OBJECT, t.users
        return self.registry.get(name), self.registry.table(name)

    def resolve(self, path: str, *, purpose: str = "field") -> tuple[sa.ColumnElement, FieldDef]:
        if not isinstance(path, str) or not path:
            raise BadRequest(f"A {purpose} must name a field.", {purpose: "Must be a field name."})
        parts = path.split(".")
        if len(parts) > MAX_DEPTH + 1:
            raise BadRequest(f"'{path}' follows more than {MAX_DEPTH} lookups.", {path: "Path too deep."})
        obj, table, prefix = self.obj, self.table, ""
        for i, part in enumerate(parts):
            fd = obj.fields.get(part)
            if fd is None:
                raise BadRequest(f"Unknown field '{path}' on {self.obj.api_name}.", {path: "Unknown field."})
            if obj is not USER_OBJECT:
                try:
                    permissions.check_field(self.actor, obj.api_name, part)
                except Forbidden:
                    raise Forbidden(f"You may not read {path}.", {path: "Hidden from you."}) from None
            if i == len(parts) - 1:
                return table.c[fd.column], fd
            if not fd.type.is_reference:
                raise BadRequest(f"'{part}' in '{path}' is not a lookup.", {path: "Not a lookup."})
            prefix = f"{prefix}.{part}" if prefix else part
            target_obj, target_table = self._target(fd.settings["reference_to"])
            if target_obj is not USER_OBJECT:
                permissions.require(self.actor, target_obj.api_name, "read")
            if prefix not in self._joins:
                alias = target_table.alias(f"j{len(self._joins)}")
                cond = alias.c.id == table.c[fd.column]
                if target_obj is not USER_OBJECT:
                    cond = sa.and_(cond, alias.c.deleted_at.is_(None))
                    scope = permissions.scope_predicate(self.actor, target_obj.api_name, alias)
                    if scope is not None:
                        cond = sa.and_(cond, scope)
                self._joins[prefix] = (alias, cond)
            obj, table = target_obj, self._joins[prefix][0]
        raise AssertionError("unreachable")

    def from_clause(self) -> sa.FromClause:
        frm: sa.FromClause = self.table
        for alias, cond in self._joins.values():
            frm = frm.outerjoin(alias, cond)
        return frm

    # --- filters -------------------------------------------------------------
    def where(self, tree: Any) -> sa.ColumnElement | None:
        if tree is None or tree == {} or tree == []:
            return None
        return self._node(tree)

    def _node(self, node: Any, depth: int = 0) -> sa.ColumnElement:
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise BadRequest(f"The filter has more than {MAX_NODES} conditions.", {"filter": "Too large."})
        if depth > MAX_NESTING:
            raise BadRequest(f"The filter nests and/or/not more than {MAX_NESTING} levels deep.",
                             {"filter": "Nested too deeply."})
        if isinstance(node, list):
            node = {"and": node}
        if not isinstance(node, dict):
            raise BadRequest("Each filter node must be an object.", {"filter": "Malformed filter."})
        for key in ("and", "or"):
            if key in node:
                if set(node) != {key} or not isinstance(node[key], list) or not node[key]:
                    raise BadRequest(f"'{key}' takes a non-empty list and nothing beside it.",
                                     {"filter": f"Malformed '{key}'."})
                parts = [self._node(n, depth + 1) for n in node[key]]
                return sa.and_(*parts) if key == "and" else sa.or_(*parts)
        if "not" in node:
            if set(node) != {"not"}:
                raise BadRequest("'not' takes one node and nothing beside it.", {"filter": "Malformed 'not'."})
            return sa.not_(self._node(node["not"], depth + 1))
        unknown = set(node) - {"field", "op", "value"}
        if unknown or "field" not in node:
            raise BadRequest("A condition is {\"field\", \"op\", \"value\"}.",
                             {"filter": f"Unexpected keys: {', '.join(sorted(unknown)) or 'field missing'}."})
        return self.condition(node["field"], node.get("op", "eq"), node.get("value"))

    def condition(self, path: str, op: str, value: Any) -> sa.ColumnElement:
        col, fd = self.resolve(path, purpose="filter")
        ftype = fd.type
        if not isinstance(op, str):
            raise BadRequest("op must be an operator name.", {path: "op must be text."})
        if op not in ftype.operators:
            raise BadRequest(f"Operator '{op}' does not apply to {path} ({fd.type_name}).",
                             {path: f"Unsupported operator '{op}'. Use one of: {', '.join(sorted(ftype.operators))}."})
        if op == "is_null":
            if not isinstance(value, bool):
                raise BadRequest("is_null takes true or false.", {path: "is_null takes true or false."})
            return col.is_(None) if value else col.is_not(None)
        if op in RELATIVE_DATES:
            return self._relative(col, fd, op, value)
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value or len(value) > MAX_IN:
                raise BadRequest(f"{op} takes a list of 1 to {MAX_IN} values.", {path: f"{op} needs a list."})
            hit = fd.type.compile_in(fd, col, [self._coerce(fd, path, v) for v in value])
            return hit if op == "in" else sa.or_(sa.not_(hit), col.is_(None))
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise BadRequest("between takes [low, high].", {path: "between needs [low, high]."})
            low, high = (self._coerce(fd, path, v) for v in value)
            return col.between(low, high)
        if op in ("contains", "starts_with"):
            if not isinstance(value, str) or not value:
                raise BadRequest(f"{op} takes non-empty text.", {path: f"{op} needs text."})
            return fd.type.compile_text(fd, col, op, value)
        if value is None:
            if op in ("eq", "ne"):
                return col.is_(None) if op == "eq" else col.is_not(None)
            raise BadRequest(f"{op} needs a value.", {path: f"{op} needs a value."})
        v = fd.type.compile_eq(fd, col, self._coerce(fd, path, value))
        return {"eq": lambda: col == v, "ne": lambda: sa.or_(col != v, col.is_(None)),
                "lt": lambda: col < v, "lte": lambda: col <= v,
                "gt": lambda: col > v, "gte": lambda: col >= v}[op]()

    def _coerce(self, fd: FieldDef, path: str, value: Any) -> Any:
        if value == ME and fd.type.is_reference and fd.settings.get("reference_to") == USER:
            # "$me": the reader, so one saved view ("my leads") serves every user
            if self.actor.user_id is None:
                raise BadRequest(f"{ME} needs a signed-in user.", {path: f"{ME} needs a user."})
            return self.actor.user_id
        if value == NOW:
            # "$now": the moment the query runs ("deadline before now" as a saved view)
            now = fd.type.now_value(fd, dt.datetime.now(dt.timezone.utc), self.tz)
            if now is not None:
                return now
        try:
            return fd.type.filter_value(fd, value)
        except mm.ValidationError as exc:
            msg = exc.messages[0] if isinstance(exc.messages, list) else str(exc.messages)
            raise BadRequest(f"Invalid filter value for {path}: {msg}", {path: msg}) from None

    def _relative(self, col, fd: FieldDef, op: str, value: Any) -> sa.ColumnElement:
        today = dt.datetime.now(self.tz).date()
        n = None
        if op in ("last_n_days", "next_n_days"):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3650:
                raise BadRequest(f"{op} takes a number of days from 1 to 3650.", {fd.api_name: "Days must be 1-3650."})
            n = value
        start, end = relative_range(op, today, n)  # [start, end)
        if fd.type.calendar_days(fd):
            return sa.and_(col >= start, col < end)
        to_utc = lambda d: dt.datetime.combine(d, dt.time(), self.tz).astimezone(dt.timezone.utc)  # noqa: E731
        return sa.and_(col >= to_utc(start), col < to_utc(end))

    # --- select --------------------------------------------------------------
    def order_by(self, sort: Any) -> list[sa.ColumnElement]:
        return _ordering(self.sort_keys(sort))

    def sort_keys(self, sort: Any) -> list[tuple[sa.ColumnElement, bool]]:
        """[(column, descending)] for a sort, ending with id so pages are stable."""
        items = [sort] if isinstance(sort, (str, dict)) else sort
        if not isinstance(items, list):
            raise BadRequest("sort is a list of field names, '-' first for descending.", {"sort": "Malformed."})
        if len(items) > MAX_SORT:
            raise BadRequest(f"At most {MAX_SORT} sort keys.", {"sort": "Too many sort keys."})
        out = []
        for item in items:
            if isinstance(item, dict):
                direction = item.get("direction", "asc")
                if set(item) - {"field", "direction"} or direction not in ("asc", "desc"):
                    raise BadRequest("A sort key is {\"field\", \"direction\": \"asc\" | \"desc\"}.",
                                     {"sort": "Malformed sort key."})
                path, desc = item.get("field"), direction == "desc"
            elif isinstance(item, str):
                path, desc = item.lstrip("-"), item.startswith("-")
            else:
                raise BadRequest("sort is a list of field names.", {"sort": "Malformed."})
            col, _fd = self.resolve(path, purpose="sort")
            out.append((col, desc))
        out.append((self.table.c.id, bool(items) and _is_desc(items[-1])))
        return out

    def columns(self, names: list[str] | None) -> list[tuple[str, sa.ColumnElement, FieldDef]]:
        if names is None:
            names = [n for n in self.obj.fields if permissions.visible(self.actor, self.obj.api_name, n)]
        if not names:
            raise BadRequest("fields must name at least one field.", {"fields": "Empty."})
        out = []
        for name in dict.fromkeys(names):
            col, fd = self.resolve(name, purpose="fields")
            out.append((name, self._readable_reference(name, col, fd), fd))
        return out

    def _readable_reference(self, name: str, col, fd: FieldDef):
        """A lookup's value only where the reader may read the record it
        points at: through the target's own scope (as `lookup.name` is), so
        an id of a record out of scope (a duplicate mark on another rep's
        lead) reads as null instead of telling that it exists."""
        target = fd.settings.get("reference_to") if fd.type.is_reference else None
        if target in (None, USER) or self.actor.is_admin:
            return col
        if "read" not in self.actor.rights(target).actions or \
                (self.actor.token_objects is not None and target not in self.actor.token_objects):
            return sa.null()
        if permissions.scope_predicate(self.actor, target, self.registry.table(target)) is None:
            return col
        try:
            joined, _fd = self.resolve(f"{name}.id", purpose="fields")
        except BadRequest:          # already as deep as paths go: nothing to check it through
            return sa.null()
        return joined

    def base_where(self, deleted: bool = False) -> sa.ColumnElement:
        live = self.table.c.deleted_at.is_not(None) if deleted else self.table.c.deleted_at.is_(None)
        scope = permissions.scope_predicate(self.actor, self.obj.api_name, self.table)
        return live if scope is None else sa.and_(live, scope)

    def compile(self, spec: QuerySpec, paged: bool = True) -> tuple[sa.Select, sa.Select | None, list]:
        """(page select, count select or None, [(name, FieldDef)]) for a QuerySpec;
        unpaged, the select covers every matching record (exports)."""
        cols = self.columns(spec.fields)
        live = self.table.c.deleted_at.is_not(None) if spec.deleted else self.table.c.deleted_at.is_(None)
        scope = permissions.record_scope(self.actor, self.obj.api_name)
        extra = self.where(spec.filter)
        keys = self.sort_keys(spec.sort)
        frm = self.from_clause()
        matching = [live] + ([extra] if extra is not None else [])
        where = matching + ([scope.predicate(self.table)] if scope is not None else [])
        stmt = (sa.select(*[c.label(f"c{i}") for i, (_n, c, _f) in enumerate(cols)])
                .select_from(frm).where(*where).order_by(*_ordering(keys)))
        branches = self._owner_branches(scope, keys) if paged else None
        if branches:
            stmt = stmt.where(self.table.c.id.in_(self._page_ids(frm, matching, keys, branches, spec)))
            stmt = stmt.limit(spec.page_size + 1)
        elif paged:
            stmt = stmt.limit(spec.page_size + 1).offset((spec.page - 1) * spec.page_size)
        count = None
        if spec.count:
            count = sa.select(sa.func.count()).select_from(frm).where(*where)
        return stmt, count, [(n, f) for n, _c, f in cols]

    # --- a page for a reader who sees a few owners' records ------------------
    # "owner IN (a, b, c) ORDER BY score" makes PostgreSQL walk the score index
    # and throw away every row of the owners the reader cannot see (199 of 200
    # for a rep), or read all of the visible owners' rows and sort them. Split
    # by owner instead: each branch walks (owner, score, id) and stops after a
    # page, and PostgreSQL merges the ordered branches (Merge Append), so a
    # team lead's page costs about what the admin's does. Only where that
    # index is built (Registry.owner_sorted; sort_indexes.py keeps one for
    # every list view's sort): without it each branch would walk the score
    # index itself. Beyond MAX_OWNER_BRANCHES the reader sees enough of the
    # table that walking the sort index is cheap, and planning the branches
    # is not. The branches are disjoint and together exactly the scope; the
    # outer select keeps the scope as well.
    def _owner_branches(self, scope: permissions.RecordScope | None,
                        keys: list[tuple[sa.ColumnElement, bool]]) -> list[sa.ColumnElement] | None:
        if scope is None:
            return None
        extra = scope.extra(self.table)
        if not 2 <= len(scope.owners) + (extra is not None) <= MAX_OWNER_BRANCHES:
            return None
        sorted_by = getattr(self.registry, "owner_sorted", {}).get(getattr(self.table, "name", None), ())
        first = keys[0][0]
        if getattr(first, "table", None) is not self.table or first.name not in sorted_by:
            return None
        owner, owners = self.table.c.owner, sorted(scope.owners)
        out: list[sa.ColumnElement] = [owner == o for o in owners]
        if extra is not None:   # shared records and plugin grants, minus what an owner branch has
            out.append(sa.and_(extra, sa.or_(owner.is_(None), owner.not_in(owners))) if owners else extra)
        return out

    def _page_ids(self, frm, matching, keys, branches, spec: QuerySpec) -> sa.Select:
        reach = spec.page * spec.page_size + 1           # rows one branch may give this page
        cols = [self.table.c.id.label("rid")] + [col.label(f"s{i}") for i, (col, _d) in enumerate(keys)]
        order = _ordering(keys)
        base = sa.select(*cols).select_from(frm).where(*matching)
        visible = sa.union_all(*[base.where(cond).order_by(*order).limit(reach) for cond in branches]
                               ).subquery("visible")
        # bare column names: the union's own column collection costs more to build than the query to plan
        return (sa.select(sa.column("rid")).select_from(visible)
                .order_by(*_ordering([(sa.column(f"s{i}"), desc) for i, (_c, desc) in enumerate(keys)]))
                .limit(spec.page_size + 1).offset((spec.page - 1) * spec.page_size).correlate(None))


def _ordering(keys: list[tuple[sa.ColumnElement, bool]]) -> list[sa.ColumnElement]:
    # these null orderings are PostgreSQL's defaults, so btree indexes serve them
    return [col.desc().nulls_first() if desc else col.asc().nulls_last() for col, desc in keys]


def _is_desc(item) -> bool:
    return (isinstance(item, str) and item.startswith("-")) or \
        (isinstance(item, dict) and item.get("direction") == "desc")


def relative_range(op: str, today: dt.date, n: int | None = None) -> tuple[dt.date, dt.date]:
    """The half-open [start, end) date range of a relative date operator."""
    day = dt.timedelta(days=1)
    week_start = today - dt.timedelta(days=today.weekday())
    month_start = today.replace(day=1)
    next_month = (month_start + dt.timedelta(days=32)).replace(day=1)
    last_month = (month_start - day).replace(day=1)
    quarter_start = month_start.replace(month=(today.month - 1) // 3 * 3 + 1)
    quarter_end = (quarter_start + dt.timedelta(days=95)).replace(day=1)
    year_start = today.replace(month=1, day=1)
    return {
        "today": lambda: (today, today + day),
        "yesterday": lambda: (today - day, today),
        "tomorrow": lambda: (today + day, today + 2 * day),
        "this_week": lambda: (week_start, week_start + 7 * day),
        "last_week": lambda: (week_start - 7 * day, week_start),
        "next_week": lambda: (week_start + 7 * day, week_start + 14 * day),
        "this_month": lambda: (month_start, next_month),
        "last_month": lambda: (last_month, month_start),
        "next_month": lambda: (next_month, (next_month + dt.timedelta(days=32)).replace(day=1)),
        "this_quarter": lambda: (quarter_start, quarter_end),
        "this_year": lambda: (year_start, year_start.replace(year=today.year + 1)),
        "last_year": lambda: (year_start.replace(year=today.year - 1), year_start),
        "last_n_days": lambda: (today - (n - 1) * day, today + day),
        "next_n_days": lambda: (today, today + (n + 1) * day),
    }[op]()
