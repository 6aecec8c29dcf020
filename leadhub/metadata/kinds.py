"""Metadata kinds: every rule, view and setting is an item of one kind.

A kind is a declaration, not a stack of its own. It says what its items look
like (a marshmallow schema), which property is the key, what other metadata an
item references (objects, fields, users, roles, items of other kinds), any
checks a schema cannot express, and what must happen when an item changes.
The kernel (kind_service.KindService) gives every kind the same storage
(lh_meta_items), versions with diff and rollback (lh_meta_history), audit
entries, the one metadata version, REST under /api/v1/meta/{url}, a generic
editor and a place in bundles.

    duplicate_rules = Kind(
        name="duplicate_rule", url="duplicate-rules", schema=RuleSchema, key="name",
        labels={"en": "Duplicate rules", "zh_CN": "查重规则"},
        references=lambda d: [Ref("field", f"lead.{c['field']}", f"conditions.{i}.field")
                              for i, c in enumerate(d["conditions"])])
    runtime.kinds.declare(duplicate_rules)

Items are read from the registry snapshot (`reg.items[kind][key]`), so a
request whose metadata has not changed reads any kind without a query.
"""
from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

import marshmallow as mm

from leadhub.platform.errors import BadRequest

if TYPE_CHECKING:
    import sqlalchemy as sa

    from leadhub.metadata.registry import Registry
    from leadhub.platform.permissions import Actor

# Properties of an item's API view that are not part of its definition: a
# client may send them back unchanged and they are ignored.
OUTPUT_ONLY = ("id", "key", "version", "plugin", "created_by", "created_at", "updated_at")
NOTE = "version_note"       # the optional note a save keeps with its version
MAX_NOTE = 200
BUILTIN_TARGETS = ("object", "field", "user", "role")


@dataclass(frozen=True)
class Ref:
    """One reference from an item to other metadata: `target` is "object",
    "field" (key "object.field"), "user" (a login), "role" (an api name) or
    another kind's name; `path` says where in the item it sits. A soft
    reference is a dependency (a bundle brings its target along) that does
    not stop the target being deleted: the item copes without it (a layout
    skips a deleted field), and the kind's own check decides what a save may name."""
    target: str
    key: str
    path: str
    soft: bool = False


@dataclass(frozen=True)
class Item:
    kind: str
    key: str
    data: dict
    id: int
    version: int
    plugin: str | None = None
    updated_at: dt.datetime | None = None
    created_by: int | None = None


@dataclass
class Context:
    """What a kind's hooks may use: the runtime's services, the write's
    connection, the registry snapshot it validates against, and the actor."""
    runtime: Any
    conn: "sa.Connection"
    registry: "Registry"
    actor: "Actor"
    extras: dict = field(default_factory=dict)     # hooks add to the API's answer (e.g. a rescore job)


