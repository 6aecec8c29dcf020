"""Rules for api names of objects and fields: they become table and column
names, JSON keys and URL parts, so they must be safe in all four."""
from __future__ import annotations

import keyword
import re

MAX_LENGTH = 40
_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

# SQL keywords reserved by SQLite or PostgreSQL (and the SQL standard's core),
# plus names the platform itself uses on every record or in URLs.
SQL_KEYWORDS = frozenset("""
abort action add after all alter always analyze and any array as asc attach autoincrement
before begin between both by cascade case cast check collate column commit conflict
constraint create cross current current_date current_time current_timestamp current_user
database default deferrable deferred delete desc detach distinct do drop each else end
escape except exclude exclusive exists explain fail false fetch filter first following for
foreign from full generated glob grant group groups having if ignore immediate in index
indexed initially inner insert instead intersect into is isnull join key last lateral
leading left like limit localtime localtimestamp match materialized natural no not nothing
notnull null nulls of offset on only or order others outer over partition plan pragma
preceding primary query raise range recursive references regexp reindex release rename
replace restrict returning revoke right rollback row rows savepoint select session_user
set similar some symmetric table temp temporary then ties to trailing transaction trigger
true unbounded union unique update user using vacuum values variadic verbose view virtual
when where window with without
""".split())

SYSTEM_FIELDS = frozenset({
    "id", "owner", "owner_id", "created_by", "created_at", "updated_by", "updated_at",
    "deleted_at", "deleted_by", "version", "record", "records", "fields", "meta", "objects",
    "type", "object", "name_field", "tenant", "rowid", "oid", "ctid", "xmin", "xmax",
})


def check_api_name(name: object, *, kind: str = "field") -> str | None:
    """Return why `name` is not a valid api name, or None when it is."""
    if not isinstance(name, str) or not name:
        return "Api name is required and must be a string."
    if len(name) > MAX_LENGTH:
        return f"Api name must be at most {MAX_LENGTH} characters."
    if not _PATTERN.fullmatch(name):
        return ("Api name must start with a lowercase letter and contain only lowercase "
                "letters, digits and underscores.")
    if name.endswith("_") or "__" in name:
        return "Api name must not end with an underscore or contain a double underscore."
    if name in SQL_KEYWORDS or keyword.iskeyword(name):
        return f"'{name}' is a reserved word."
    if name in SYSTEM_FIELDS:
        return f"'{name}' is reserved for a system {kind if kind == 'field' else 'name'}."
    return None
