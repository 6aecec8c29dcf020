"""Runtime DDL for object tables, through Alembic's operations so SQLite and
PostgreSQL are driven the same way. Every function takes the connection of
the metadata transaction: on PostgreSQL (and SQLite) the DDL commits or rolls
back together with the metadata rows that describe it."""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from leadhub.platform.db import UTCDateTime

if TYPE_CHECKING:     # the metadata model describes what this module builds; it is not imported at run time
    from leadhub.metadata.definitions import FieldDef, ObjectDef

MAX_IDENTIFIER = 63  # PostgreSQL's limit
ID_TYPE = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # sqlite: INTEGER PRIMARY KEY is the rowid


def system_columns() -> list[sa.Column]:
    return [
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("owner", sa.BigInteger, index=False),
        sa.Column("created_by", sa.BigInteger),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", sa.BigInteger),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("deleted_at", UTCDateTime),
        # bumped by every change through the record service: a write that read
        # an older version is refused (optimistic concurrency)
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    ]


def field_column(field: FieldDef) -> sa.Column:
    # Columns stay nullable: `required` is the record service's rule, so a
    # soft-deleted required field never blocks an insert.
    return sa.Column(field.column, field.type.column_type(field), nullable=True)


def _ops(conn: sa.Connection) -> Operations:
    return Operations(MigrationContext.configure(conn))


def table_name(object_name: str) -> str:
    return f"o_{object_name}"


def index_name(table: str, column: str, unique: bool) -> str:
    name = f"{'uq' if unique else 'ix'}_{table}_{column}"
    if len(name) > MAX_IDENTIFIER:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = name[:MAX_IDENTIFIER - 9] + "_" + digest
    return name


def create_object_table(conn: sa.Connection, obj: ObjectDef) -> None:
    op = _ops(conn)
    op.create_table(obj.table_name, *system_columns())
    # (owner, id): a scoped list in the default order walks this index alone
    op.create_index(index_name(obj.table_name, "owner", False), obj.table_name, ["owner", "id"])
    op.create_index(index_name(obj.table_name, "created_at", False), obj.table_name, ["created_at"])


def add_field_column(conn: sa.Connection, obj: ObjectDef, field: FieldDef, fill=None) -> None:
    """ADD COLUMN, nullable: on PostgreSQL this changes only the catalogue,
    however many rows the table holds. With `fill`, existing rows get that
    value: PostgreSQL (11+) stores it once as the column's default and drops
    the default again in the same transaction, still without rewriting the
    table; SQLite, whose tables stay small, updates the rows."""
    op = _ops(conn)
    column = field_column(field)
    if fill is not None and conn.dialect.name == "postgresql":
        literal = sa.literal(fill, column.type).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        column.server_default = sa.DefaultClause(sa.text(str(literal)))
        op.add_column(obj.table_name, column)
        op.alter_column(obj.table_name, column.name, server_default=None)
    else:
        op.add_column(obj.table_name, column)
        if fill is not None:
            table = sa.table(obj.table_name, sa.column(column.name))
            conn.execute(sa.update(table).values({column.name: fill}))
    sync_indexes(conn, obj, None, field)


def ensure_index(conn: sa.Connection, obj: ObjectDef, name: str, fields: list[str],
                 include: list[str] = ()) -> None:
    """A composite index a plugin declares on its object, over live rows
    (deleted_at IS NULL, as every read filters). PostgreSQL stores `include`
    as INCLUDE columns, so a lookup reading only these columns is an
    index-only scan; SQLite appends them to the key. Made once (IF NOT
    EXISTS); a field an admin deleted leaves the index out."""
    missing = [f for f in [*fields, *include] if f not in obj.fields]
    if missing:
        return
    quote = conn.dialect.identifier_preparer.quote
    cols = [quote(obj.fields[f].column) for f in fields]
    extra = [quote(obj.fields[f].column) for f in include]
    index = quote(index_name(obj.table_name, name, False))
    if conn.dialect.name == "postgresql":
        body = f"({', '.join(cols)})" + (f" INCLUDE ({', '.join(extra)})" if extra else "")
    else:
        body = f"({', '.join(cols + extra)})"
    conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {index} ON {quote(obj.table_name)} {body} "
                         "WHERE deleted_at IS NULL")


def sync_indexes(conn: sa.Connection, obj: ObjectDef, old: FieldDef | None, new: FieldDef | None) -> None:
    """Create or drop the field's plain and unique indexes to match `new`.
    Unique indexes cover live rows only, so a soft-deleted record does not
    block its value from being used again."""
    op = _ops(conn)
    for unique in (False, True):
        want = new is not None and (new.unique if unique else (new.indexed or _always_indexed(new)))
        had = old is not None and (old.unique if unique else (old.indexed or _always_indexed(old)))
        column = (new or old).column
        name = index_name(obj.table_name, column, unique)
        if had and not want:
            op.drop_index(name, table_name=obj.table_name)
        elif want and not had:
            where = sa.text("deleted_at IS NULL") if unique else None
            op.create_index(name, obj.table_name, [column], unique=unique,
                            sqlite_where=where, postgresql_where=where)


def _always_indexed(field: FieldDef) -> bool:
    return field.type.always_indexed


def has_own_index(field: FieldDef) -> bool:
    """Whether sync_indexes keeps an index led by this field's column (plain or unique)."""
    return bool(field.indexed or field.unique or _always_indexed(field))


def alter_column_type(conn: sa.Connection, obj: ObjectDef, old: FieldDef, new: FieldDef) -> None:
    """Widen a column (longer text, more precision). SQLite's column types are
    affinities that never truncate, so only PostgreSQL needs the ALTER."""
    if conn.dialect.name == "sqlite":
        return
    old_type, new_type = old.type.column_type(old), new.type.column_type(new)
    if repr(old_type) != repr(new_type):
        _ops(conn).alter_column(obj.table_name, new.column, type_=new_type, existing_type=old_type)


def drop_field_column(conn: sa.Connection, obj: ObjectDef, field: FieldDef) -> None:
    sync_indexes(conn, obj, field, None)
    _ops(conn).drop_column(obj.table_name, field.column)  # SQLite >= 3.35 drops natively


def drop_object_table(conn: sa.Connection, obj: ObjectDef) -> None:
    _ops(conn).drop_table(obj.table_name)