@dataclass
class Kind:
    name: str                                     # "duplicate_rule"
    url: str                                      # "duplicate-rules": /api/v1/meta/duplicate-rules
    labels: dict                                  # {"en": ..., "zh_CN": ...}
    schema: type[mm.Schema]                       # loads a whole definition (unknown properties refused)
    key: str | Callable[[dict], str] = "name"     # the key property, or a function of the definition
    key_fields: tuple[str, ...] = ()              # the properties a key function reads (named in refusals)
    title: str | None = "label"                   # the property people recognise an item by
    references: Callable[[dict], Iterable[Ref]] | None = None
    check: Callable[[Context, dict, Item | None], dict | None] | None = None   # extra checks; may return data
    check_delete: Callable[[Context, Item], None] | None = None
    on_change: Callable[[Context, Item | None, Item | None], None] | None = None   # in the write, after it
    present: Callable[[Any, Item], dict] | None = None    # read-only extras in the API view
    presented: tuple[str, ...] = ()               # the properties present adds (ignored when sent back)
    singleton: bool = False                       # one item, key "default", never deleted
    plugin: str | None = None                     # the plugin that declares it
    read_admin: bool = False                      # only admins read it (writes are always admins')
    order: Callable[[Item], Any] | None = None    # list order; default: creation order
    properties: dict = field(default_factory=dict)   # property -> {"en", "zh_CN"}: what the editor calls it
    widgets: dict = field(default_factory=dict)      # property -> a generic editor widget ("labels", "code", ...)
    choices: dict = field(default_factory=dict)      # property -> {value: {"en", "zh_CN"}}: what a choice is called
    # the kind's own editor page: an endpoint, or a function of an item's view giving (endpoint, arguments)
    editor: str | Callable[[dict], tuple[str, dict]] | None = None
    own_api: bool = False                         # its REST is its own (functions): not described generically
    belongs_to: str | None = None                 # the property naming the object an item belongs to (layouts):
                                                  # exported with it, removed when it is purged
    renamable: bool = False                       # a key made from the definition may change (history follows)
    # who may write and read items when not only admins: may_write(actor, new definition or None, old item
    # or None) raises Forbidden; may_read(actor, item) says whether the actor sees it (import mappings)
    may_write: Callable[["Actor", dict | None, Item | None], None] | None = None
    may_read: Callable[["Actor", Item], bool] | None = None

    def key_of(self, data: dict) -> str:
        if self.singleton:
            return "default"
        value = self.key(data) if callable(self.key) else data.get(self.key)
        return str(value)

    @property
    def key_property(self) -> str | None:
        return None if callable(self.key) or self.singleton else self.key

    @property
    def key_field(self) -> str:
        """The property a refusal about the key names."""
        return self.key_property or (self.key_fields[-1] if self.key_fields else "key")

    def refs(self, data: dict) -> list[Ref]:
        return list(self.references(data)) if self.references else []

    def label(self, language: str) -> str:
        return self.labels.get(language) or self.labels.get("en") or self.name


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, str]:
    """marshmallow's nested messages as {"conditions.0.field": "..."}."""
    if isinstance(messages, dict):
        out: dict[str, str] = {}
        for k, v in messages.items():
            out.update(flatten_messages(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return {prefix or "body": " ".join(messages)}
    if isinstance(messages, list):
        out = {}
        for m in messages:
            out.update(flatten_messages(m, prefix))
        return out
    return {prefix or "body": str(messages)}


def load(kind: Kind, payload: Any) -> dict:
    """A whole definition from a payload, or a 400 naming each bad property."""
    if not isinstance(payload, dict):
        raise BadRequest(f"A {kind.label('en').lower()} item is a JSON object.", {"body": "Must be an object."})
    payload = definition_of(kind, payload)
    try:
        data = kind.schema().load(payload)
    except mm.ValidationError as exc:
        raise invalid(kind, flatten_messages(exc.normalized_messages())) from None
    return plain(data)


def plain(value: Any) -> Any:
    """JSON-safe: the API parses numbers as Decimal; definitions are stored as JSON."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    return value


def definition_of(kind: Kind, payload: dict) -> dict:
    """A payload without the API view's extras (id, version, ...) and the version note."""
    own = kind.schema._declared_fields
    return {k: v for k, v in payload.items()
            if k in own or (k not in OUTPUT_ONLY and k not in kind.presented and k != NOTE)}


def invalid(kind: Kind, fields: dict[str, str]) -> BadRequest:
    text = "; ".join(f"{k}: {v}" for k, v in fields.items())
    return BadRequest(f"Invalid {kind.label('en').lower()}: {text}", fields)


def check_references(kind: Kind, data: dict, reg: "Registry", exists: Callable[[str, str], bool]) -> None:
    """Every reference must resolve: a 400 naming where each dangling one sits.
    `exists(target, key)` answers users and roles (the registry knows the rest)."""
    errors: dict[str, str] = {}
    for ref in kind.refs(data):
        if ref.soft:
            continue
        problem = dangling(ref, reg, exists)
        if problem:
            errors.setdefault(ref.path, problem)
    if errors:
        raise invalid(kind, errors)


def dangling(ref: Ref, reg: "Registry", exists: Callable[[str, str], bool]) -> str | None:
    """Why `ref` does not resolve, or None."""
    if ref.target == "object":
        return None if ref.key in reg.objects else f"No object '{ref.key}'."
    if ref.target == "field":
        obj_name, _, field_name = ref.key.partition(".")
        obj = reg.objects.get(obj_name)
        if obj is None:
            return f"No object '{obj_name}'."
        return None if field_name in obj.fields else f"No field '{field_name}' on {obj_name}."
    if ref.target in ("user", "role"):
        return None if exists(ref.target, ref.key) else f"No {ref.target} '{ref.key}'."
    if ref.key in reg.items.get(ref.target, {}):
        return None
    return f"No {ref.target.replace('_', ' ')} '{ref.key}'."
