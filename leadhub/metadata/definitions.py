"""In-memory definitions of objects and fields, loaded from lh_objects and
lh_fields. They are read-only snapshots: the registry builds a new set
whenever the metadata version moves."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field as dc_field
from typing import Any

from leadhub.metadata.types import get_type
from leadhub.metadata.types.base import FieldType
from leadhub.platform.labels import pick


@dataclass
class FieldDef:
    object: str
    api_name: str
    type_name: str
    labels: dict[str, str]
    settings: dict[str, Any] = dc_field(default_factory=dict)
    help_text: dict[str, str] | None = None
    required: bool = False
    unique: bool = False
    indexed: bool = False
    read_only: bool = False
    track_history: bool = False
    default: Any = None
    position: int = 0
    plugin: str | None = None
    id: int | None = None
    deleted_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    system: bool = False  # id, owner, created_at, ...: present on every object

    @property
    def type(self) -> FieldType:
        # looked up per value on hot paths, so kept on the instance
        ftype = self.__dict__.get("_type")
        if ftype is None or ftype.name != self.type_name:
            ftype = self.__dict__["_type"] = get_type(self.type_name)
        return ftype

    @property
    def column(self) -> str:
        return self.api_name

    @property
    def writable(self) -> bool:
        """Whether a user's payload may carry this field at all."""
        if self.system:
            return self.api_name == "owner"
        return not (self.read_only or self.type.computed)

    def label(self, language: str = "en") -> str:
        return pick(self.labels, language) or self.api_name

    def to_api(self, language: str = "en") -> dict:
        return {
            "api_name": self.api_name,
            "label": self.label(language),
            "labels": self.labels,
            "type": self.type_name,
            "help_text": self.help_text,
            "required": self.required,
            "unique": self.unique,
            "indexed": self.indexed,
            "read_only": self.read_only or self.type.computed or (self.system and not self.writable),
            "track_history": self.track_history,
            "default": self.default,
            "settings": self.settings,
            "position": self.position,
            "system": self.system,
            "plugin": self.plugin,
            "deleted": self.deleted_at is not None,
        }

    def spec(self) -> dict:
        """The definition as a payload that makes this field again (history,
        bundles): the common properties, the type's settings at the top level."""
        out = {"api_name": self.api_name, "label": dict(self.labels), "type": self.type_name,
               "help_text": self.help_text, "required": self.required, "unique": self.unique,
               "indexed": self.indexed, "read_only": self.read_only, "track_history": self.track_history,
               "default": self.default, "position": self.position}
        out.update(self.settings)
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class ObjectDef:
    api_name: str
    table_name: str
    labels: dict[str, str]
    description: str | None = None
    name_field: str | None = None
    track_history: bool = False
    plugin: str | None = None
    id: int | None = None
    deleted_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    fields: dict[str, FieldDef] = dc_field(default_factory=dict)          # live, system first
    deleted_fields: dict[str, FieldDef] = dc_field(default_factory=dict)  # soft-deleted

    def label(self, language: str = "en") -> str:
        return pick(self.labels, language) or self.api_name

    def custom_fields(self) -> list[FieldDef]:
        return [f for f in self.fields.values() if not f.system]

    def fields_of_type(self, *type_names: str) -> list[FieldDef]:
        return [f for f in self.fields.values() if f.type_name in type_names]

    def to_api(self, language: str = "en", with_fields: bool = True) -> dict:
        out = {
            "api_name": self.api_name,
            "label": self.label(language),
            "labels": self.labels,
            "description": self.description,
            "name_field": self.name_field,
            "track_history": self.track_history,
            "table_name": self.table_name,
            "plugin": self.plugin,
            "deleted": self.deleted_at is not None,
        }
        if with_fields:
            out["fields"] = [f.to_api(language) for f in self.fields.values()]
        return out

    def spec(self, with_fields: bool = False) -> dict:
        """The object's own properties as a payload (see FieldDef.spec)."""
        out = {"api_name": self.api_name, "label": dict(self.labels), "description": self.description,
               "name_field": self.name_field, "track_history": self.track_history}
        out = {k: v for k, v in out.items() if v is not None}
        if with_fields:
            out["fields"] = [f.spec() for f in self.custom_fields()]
        return out
