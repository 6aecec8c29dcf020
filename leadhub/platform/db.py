"""Engine and transactions.

SQLite gets WAL, foreign keys, a busy timeout and explicit BEGIN so DDL runs
inside the same transaction as the metadata rows that describe it; write
transactions take the write lock up front (BEGIN IMMEDIATE) so two writers
queue instead of failing on a lock upgrade.
"""
from __future__ import annotations

import datetime as dt
import os
import weakref
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware datetimes stored as naive UTC, identical on every backend."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class InValues(sa.sql.expression.ColumnElement):
    """`columns IN values` for long value lists (a batch's keys). PostgreSQL
    gets one array parameter per column (a semi-join on unnest): the driver parses
    one placeholder instead of thousands, about 5x cheaper at 2,000 values.
    Other databases get the plain IN."""
    inherit_cache = False
    type = sa.Boolean()
    _is_implicitly_boolean = True     # no "= 1" around it where booleans are integers

    def __init__(self, columns: list, values: list[tuple]):
        self.columns, self.values = list(columns), list(values)


SHORT_IN = 32     # up to this many values, a plain IN: its compiled form is cached per count


def in_values(columns, values) -> sa.ColumnElement:
    """in_values(col, [v, ...]) or in_values([a, b], [(va, vb), ...]). A
    short list (one record's keys) is a plain IN, which SQLAlchemy compiles
    once and caches; a long one (a batch's) is an InValues, compiled each
    time but one array parameter per column on PostgreSQL."""
    if isinstance(columns, (list, tuple)):
        rows = [tuple(v) for v in values]
        if 0 < len(rows) <= SHORT_IN:
            return (columns[0].in_([r[0] for r in rows]) if len(columns) == 1
                    else sa.tuple_(*columns).in_(rows))
        return InValues(columns, rows)
    flat = list(values)
    if 0 < len(flat) <= SHORT_IN:
        return columns.in_(flat)
    return InValues([columns], [(v,) for v in flat])


@compiles(InValues)
def _in_values(element: InValues, compiler, **kw):
    cols = element.columns
    if not element.values:
        return compiler.process(sa.false(), **kw)
    target = cols[0] if len(cols) == 1 else sa.tuple_(*cols)
    values = [v[0] for v in element.values] if len(cols) == 1 else element.values
    return compiler.process(target.in_(values), **kw)


@compiles(InValues, "postgresql")
def _in_values_pg(element: InValues, compiler, **kw):
    cols = element.columns
    if not element.values:
        return compiler.process(sa.false(), **kw)
    arrays = [sa.bindparam(None, [v[n] for v in element.values], type_=postgresql.ARRAY(col.type))
              for n, col in enumerate(cols)]
    # a semi-join on unnest, not "= ANY(array)": once the driver prepares the
    # statement, a generic plan may filter every row against the array
    # (unhashed) instead of probing the index per value
    values = sa.select(sa.func.unnest(*arrays).table_valued(*[f"v{n}" for n in range(len(cols))]).render_derived())
    return compiler.process((cols[0] if len(cols) == 1 else sa.tuple_(*cols)).in_(values), **kw)


def make_engine(url: str, **kwargs) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        path = engine.url.database
        if path and path != ":memory:" and os.path.exists(path) and os.stat(path).st_uid == os.getuid():
            os.chmod(path, 0o600)           # the whole database: the server's user only
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    return sa.create_engine(url, **kwargs)


SQLITE_BUSY_MS = 30_000     # a write waits this long for another to finish, then the caller gets a 503


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection):
        immediate = conn.get_execution_options().get("leadhub_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """One engine per app; `write()` and `read()` hand out transactions.

    A write opened while another is open in the same thread (an event
    handler, a sandboxed function's API call, a plugin hook) joins it under a
    SAVEPOINT: its failure undoes only its own part, and everything commits
    or rolls back with the outer operation. Without this, SQLite's BEGIN
    IMMEDIATE would wait on its own lock. Reads inside a write see its
    uncommitted rows."""

    def __init__(self, url: str, **engine_kwargs):
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        _databases.add(self)
        self._write_engine = self.engine.execution_options(leadhub_write=True)
        # (connection, after-commit callbacks, after-end callbacks) of the
        # write open in this context
        self._open: ContextVar[tuple[Connection, list, list] | None] = \
            ContextVar(f"leadhub_write_{id(self)}", default=None)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self, *, rollback: bool = False) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on any error
        (or always, with rollback=True: a dry run). Callbacks registered with
        on_commit run after the outermost commit."""
        open_ = self._open.get()
        if open_ is not None:
            conn, callbacks, _ = open_
            mark = len(callbacks)
            savepoint = conn.begin_nested()
            try:
                yield conn
            except BaseException:
                savepoint.rollback()
                del callbacks[mark:]
                raise
            if rollback:
                savepoint.rollback()
                del callbacks[mark:]
            else:
                savepoint.commit()
            return
        callbacks: list[Callable[[], None]] = []
        enders: list[Callable[[], None]] = []
        try:
            with self._write_engine.connect() as conn:
                token = self._open.set((conn, callbacks, enders))
                try:
                    with conn.begin() as tx:
                        yield conn
                        if rollback:
                            tx.rollback()
                finally:
                    self._open.reset(token)
        finally:
            for fn in enders:
                fn()
        if not rollback:
            for fn in callbacks:
                fn()

    def on_commit(self, fn: Callable[[], None]) -> None:
        """Run `fn` once the open write commits (never, if it rolls back);
        at once when no write is open."""
        open_ = self._open.get()
        if open_ is None:
            fn()
        else:
            open_[1].append(fn)

    def after_end(self, fn: Callable[[], None]) -> None:
        """Run `fn` once the open write ends, committed or not (at once when
        none is open): for records that must outlive a rollback, such as a
        refused function run's log entry."""
        open_ = self._open.get()
        if open_ is None:
            fn()
        else:
            open_[2].append(fn)

    @property
    def in_write(self) -> bool:
        return self._open.get() is not None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        open_ = self._open.get()
        if open_ is not None:
            yield open_[0]
            return
        with self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


# A forked child (RQ's worker forks one per job) must not use the connections
# its parent pooled: both would talk over one socket (PostgreSQL answers
# "DuplicatePreparedStatement", "server closed the connection"). The child
# gets empty pools; close=False leaves the parent's connections alone.
_databases: "weakref.WeakSet[Database]" = weakref.WeakSet()


def _forget_pools_in_child() -> None:
    for database in list(_databases):
        database.engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_pools_in_child)
