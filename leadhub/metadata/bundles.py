"""Bundles (industry templates): metadata exported from one instance as one
file, installed into another in one transaction, upgraded there by a
three-way merge, and uninstalled without touching what the customer added.

The file is a zip of YAML, so two versions diff line by line:

    manifest.yaml                    format, name, version, label, publisher,
                                     description, requires ({plugin: ">=0.2.0"}),
                                     contents (every entry, in install order)
    objects/<object>.yaml            an object's own properties
    fields/<object>.<field>.yaml     one field (also fields added to a plugin's object)
    items/<kind>/<key>.yaml          one item of a metadata kind (layouts and shared
                                     list views too: an object brings its own along)
    samples/<object>.yaml            optional sample records (bundle_samples.py), added
                                     on install when asked for

An entry is "<type>/<key>": "object/visit", "field/visit.subject",
"duplicate_rule/by_mobile". The installed entries are kept (lh_bundles.baseline)
as the base of the next upgrade's merge, property by property:

    base == new               the customer's value stays (upstream changed nothing)
    base == local             the new value is taken (the customer changed nothing)
    local == new              nothing to do
    otherwise                 a conflict: shown with both sides, and the upgrade
                              stops unless told to keep local or take new
"""
from __future__ import annotations

import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import yaml

from leadhub.metadata import bundle_samples
from leadhub.metadata.kinds import Context
from leadhub.platform import audit, permissions, tables as t
from leadhub.platform.db import utcnow
from leadhub.platform.errors import BadRequest, Conflict, NotFound
from leadhub.platform.permissions import Actor

if TYPE_CHECKING:
    from leadhub.metadata.registry import Registry

FORMAT = 1
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_ENTRIES = 5000
NAME = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
VERSION = re.compile(r"^\d+(\.\d+){0,3}$")
REQUIREMENT = re.compile(r"^\s*(>=|==|>)?\s*(\d+(\.\d+){0,3})\s*$")
RELATIONAL = ("lookup", "master_detail")
COMPUTED = ("formula", "rollup")
RESOLUTIONS = ("local", "new")
SAFE_KEY = re.compile(r"^[\w.:\-]{1,120}$", re.ASCII)


# ------------------------------------------------------------------ the file
@dataclass
class Bundle:
    name: str
    version: str
    label: dict = field(default_factory=dict)
    publisher: str | None = None
    description: str | None = None
    requires: dict[str, str] = field(default_factory=dict)
    entries: dict[str, dict] = field(default_factory=dict)      # "type/key" -> definition, in install order
    samples: dict[str, list[dict]] = field(default_factory=dict)   # object -> sample records

    def manifest(self) -> dict:
        out = {"format": FORMAT, "name": self.name, "version": self.version, "label": self.label,
               "publisher": self.publisher, "description": self.description, "requires": self.requires,
               "contents": list(self.entries)}
        if self.samples:
            out["samples"] = list(self.samples)
        return out

    def files(self) -> dict[str, str]:
        """Every file of the bundle, by its path, as YAML text."""
        return {"manifest.yaml": _dump(self.manifest())} | {_path(e): _dump(d) for e, d in self.entries.items()} \
            | {bundle_samples.path(o): _dump(r) for o, r in self.samples.items()}


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, default_flow_style=False, width=100)


def write(bundle: Bundle) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, text in bundle.files().items():
            zf.writestr(rel, text)
    return out.getvalue()


def write_dir(bundle: Bundle, folder: Path) -> None:
    """The same layout as a folder of YAML files (how bundles live in a
    repository: each change is a readable diff)."""
    for rel, text in bundle.files().items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def read_path(path: Path) -> Bundle:
    """A bundle from a .zip file or a folder of the same layout."""
    if path.is_dir():
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            for file in sorted(path.rglob("*.yaml")):
                zf.write(file, file.relative_to(path).as_posix())
        return read(out.getvalue())
    return read(path.read_bytes())


def _path(entry: str) -> str:
    kind, _, key = entry.partition("/")
    if kind == "object":
        return f"objects/{key}.yaml"
    if kind == "field":
        return f"fields/{key}.yaml"
    if not SAFE_KEY.match(key):     # a layout named in Chinese, with spaces: a readable, unique file name
        slug = re.sub(r"[^\w\-.]+", "_", key, flags=re.ASCII).strip("_.")[:40] or kind
        key = f"{slug}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:6]}"
    return f"items/{kind}/{key}.yaml"


