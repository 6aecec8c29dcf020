"""Plugins: Python packages found through the entry-point group
`leadhub.plugins`. A plugin declares metadata files (YAML: objects and their
fields), event handlers, and optional demo data. Installing applies the
metadata idempotently; upgrading adds what a new version brings (objects,
fields, picklist options) and leaves what an admin changed or added alone:
admin edits win, and a field an admin deleted is not brought back."""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import sqlalchemy as sa
import yaml

from leadhub.metadata import bundles
from leadhub.metadata.kinds import Context
from leadhub.metadata.service import plain_definition
from leadhub.platform import ddl, migrate, tables as t
from leadhub.platform.db import utcnow
from leadhub.platform.errors import BadRequest, NotFound
from leadhub.platform.permissions import Actor

if TYPE_CHECKING:
    from leadhub.runtime import Runtime

GROUP = "leadhub.plugins"


@dataclass
class Plugin:
    name: str
    version: str
    label: str = ""
    metadata_dir: Path | None = None                       # *.yaml applied in name order
    register: Callable[["Runtime"], None] | None = None     # subscribe event handlers
    # (runtime, actor, count, progress callback) -> records made
    demo: Callable[["Runtime", Actor, int, Callable[[int], None]], int] | None = None
    requires: tuple[str, ...] = field(default_factory=tuple)
    # () -> Flask blueprints the app registers (API routes protect themselves
    # with leadhub.web.api.authenticate as their before_request)
    web: Callable[[], list] | None = None
    # () -> the metadata kinds the plugin declares (metadata/kinds.py); declared
    # before its metadata files are applied, so those may hold items of them
    kinds: Callable[[], list] | None = None
    # its own tables' Alembic branch (labelled with its name), upgraded on install
    migrations_dir: Path | None = None

    def metadata_documents(self) -> list[dict]:
        if self.metadata_dir is None:
            return []
        docs = []
        for path in sorted(self.metadata_dir.glob("*.yaml")):
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(doc, dict):
                raise BadRequest(f"{path.name}: a metadata file is a mapping with 'objects'.")
            docs.append(doc)
        return docs


@dataclass
class ApplyReport:
    created_objects: list[str] = field(default_factory=list)
    added_fields: list[str] = field(default_factory=list)
    added_options: list[str] = field(default_factory=list)
    created_items: list[str] = field(default_factory=list)      # items of metadata kinds: "kind/key"
    updated: list[str] = field(default_factory=list)    # entries the new version changed and the admin had not
    kept: list[str] = field(default_factory=list)       # entries both changed: the admin's version stays

    @property
    def changed(self) -> bool:
        return bool(self.created_objects or self.added_fields or self.added_options
                    or self.created_items or self.updated)


