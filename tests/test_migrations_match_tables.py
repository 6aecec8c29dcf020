"""Every declared table is what the migrations make, so the two cannot
drift: the kernel's migrations make exactly the kernel's tables (and nothing
of a plugin), and installing the lead plugin runs its own branch, which
makes exactly its tables. Compared with Alembic's compare_metadata on the
database the suite runs on (SQLite, or PostgreSQL when configured)."""
from __future__ import annotations

import warnings

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import leadhub.runtime  # noqa: F401  (every module that declares a table is imported)
from leadhub.platform.tables import metadata
from leadhub.plugins import lead

lead._parts()       # the plugin's modules declare its tables
PLUGIN_TABLES = {name for name, table in metadata.tables.items() if table.info.get("plugin") == "lead"}


def _differences(conn, plugin_tables: bool) -> list:
    def include(obj, name, type_, reflected, compare_to):
        table = obj if type_ == "table" else getattr(obj, "table", None)
        table_name = name if type_ == "table" else (table.name if table is not None else None)
        if table_name is None:
            return True
        if not str(table_name).startswith("lh_") or table_name == "lh_alembic_version":
            return False            # object tables (o_*) are made at run time by ddl.py
        return plugin_tables or table_name not in PLUGIN_TABLES
    ctx = MigrationContext.configure(conn, opts={"include_object": include, "compare_type": True})
    with warnings.catch_warnings():     # users and departments point at each other: sorting is not needed here
        warnings.filterwarnings("ignore", "Cannot correctly sort tables", sa.exc.SAWarning)
        return [d for d in compare_metadata(ctx, metadata) if not _noise(d, conn)]


def _noise(diff, conn) -> bool:
    """SQLite reflects JSON and BigInteger-as-Integer columns loosely; a
    difference only in how a type is spelled there is not drift."""
    if conn.dialect.name != "sqlite":
        return False
    item = diff[0] if isinstance(diff, list) else diff
    return isinstance(item, tuple) and item[0] == "modify_type"


def test_the_kernel_migrations_make_the_kernel_tables_and_nothing_of_a_plugin(runtime):
    with runtime.db.read() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        assert not tables & PLUGIN_TABLES, tables & PLUGIN_TABLES
        assert _differences(conn, plugin_tables=False) == []


def test_installing_a_plugin_makes_its_tables_by_its_own_branch(runtime):
    runtime.plugins.install("lead")
    with runtime.db.read() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        revisions = set(conn.execute(sa.text("SELECT version_num FROM lh_alembic_version")).scalars())
        assert PLUGIN_TABLES <= tables
        assert _differences(conn, plugin_tables=True) == []
    assert "lead_0001" in revisions           # its branch's head (which stands on the kernel's 0014)
    # a restart upgrades both branches and changes nothing
    runtime.upgrade_db()
    runtime.plugins.activate_installed()
    with runtime.db.read() as conn:
        assert set(conn.execute(sa.text("SELECT version_num FROM lh_alembic_version")).scalars()) == revisions