def read(raw: bytes) -> Bundle:
    """A bundle from its file, or a 400 saying what is wrong with it."""
    if len(raw) > MAX_FILE_BYTES:
        raise BadRequest(f"A bundle file is at most {MAX_FILE_BYTES // 1024 // 1024} MB.", {"file": "Too large."})
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
        names = set(zf.namelist())
        if "manifest.yaml" not in names:
            raise BadRequest("This is not a leadhub bundle: it has no manifest.yaml.", {"file": "No manifest."})
        manifest = _yaml(zf, "manifest.yaml")
        bundle = _manifest(manifest)
        for entry in manifest["contents"]:
            path = _path(entry)
            if path not in names:
                raise BadRequest(f"The bundle lists {entry} but has no {path}.", {"file": f"Missing {path}."})
            data = _yaml(zf, path)
            if not isinstance(data, dict):
                raise BadRequest(f"{path} must hold a mapping.", {"file": f"{path} is not a mapping."})
            bundle.entries[entry] = data
        for obj in manifest.get("samples") or []:
            rel = bundle_samples.path(obj) if isinstance(obj, str) and NAME.match(obj) else None
            if rel is None or rel not in names:
                raise BadRequest(f"The bundle lists sample records of {obj!r} but has no {rel}.",
                                 {"file": f"Missing samples of {obj!r}."})
            bundle.samples[obj] = bundle_samples.check(_yaml(zf, rel), obj)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, KeyError) as exc:
        raise BadRequest(f"The bundle file is corrupt: {exc}.", {"file": "Not a readable zip file."}) from None
    return bundle