class PluginManager:
    def __init__(self, runtime: "Runtime"):
        self.runtime = runtime
        self._activated: set[str] = set()
        self._extra: dict[str, Plugin] = {}

    def add(self, plugin: Plugin) -> None:
        """Make a plugin known without an entry point (tests, embedding)."""
        self._extra[plugin.name] = plugin

    def discover(self) -> dict[str, Plugin]:
        found = {}
        for ep in entry_points(group=GROUP):
            plugin = ep.load()
            found[plugin.name] = plugin
        found.update(self._extra)
        return found

    def get(self, name: str) -> Plugin:
        plugin = self.discover().get(name)
        if plugin is None:
            raise NotFound(f"No plugin '{name}'. Installed packages offer: {', '.join(sorted(self.discover()))}.")
        return plugin

    def installed(self) -> dict[str, str]:
        with self.runtime.db.read() as conn:
            return dict(conn.execute(sa.select(t.plugins.c.name, t.plugins.c.version)).all())

    def install(self, name: str) -> ApplyReport:
        """Install or upgrade `name` (and what it requires); safe to repeat."""
        plugin = self.get(name)
        for dep in plugin.requires:
            if dep not in self.installed():
                self.install(dep)
        self.upgrade_tables(plugin)
        report = self.apply_metadata(plugin)
        now = utcnow()
        with self.runtime.db.write() as conn:
            updated = conn.execute(sa.update(t.plugins).where(t.plugins.c.name == name)
                                   .values(version=plugin.version, upgraded_at=now)).rowcount
            if not updated:
                conn.execute(t.plugins.insert().values(name=name, version=plugin.version,
                                                       installed_at=now, upgraded_at=now))
        self.activate(plugin)
        return report

    upgrade = install

    def install_all(self) -> dict[str, ApplyReport]:
        return {name: self.install(name) for name in sorted(self.discover())}

    def activate(self, plugin: Plugin) -> None:
        self.declare_kinds(plugin)
        if plugin.name not in self._activated and plugin.register is not None:
            plugin.register(self.runtime)
        self._activated.add(plugin.name)

    def declare_kinds(self, plugin: Plugin) -> None:
        for kind in (plugin.kinds() if plugin.kinds else []):
            self.runtime.kinds.declare(kind)

    def activate_installed(self) -> None:
        available = self.discover()
        for name in self.installed():
            if name in available:
                self.upgrade_tables(available[name])     # a newer version's migrations
                self.activate(available[name])

    def migration_dirs(self) -> list[Path]:
        """Every known plugin's branch (Alembic needs them all to read a database's revisions)."""
        return [p.migrations_dir for p in self.discover().values() if p.migrations_dir is not None]

    def upgrade_tables(self, plugin: Plugin) -> None:
        if plugin.migrations_dir is not None:
            migrate.upgrade(self.runtime.db, f"{plugin.name}@head", self.migration_dirs())

    def apply_metadata(self, plugin: Plugin) -> ApplyReport:
        """Install or upgrade what the plugin's files define, by a three-way
        merge against what its last version shipped (kept in lh_bundles as
        "plugin:<name>", like a bundle's baseline): what the new version
        changed and the admin did not is applied; what the admin changed
        stays; what the admin deleted is not brought back."""
        report = ApplyReport()
        self.declare_kinds(plugin)      # its metadata files may hold items of its kinds
        baseline = self._baseline(plugin.name)
        shipped: dict[str, dict] = {}
        actor = Actor.system()
        md = self.runtime.metadata
        for doc in plugin.metadata_documents():
            for spec in doc.get("objects", []):
                spec = dict(spec)
                indexes = spec.pop("indexes", [])
                name = spec["api_name"]
                registry = self.runtime.cache.current()
                if name in registry.deleted_objects:
                    continue  # an admin deleted it; do not bring it back
                if name not in registry.objects:
                    md.create_object(actor, spec, plugin=plugin.name)
                    report.created_objects.append(name)
                else:
                    self._upgrade_object(plugin, registry.objects[name], spec, report, baseline)
                for fspec in spec.get("fields", []):
                    shipped[f"field/{name}.{fspec['api_name']}"] = md.field_definition(name, fspec)
                self._apply_indexes(name, indexes)
        self._apply_items(plugin, report, baseline, shipped)
        self._save_baseline(plugin, shipped)
        return report

    def _baseline(self, name: str) -> dict[str, dict]:
        with self.runtime.db.read() as conn:
            row = conn.execute(sa.select(t.bundles.c.baseline).where(
                t.bundles.c.name == bundles.PLUGIN_BASELINE + name)).first()
        return row.baseline if row else {}

    def _save_baseline(self, plugin: Plugin, shipped: dict[str, dict]) -> None:
        name, now = bundles.PLUGIN_BASELINE + plugin.name, utcnow()
        values = dict(version=plugin.version, manifest={"plugin": plugin.name, "version": plugin.version},
                      baseline=shipped, upgraded_at=now)
        with self.runtime.db.write() as conn:
            if not conn.execute(sa.update(t.bundles).where(t.bundles.c.name == name).values(**values)).rowcount:
                conn.execute(t.bundles.insert().values(name=name, installed_at=now, **values))

    def _apply_items(self, plugin: Plugin, report: ApplyReport, baseline: dict, shipped: dict) -> None:
        """Items of metadata kinds (`items: {kind: [definition, ...]}` in a
        metadata file), merged like fields."""
        kinds = self.runtime.kinds
        for doc in plugin.metadata_documents():
            for kind_name, definitions in (doc.get("items") or {}).items():
                kd = kinds.kind(kind_name)
                for data in definitions:
                    with self.runtime.db.write() as conn:
                        ctx = Context(self.runtime, conn, self.runtime.cache.current(conn), Actor.system())
                        new = kinds.definition(ctx, kd.name, data)
                        key = kd.key_of(new)
                        entry = f"{kd.name}/{key}"
                        shipped[entry] = new
                        local = ctx.registry.items.get(kd.name, {}).get(key)
                        if local is None:
                            if not self._ever_existed(kd.name, key):
                                kinds.put(ctx, kd.name, new, plugin=plugin.name)
                                report.created_items.append(entry)
                            continue
                        if entry not in baseline:
                            continue    # shipped before baselines were kept: the admin's version stays
                        step = bundles.merge(baseline[entry], local.data, new, entry)
                        if step.changes:
                            values = {**local.data, **{p: step.values.get(p) for p in step.changes}}
                            kinds.put(ctx, kd.name, values, note=f"{plugin.name} {plugin.version}")
                            report.updated.append(entry)
                        if step.conflicts:
                            report.kept.append(entry)

    def _ever_existed(self, kind: str, key: str) -> bool:
        h = t.meta_history
        with self.runtime.db.read() as conn:
            return conn.execute(sa.select(h.c.id).where(h.c.kind == kind, h.c.key == key).limit(1)).first() is not None

    def _apply_indexes(self, obj_name: str, indexes: list[dict]) -> None:
        """Composite indexes the plugin's lookups need (`indexes:` on an object
        in its YAML: name, fields, optional include), made if missing."""
        if not indexes:
            return
        obj = self.runtime.cache.current().get(obj_name)
        with self.runtime.db.write() as conn:
            for spec in indexes:
                ddl.ensure_index(conn, obj, spec["name"], spec["fields"], spec.get("include", []))

    def _upgrade_object(self, plugin: Plugin, obj, spec: dict, report: ApplyReport, baseline: dict) -> None:
        actor = Actor.system()
        md = self.runtime.metadata
        for fspec in spec.get("fields", []):
            fname = fspec["api_name"]
            entry = f"field/{obj.api_name}.{fname}"
            if fname in obj.deleted_fields:
                continue
            existing = obj.fields.get(fname)
            if existing is None:
                md.add_field(actor, obj.api_name, fspec, plugin=plugin.name)
                report.added_fields.append(f"{obj.api_name}.{fname}")
                continue
            if entry in baseline:
                step = bundles.merge(baseline[entry], plain_definition(existing),
                                     md.field_definition(obj.api_name, fspec), entry)
                if "options" in step.changes:
                    have = {o["value"] for o in existing.settings.get("options", [])}
                    report.added_options += [f"{obj.api_name}.{fname}:{o['value']}"
                                             for o in step.values["options"] if o["value"] not in have]
                if step.changes:
                    md.update_field(actor, obj.api_name, fname, {p: step.values.get(p) for p in step.changes})
                    report.updated.append(entry)
                if step.conflicts:
                    report.kept.append(entry)
                continue
            # shipped before baselines were kept: only new picklist options come in
            if "options" in fspec and "options" in existing.settings:
                have = {o["value"] for o in existing.settings["options"]}
                new = [o for o in fspec["options"]
                       if (o if isinstance(o, str) else o.get("value")) not in have]
                if new:
                    md.update_field(actor, obj.api_name, fname,
                                    {"options": existing.settings["options"] + new})
                    report.added_options += [f"{obj.api_name}.{fname}:{o if isinstance(o, str) else o['value']}"
                                             for o in new]
        if spec.get("name_field") and not obj.name_field:
            md.update_object(actor, obj.api_name, {"name_field": spec["name_field"]})
