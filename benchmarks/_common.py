"""Shared helpers for the benchmark scripts: a throw-away database (a SQLite
file or a fresh PostgreSQL database), a Runtime with an admin user, timing
and table printing. Nothing here is imported by leadhub itself."""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa

from leadhub.platform import auth
from leadhub.platform.config import Config, normalise_database_url
from leadhub.platform.permissions import Actor
from leadhub.runtime import Runtime

PG_ADMIN_URL = os.environ.get("LEADHUB_BENCH_PG_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def parser(description: str, *, db_choices=("sqlite", "postgres"), default_db="postgres",
           default_rows: int = 1000) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--db", choices=db_choices, default=default_db, help=f"backend (default {default_db})")
    p.add_argument("--rows", type=int, default=default_rows, help=f"rows (default {default_rows})")
    return p


@contextlib.contextmanager
def database(kind: str) -> Iterator[str]:
    """Yield a database URL for a fresh, empty database; remove it afterwards."""
    if kind == "sqlite":
        tmp = tempfile.mkdtemp(prefix="leadhub_bench_")
        try:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    admin_url = normalise_database_url(PG_ADMIN_URL)
    name = f"leadhub_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextlib.contextmanager
def runtime(kind: str) -> Iterator[tuple[Runtime, Actor]]:
    """A Runtime on a fresh database with an admin user; closed afterwards."""
    with database(kind) as url, tempfile.TemporaryDirectory(prefix="leadhub_inst_") as inst:
        rt = Runtime(Config(instance_path=Path(inst), database_url=url, redis_url=None,
                            secret_key="bench"))
        try:
            rt.upgrade_db()
            uid = auth.create_user(rt.db, "admin", "Admin", is_admin=True)
            yield rt, Actor(user_id=uid, login="admin", is_admin=True)
        finally:
            rt.close()


def machine_note() -> str:
    return (f"{platform.node()} | {os.cpu_count()} CPUs (shared, noisy) | Python {sys.version.split()[0]} "
            f"| SQLAlchemy {sa.__version__}")


def server_version(rt: Runtime) -> str:
    with rt.db.read() as conn:
        if conn.dialect.name == "postgresql":
            return conn.exec_driver_sql("SHOW server_version").scalar_one().split()[0]
        return "SQLite " + conn.exec_driver_sql("select sqlite_version()").scalar_one()


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])


def _fmt(c) -> str:
    if isinstance(c, float):
        if c >= 100:
            return f"{c:,.0f}"
        if c >= 10:
            return f"{c:.1f}"
        return f"{c:.2f}"
    if isinstance(c, int):
        return f"{c:,}"
    return str(c)


def figure(name: str, value: float, unit: str) -> None:
    """Print one headline figure as `figure: <name> = <value> <unit>`; run_all
    collects these from every run and reports each one's min and median, and
    --readme writes them into benchmarks/README.md. A name is stable across runs
    (no sizes in it that --quick changes) so runs can be set side by side."""
    print(f"figure: {name} = {value:.6g} {unit}", flush=True)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def copy_rows(rt: Runtime, table_name: str, columns: list[str], lines, total: int,
              *, drop_indexes: bool = True, chunk: int = 50_000) -> dict:
    """Bulk-load a PostgreSQL object table with COPY ... FROM STDIN (text format),
    bypassing the record service. `lines` yields tab-separated text lines (no
    newline) for `columns`. With drop_indexes the table's secondary indexes are
    dropped first and re-created from their own definitions afterwards, which
    is much faster than maintaining them row by row. Ends with VACUUM ANALYZE.
    Returns timings in seconds."""
    out = {}
    raw = rt.db.engine.raw_connection()
    try:
        dbapi = raw.driver_connection
        with dbapi.cursor() as cur:
            cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT LIKE %s",
                        (table_name, "%_pkey"))
            indexes = cur.fetchall() if drop_indexes else []
            for name, _def in indexes:
                cur.execute(f'DROP INDEX "{name}"')
            t = Timer()
            cols = ", ".join(f'"{col}"' for col in columns)
            with cur.copy(f'COPY "{table_name}" ({cols}) FROM STDIN') as cp:
                buf, n = [], 0
                for line in lines:
                    buf.append(line)
                    n += 1
                    if len(buf) >= chunk:
                        cp.write("\n".join(buf) + "\n")
                        buf.clear()
                        log(f"  copied {n:,}/{total:,} rows ({t.elapsed:.1f}s)")
                if buf:
                    cp.write("\n".join(buf) + "\n")
            out["copy_s"] = t.elapsed
            t = Timer()
            cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
            for _name, indexdef in indexes:
                cur.execute(indexdef)
            out["index_s"] = t.elapsed
        dbapi.commit()
        dbapi.autocommit = True
        t = Timer()
        with dbapi.cursor() as cur:
            cur.execute(f'VACUUM (ANALYZE) "{table_name}"')
        out["vacuum_s"] = t.elapsed
        dbapi.autocommit = False
    finally:
        raw.close()
    return out