def _yaml(zf: zipfile.ZipFile, path: str) -> Any:
    info = zf.getinfo(path)
    if info.file_size > MAX_FILE_BYTES:
        raise BadRequest(f"{path} is too large.", {"file": f"{path} too large."})
    try:
        return yaml.safe_load(zf.read(path).decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BadRequest(f"{path} is not valid YAML: {exc}", {"file": f"{path} is not valid YAML."}) from None


def _manifest(m: Any) -> Bundle:
    if not isinstance(m, dict):
        raise BadRequest("manifest.yaml must hold a mapping.", {"manifest": "Not a mapping."})
    fmt = m.get("format")
    if fmt != FORMAT:
        raise BadRequest(f"Bundle format {fmt!r} is not one this leadhub reads (it reads format {FORMAT}).",
                         {"manifest.format": f"Unknown format {fmt!r}."})
    errors = {}
    if not isinstance(m.get("name"), str) or not NAME.match(m["name"]):
        errors["manifest.name"] = "2-64 lower-case letters, digits and _, starting with a letter."
    if not isinstance(m.get("version"), str) or not VERSION.match(m["version"]):
        errors["manifest.version"] = "A version such as 1.0.0."
    requires = m.get("requires") or {}
    if not isinstance(requires, dict) or any(not isinstance(v, str) or not REQUIREMENT.match(v)
                                             for v in requires.values()):
        errors["manifest.requires"] = 'Plugins with versions, e.g. {lead: ">=0.2.0"}.'
    contents = m.get("contents")
    if not isinstance(contents, list) or len(contents) > MAX_ENTRIES or \
            any(not isinstance(c, str) or "/" not in c or ".." in c for c in contents):
        errors["manifest.contents"] = f"A list of at most {MAX_ENTRIES} entries such as object/visit."
    if errors:
        raise BadRequest("The bundle's manifest is invalid: " + "; ".join(f"{k}: {v}" for k, v in errors.items()),
                         errors)
    label = m.get("label") or {"en": m["name"], "zh_CN": m["name"]}
    return Bundle(name=m["name"], version=m["version"], label=label if isinstance(label, dict) else
                  {"en": str(label), "zh_CN": str(label)}, publisher=m.get("publisher"),
                  description=m.get("description"), requires=dict(requires))


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def satisfies(installed: str, requirement: str) -> bool:
    op, wanted = REQUIREMENT.match(requirement).group(1, 2)
    have, want = _version_tuple(installed), _version_tuple(wanted)
    width = max(len(have), len(want))
    have, want = have + (0,) * (width - len(have)), want + (0,) * (width - len(want))
    return {">=": have >= want, ">": have > want, "==": have == want, None: have >= want}[op]


# ------------------------------------------------------------------ the state here
def entry_state(runtime, reg: "Registry", entry: str) -> dict | None:
    """The instance's current definition of an entry, or None."""
    kind, _, key = entry.partition("/")
    if kind == "object":
        obj = reg.objects.get(key)
        return obj.spec() if obj else None
    if kind == "field":
        obj_name, _, name = key.partition(".")
        obj = reg.objects.get(obj_name)
        fd = obj.fields.get(name) if obj else None
        return fd.spec() if fd and not fd.system else None
    item = reg.items.get(kind, {}).get(key)
    return item.data if item else None


# ------------------------------------------------------------------ export
@dataclass
class Selection:
    objects: list[str] = field(default_factory=list)           # whole objects with their fields
    fields: list[str] = field(default_factory=list)            # "object.field": e.g. fields added to the lead
    items: list[str] = field(default_factory=list)             # "kind/key"
    samples: list[str] = field(default_factory=list)           # objects whose first records go along
    sample_limit: int = 20


def export(runtime, actor: Actor, selection: Selection, *, name: str, version: str, label: Any = None,
           publisher: str | None = None, description: str | None = None) -> tuple[Bundle, list[str]]:
    """The bundle of what was chosen plus what it needs: objects its lookups
    and rules name, fields its rules read, items its items reference. What a
    plugin provides becomes a requirement instead. Returns the bundle and the
    entries pulled in as dependencies."""
    permissions.require_admin(actor)
    reg = runtime.cache.current()
    manifest = _manifest({"format": FORMAT, "name": name, "version": version, "label": label,
                          "publisher": publisher, "description": description, "requires": {},
                          "contents": []})
    plugins = runtime.plugins.installed()
    chosen: dict[str, dict] = {}
    pulled: list[str] = []
    todo = [("object", o) for o in selection.objects] + [("field", f) for f in selection.fields] + \
        [tuple(i.split("/", 1)) for i in selection.items if "/" in i]
    bad = [i for i in selection.items if "/" not in i]
    if bad:
        raise BadRequest(f"Items are named kind/key: {', '.join(bad)}.", {"items": "Use kind/key."})
    explicit = {f"{k}/{key}" for k, key in todo}
    seen = set()
    while todo:
        kind, key = todo.pop(0)
        entry = f"{kind}/{key}"
        if entry in seen:
            continue
        seen.add(entry)
        for dep_kind, dep_key, plugin in _needs(runtime, reg, kind, key):
            if plugin:
                manifest.requires.setdefault(plugin, f">={plugins.get(plugin, '0')}")
            else:
                todo.append((dep_kind, dep_key))
        data = _definition(runtime, reg, kind, key, explicit=entry in explicit)
        if data is None:
            continue       # provided by a plugin: a requirement, not content
        chosen[entry] = data
        if entry not in explicit:
            pulled.append(entry)
    manifest.entries = {e: chosen[e] for e in _install_order(runtime, reg, chosen)}
    if selection.samples:
        manifest.samples = bundle_samples.export(runtime, actor, reg, selection.samples, selection.sample_limit)
    return manifest, pulled


def _definition(runtime, reg, kind: str, key: str, explicit: bool) -> dict | None:
    """An entry's definition, or None where a plugin provides it (objects and
    fields a plugin made; items a plugin made, unless chosen by name)."""
    if kind == "object":
        obj = reg.objects.get(key)
        if obj is None:
            raise NotFound(f"No object '{key}'.", {"objects": f"No object '{key}'."})
        return None if obj.plugin else obj.spec()
    if kind == "field":
        obj_name, _, name = key.partition(".")
        obj = reg.objects.get(obj_name)
        fd = obj.fields.get(name) if obj else None
        if fd is None or fd.system:
            raise NotFound(f"No field '{key}'.", {"fields": f"No field '{key}'."})
        return None if fd.plugin else fd.spec()
    runtime.kinds.kind(kind)
    item = reg.items.get(kind, {}).get(key)
    if item is None:
        raise NotFound(f"No {kind} '{key}'.", {"items": f"No {kind} '{key}'."})
    return None if item.plugin and not explicit else item.data


def _needs(runtime, reg, kind: str, key: str) -> list[tuple[str, str, str | None]]:
    """What an entry needs, as (kind, key, plugin): plugin is set where a
    plugin provides it, and the bundle then requires that plugin."""
    out: list[tuple[str, str, str | None]] = []

    def need_object(name: str) -> None:
        obj = reg.objects.get(name)
        if obj is not None:
            out.append(("object", name, obj.plugin))

    if kind == "object":
        obj = reg.objects.get(key)
        if obj is None:
            raise NotFound(f"No object '{key}'.", {"objects": f"No object '{key}'."})
        if obj.plugin:
            return [("object", key, obj.plugin)]
        out += [("field", f"{key}.{fd.api_name}", None) for fd in obj.custom_fields()]
        out += [(i.kind, i.key, None) for i in runtime.kinds.belonging_to(reg, key)]   # how it is shown
    elif kind == "field":
        obj_name, _, name = key.partition(".")
        obj = reg.objects.get(obj_name)
        fd = obj.fields.get(name) if obj else None
        if fd is None:
            raise NotFound(f"No field '{key}'.", {"fields": f"No field '{key}'."})
        need_object(obj_name)
        for setting in ("reference_to", "child_object"):
            target = fd.settings.get(setting)
            if target and target != "user":
                need_object(target)
    else:
        kd = runtime.kinds.kind(kind)
        item = reg.items.get(kd.name, {}).get(key)
        if item is None:
            raise NotFound(f"No {kind} '{key}'.", {"items": f"No {kind} '{key}'."})
        if kd.plugin:
            out.append(("plugin", kd.plugin, kd.plugin))
        for ref in kd.refs(item.data):
            if ref.target == "object":
                need_object(ref.key)
            elif ref.target == "field":
                obj_name, _, name = ref.key.partition(".")
                need_object(obj_name)
                fd = reg.objects[obj_name].fields.get(name) if obj_name in reg.objects else None
                if fd is not None and not fd.system:
                    out.append(("field", ref.key, fd.plugin))
            elif ref.target != "role" and runtime.kinds.known(ref.target):
                dep = reg.items.get(ref.target, {}).get(ref.key)
                out.append((ref.target, ref.key, dep.plugin if dep is not None else None))
    return out


def _install_order(runtime, reg, entries: dict[str, dict]) -> list[str]:
    """Objects, then plain fields, then lookups, then computed fields, then
    items, each after the items it references."""
    def rank(entry: str) -> tuple:
        kind, _, key = entry.partition("/")
        if kind == "object":
            return (0, entry)
        if kind == "field":
            type_name = entries[entry].get("type")
            return (1 + (type_name in RELATIONAL) + 2 * (type_name in COMPUTED), entry)
        return (4, "")
    ordered = sorted((e for e in entries if rank(e)[0] < 4), key=rank)
    items = [e for e in entries if rank(e)[0] == 4]
    done: set[str] = set()

    def visit(entry: str, path: tuple = ()) -> None:
        if entry in done or entry in path:
            return
        kind, _, _ = entry.partition("/")
        kd = runtime.kinds.kind(kind)
        for ref in kd.refs(entries[entry]):
            dep = f"{ref.target}/{ref.key}"
            if dep in entries and dep != entry and ref.target not in ("object", "field"):
                visit(dep, path + (entry,))
        done.add(entry)
        ordered.append(entry)

    for entry in sorted(items):
        visit(entry)
    return ordered


# ------------------------------------------------------------------ the plan
@dataclass
class Step:
    entry: str
    action: str                      # create | update | delete | unchanged | keep_local | conflict
    values: dict | None = None       # what the entry becomes (create, update)
    changes: dict = field(default_factory=dict)       # property -> {"local", "new"} that the step changes
    conflicts: dict = field(default_factory=dict)     # property -> {"base", "local", "new"}
    reason: str | None = None

    def to_dict(self) -> dict:
        return {"entry": self.entry, "action": self.action, "changes": self.changes,
                "conflicts": self.conflicts, "reason": self.reason}


def merge(base: dict | None, local: dict | None, new: dict | None, entry: str) -> Step:
    """One entry's three-way merge, property by property."""
    if base is None and local is None:
        return Step(entry, "create", values=new) if new is not None else Step(entry, "unchanged")
    if base is None:           # here already, and not from this bundle
        if local == new:
            return Step(entry, "unchanged", reason="Already here, identical.")
        return Step(entry, "conflict", conflicts={"*": {"base": None, "local": local, "new": new}},
                    reason="Something of the same name exists here already.")
    if local is None:          # the customer deleted it
        if new is None or new == base:
            return Step(entry, "keep_local", reason="Deleted here; the new version did not change it.")
        return Step(entry, "conflict", values=new, conflicts={"*": {"base": base, "local": None, "new": new}},
                    reason="Deleted here, changed in the new version.")
    if new is None:            # the new version dropped it
        if local == base:
            return Step(entry, "delete", reason="Not in the new version.")
        return Step(entry, "conflict", conflicts={"*": {"base": base, "local": local, "new": None}},
                    reason="Changed here, dropped by the new version.")
    merged, changes, conflicts = dict(local), {}, {}
    for prop in dict.fromkeys([*base, *local, *new]):
        b, lo, n = base.get(prop), local.get(prop), new.get(prop)
        if lo == n or b == n:
            continue                 # the same on both sides, or only the customer changed it
        if b != lo and (keyed := merge_options(b, lo, n)) is not None:
            b, n = lo, keyed             # both added or changed different options: one list holds both
        if b == lo:
            changes[prop] = {"local": lo, "new": n}
            if n is None:
                merged.pop(prop, None)
            else:
                merged[prop] = n
        else:
            conflicts[prop] = {"base": b, "local": lo, "new": n}
    if conflicts:
        return Step(entry, "conflict", values=merged, changes=changes, conflicts=conflicts,
                    reason="Changed here and in the new version.")
    if changes:
        return Step(entry, "update", values=merged, changes=changes)
    return Step(entry, "unchanged")


def merge_options(base, local, new) -> list | None:
    """Picklist options merged option by option (by value): the customer's
    new option and the template's both stay. None when the lists are not
    options, or when both sides changed the same option differently."""
    def keyed(value):
        if not isinstance(value, list) or not all(isinstance(o, dict) and "value" in o for o in value):
            return None
        return {o["value"]: o for o in value}
    b, lo, n = keyed(base), keyed(local), keyed(new)
    if b is None or lo is None or n is None:
        return None
    out: dict = {}
    for value in dict.fromkeys([*lo, *n]):
        bo, loc, nw = b.get(value), lo.get(value), n.get(value)
        if loc == nw or bo == nw:
            chosen = loc
        elif bo == loc:
            chosen = nw
        else:
            return None
        if chosen is not None:
            out[value] = chosen
    return list(out.values())


def plan(runtime, bundle: Bundle) -> dict:
    """What installing or upgrading `bundle` would do, step by step."""
    reg = runtime.cache.current()
    installed = _installed(runtime, bundle.name)
    base = installed["baseline"] if installed else {}
    problems = _problems(runtime, reg, bundle, installed)
    steps = []
    for entry in list(bundle.entries) + [e for e in reversed(list(base)) if e not in bundle.entries]:
        local = entry_state(runtime, reg, entry)
        # a plugin's own item (its scoring settings, say) is the template's to change
        base_of = base.get(entry, local if entry not in base and _plugin_item(reg, entry) else None)
        steps.append(merge(base_of, local, bundle.entries.get(entry), entry))
    installed_plugins = runtime.plugins.installed()
    return {"bundle": bundle.name, "version": bundle.version,
            "installed_version": installed["version"] if installed else None,
            "plugins": [p for p in bundle.requires if p not in installed_plugins],    # installed first
            "steps": steps, "problems": problems,
            "sample_records": {obj: len(rows) for obj, rows in bundle.samples.items()}}


def _plugin_item(reg, entry: str) -> bool:
    kind, _, key = entry.partition("/")
    item = reg.items.get(kind, {}).get(key)
    return item is not None and item.plugin is not None


def _problems(runtime, reg, bundle: Bundle, installed: dict | None) -> dict[str, str]:
    problems = {}
    plugins = runtime.plugins.installed()
    available = {name: p.version for name, p in runtime.plugins.discover().items()}
    for plugin, requirement in bundle.requires.items():
        have = plugins.get(plugin) or available.get(plugin)
        if have is None:
            problems[f"requires.{plugin}"] = f"Needs the {plugin} plugin ({requirement}); this leadhub has none."
        elif not satisfies(have, requirement):
            problems[f"requires.{plugin}"] = f"Needs {plugin} {requirement}; {have} is here."
    if any(p not in plugins for p in bundle.requires):
        return problems         # the entries are checked once the plugins they need are in
    for entry in bundle.entries:
        kind = entry.partition("/")[0]
        if kind not in ("object", "field") and not runtime.kinds.known(kind):
            problems[entry] = f"Unknown metadata kind '{kind}' (a plugin this leadhub does not have?)."
        if kind == "field":
            obj = entry.partition("/")[2].partition(".")[0]
            if f"object/{obj}" not in bundle.entries and obj not in reg.objects:
                problems[entry] = f"Its object '{obj}' is neither in the bundle nor here."
    if installed and _version_tuple(bundle.version) < _version_tuple(installed["version"]):
        problems["version"] = f"Version {installed['version']} is installed; {bundle.version} is older."
    return problems


def _installed(runtime, name: str) -> dict | None:
    with runtime.db.read() as conn:
        row = conn.execute(sa.select(t.bundles).where(t.bundles.c.name == name)).mappings().first()
    return dict(row) if row else None


PLUGIN_BASELINE = "plugin:"     # lh_bundles rows of plugins' own metadata (a bundle's name cannot hold ":")


def installed_bundles(runtime) -> list[dict]:
    with runtime.db.read() as conn:
        rows = conn.execute(sa.select(t.bundles).where(~t.bundles.c.name.startswith(PLUGIN_BASELINE))
                            .order_by(t.bundles.c.name)).mappings().all()
    return [{"name": r["name"], "version": r["version"], "label": r["manifest"].get("label"),
             "publisher": r["manifest"].get("publisher"), "entries": len(r["baseline"]),
             "installed_at": r["installed_at"], "upgraded_at": r["upgraded_at"]} for r in rows]


# ------------------------------------------------------------------ applying
def install(runtime, actor: Actor, bundle: Bundle, *, resolve: dict[str, str] | None = None,
            default: str | None = None, dry_run: bool = False, with_samples: bool = False) -> dict:
    """Install (or upgrade) in one transaction: all or nothing. Conflicts stop
    it unless `resolve` ({entry: "local"|"new"}) or `default` says how. With
    `with_samples`, a first install adds the bundle's sample records too."""
    permissions.require_admin(actor)
    resolve = resolve or {}
    for entry, how in resolve.items():
        if how not in RESOLUTIONS:
            raise BadRequest(f"Resolve {entry} with 'local' or 'new', not {how!r}.", {f"resolve.{entry}": "local or new"})
    if default is not None and default not in RESOLUTIONS:
        raise BadRequest("The default resolution is 'local' or 'new'.", {"default": "local or new"})
    result = plan(runtime, bundle)
    if result["problems"]:
        raise BadRequest("The bundle cannot be installed: " + "; ".join(result["problems"].values()),
                         result["problems"])
    if result["plugins"] and not dry_run:
        # what it requires and this leadhub has: installed first, then planned again
        for plugin in result["plugins"]:
            runtime.plugins.install(plugin)
        return install(runtime, actor, bundle, resolve=resolve, default=default, with_samples=with_samples)
    conflicts = [s.entry for s in result["steps"] if s.action == "conflict"]
    installing = result["installed_version"] is None
    if installing and conflicts:
        raise Conflict(f"{bundle.name} clashes with what exists here: {', '.join(conflicts)}. Rename or delete "
                       "those first; an install never overwrites what it did not make.",
                       {f"conflicts.{e}": "Already exists." for e in conflicts})
    unresolved = [e for e in conflicts if (resolve.get(e) or default) is None]
    if unresolved:
        raise Conflict(f"{bundle.name} {bundle.version} has conflicts: {', '.join(unresolved)}. "
                       "Resolve each with local or new (see the plan).",
                       {f"conflicts.{e}": "Unresolved." for e in unresolved})
    if dry_run:
        return report(result)
    with runtime.db.write() as conn:
        applied = []
        steps = [_resolved(s, resolve.get(s.entry) or default, bundle) if s.action == "conflict" else s
                 for s in _apply_order(result["steps"])]
        with_object = _fields_made_with_their_object(steps)
        for step in steps:
            if step.action not in ("create", "update", "delete"):
                continue
            if step.entry in with_object:
                applied.append(step)          # made in the one call that made its object
                continue
            if step.action == "create" and step.entry.startswith("object/"):
                fields = [s.values for s in steps if with_object.get(s.entry) == step.entry]
                step = Step(step.entry, "create", values={**step.values, "fields": fields}, reason=step.reason)
            _apply(runtime, conn, actor, step)
            applied.append(step)
        samples = bundle_samples.install(runtime, actor, bundle.samples) \
            if installing and with_samples and bundle.samples else 0
        _save_installed(conn, bundle, installing)
        audit.record(conn, actor, "bundle_installed" if installing else "bundle_upgraded", object="bundle",
                     target=bundle.name, details={"version": bundle.version, "steps": len(applied),
                                                  "samples": samples})
    return {**report(result, applied=applied), "samples": samples}


def _resolved(step: Step, how: str, bundle: Bundle) -> Step:
    if how == "local":
        if "*" in step.conflicts or not step.changes:
            return Step(step.entry, "keep_local", reason="Conflict resolved: kept local.")
        # the conflicting properties stay as they are here; the others take the new version
        return Step(step.entry, "update", values=step.values, changes=step.changes,
                    reason="Conflict resolved: kept local where both changed.")
    new = bundle.entries.get(step.entry)
    if new is None:
        return Step(step.entry, "delete", reason="Conflict resolved: took the new version (dropped).")
    if step.conflicts.get("*", {}).get("local", True) is None:
        return Step(step.entry, "create", values=new, reason="Conflict resolved: took the new version.")
    values, changes = dict(step.values or {}), dict(step.changes)
    for prop, sides in step.conflicts.items():
        changes[prop] = {"local": sides["local"], "new": sides["new"]}
        if sides["new"] is None:
            values.pop(prop, None)
        else:
            values[prop] = sides["new"]
    return Step(step.entry, "update", values=values, changes=changes, reason="Conflict resolved: took the new version.")


def _fields_made_with_their_object(steps: list[Step]) -> dict[str, str]:
    """A new object's plain fields (no lookups, formulas or roll-ups, which may
    name objects made later) are made with it in one call: {field entry:
    object entry}. One table with its columns instead of a table and then
    one ALTER and one metadata reload per field."""
    new_objects = {s.entry for s in steps if s.action == "create" and s.entry.startswith("object/")}
    out = {}
    for s in steps:
        if s.action == "create" and s.entry.startswith("field/"):
            owner = "object/" + s.entry[len("field/"):].partition(".")[0]
            if owner in new_objects and s.values.get("type") not in RELATIONAL + COMPUTED:
                out[s.entry] = owner
    return out


def _apply_order(steps: list[Step]) -> list[Step]:
    """Deletes first (items, then fields, then objects), then the rest in bundle order."""
    rank = {"layout": -1, "list_view": -1, "field": 1, "object": 2}
    deletes = [s for s in steps if s.action == "delete"]
    deletes.sort(key=lambda s: rank.get(s.entry.partition("/")[0], 0))
    return deletes + [s for s in steps if s.action != "delete"]


def _apply(runtime, conn, actor: Actor, step: Step) -> None:
    kind, _, key = step.entry.partition("/")
    md = runtime.metadata
    if kind == "object":
        if step.action == "create":
            made_with = {f["api_name"] for f in step.values.get("fields", [])}
            name_field = step.values.get("name_field")
            md.create_object(actor, {k: v for k, v in step.values.items()
                                     if k != "name_field" or v in made_with})
            if name_field and name_field not in made_with:       # its field comes later in the bundle
                _deferred(conn).append((key, name_field))
        elif step.action == "update":
            md.update_object(actor, key, _changed(step))
        else:
            md.delete_object(actor, key)
        return
    if kind == "field":
        obj, _, name = key.partition(".")
        if step.action == "create":
            md.add_field(actor, obj, step.values)
        elif step.action == "update":
            md.update_field(actor, obj, name, _changed(step))
        else:
            md.delete_field(actor, obj, name)
        _set_name_fields(runtime, conn, actor)
        return
    ctx = Context(runtime, conn, runtime.cache.current(conn), actor)
    if step.action == "delete":
        runtime.kinds.remove(ctx, kind, key)
    else:
        runtime.kinds.put(ctx, kind, step.values, note=step.reason)


def _changed(step: Step) -> dict:
    """The properties an update sets: what the merge changed (and, when the
    new side won a conflict, the conflicting ones)."""
    values = step.values or {}
    return {p: values.get(p) for p in step.changes if p != "api_name"}


def _deferred(conn) -> list:
    return conn.info.setdefault("leadhub_bundle_name_fields", [])


def _set_name_fields(runtime, conn, actor: Actor) -> None:
    """An object's name field, once that field exists."""
    pending = _deferred(conn)
    reg = runtime.cache.current(conn)
    for obj, name in list(pending):
        if name in reg.objects[obj].fields:
            runtime.metadata.update_object(actor, obj, {"name_field": name})
            pending.remove((obj, name))


def _save_installed(conn, bundle: Bundle, installing: bool) -> None:
    now = utcnow()
    values = dict(version=bundle.version, manifest=bundle.manifest(), baseline=bundle.entries, upgraded_at=now)
    if installing:
        conn.execute(t.bundles.insert().values(name=bundle.name, installed_at=now, **values))
    else:
        conn.execute(sa.update(t.bundles).where(t.bundles.c.name == bundle.name).values(**values))


def report(result: dict, applied: list[Step] | None = None) -> dict:
    """A plan (or what was applied) as counts and the steps that change something."""
    steps = result["steps"]
    counts: dict[str, int] = {}
    for s in steps:
        counts[s.action] = counts.get(s.action, 0) + 1
    out = {"bundle": result["bundle"], "version": result["version"],
           "installed_version": result["installed_version"], "counts": counts, "plugins": result["plugins"],
           "steps": [s.to_dict() for s in steps if s.action != "unchanged"], "problems": result["problems"],
           "sample_records": result.get("sample_records", {})}
    if applied is not None:
        out["applied"] = len(applied)
    return out


def uninstall(runtime, actor: Actor, name: str, *, dry_run: bool = False) -> dict:
    """Remove what the bundle made and nothing the customer added: its items,
    then its fields, then its objects (soft-deleted: the recycle bin keeps
    their records). Refused, naming them, when the customer's own fields sit
    on the bundle's objects or the customer's items use what would go."""
    permissions.require_admin(actor)
    installed = _installed(runtime, name)
    if installed is None:
        raise NotFound(f"No bundle '{name}' is installed.", {"name": "Not installed."})
    reg = runtime.cache.current()
    entries = [e for e in installed["baseline"] if entry_state(runtime, reg, e) is not None]
    ours = set(installed["baseline"])
    blockers = []
    for e in entries:
        kind, _, key = e.partition("/")
        if kind == "object":
            blockers += [f"field/{key}.{f.api_name}" for f in reg.objects[key].custom_fields()
                         if f"field/{key}.{f.api_name}" not in ours]
    if blockers:
        raise Conflict(f"Fields added here sit on {name}'s objects: {', '.join(blockers)}. Delete or keep "
                       "them by hand first.", {"entries": "Customer fields on bundle objects."})
    steps = [Step(e, "delete") for e in entries]
    if dry_run:
        return {"bundle": name, "steps": [s.to_dict() for s in steps]}
    with runtime.db.write() as conn:
        order = {"layout": -1, "list_view": -1, "field": 1, "object": 2}
        for step in sorted(reversed(steps), key=lambda s: order.get(s.entry.partition("/")[0], 0)):
            kind, _, key = step.entry.partition("/")
            if kind == "field" and f"object/{key.partition('.')[0]}" in ours:
                continue           # goes with its object
            _apply(runtime, conn, actor, step)
        conn.execute(sa.delete(t.bundles).where(t.bundles.c.name == name))
        audit.record(conn, actor, "bundle_uninstalled", object="bundle", target=name,
                     details={"version": installed["version"], "entries": len(steps)})
    return {"bundle": name, "removed": len(steps)}


__all__ = ["Bundle", "Selection", "read", "write", "export", "plan", "report", "install", "uninstall", "merge",
           "installed_bundles", "satisfies"]
