"""The FieldType base class and the registry of types.

A type knows its column type, its marshmallow field, how values go to and
from the database and JSON, which filter operators it supports, which
settings it takes and which changes of them are safe, and how its values are
read from text (a file's cell, a form's input) and shown (a page's cell, a
form's input, its widget). A new type is one new class and one `register` line.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import marshmallow as mm
import sqlalchemy as sa

if TYPE_CHECKING:
    from leadhub.metadata.definitions import FieldDef

EQUALITY = frozenset({"eq", "ne", "in", "not_in", "is_null"})
ORDERED = frozenset({"lt", "lte", "gt", "gte", "between"})
TEXT = frozenset({"contains", "starts_with"})
RELATIVE_DATES = frozenset({
    "today", "yesterday", "tomorrow", "this_week", "last_week", "next_week",
    "this_month", "last_month", "next_month", "this_quarter", "this_year", "last_year",
    "last_n_days", "next_n_days",
})


class NoSettings(mm.Schema):
    class Meta:
        unknown = mm.RAISE


class FieldType(ABC):
    name: ClassVar[str]
    # Computed types get their value from the platform (auto-number, formula,
    # roll-up); users never write them.
    computed: ClassVar[bool] = False
    operators: ClassVar[frozenset[str]] = EQUALITY
    Settings: ClassVar[type[mm.Schema]] = NoSettings
    openapi_type: ClassVar[dict] = {"type": "string"}
    # the input a form draws: text, email, tel, url, textarea, integer, decimal, checkbox,
    # date, datetime, select, dependent, multi, lookup, user (computed types are read-only)
    widget: ClassVar[str] = "text"
    is_reference: ClassVar[bool] = False   # its value is another record's id (pages show that record's name)
    always_indexed: ClassVar[bool] = False  # joined or searched by value: its column always has an index
    searchable: ClassVar[bool] = False      # global search looks for text in it
    link_prefix: ClassVar[str | None] = None  # pages link the value: "" (a URL itself), "mailto:", "tel:"
    may_be_unique: ClassVar[bool] = False   # a unique constraint on its values makes sense
    always_unique: ClassVar[bool] = False   # unique whatever the definition says (auto-number)
    always_required: ClassVar[bool] = False  # required whatever the definition says (a detail's master)
    becomes: ClassVar[frozenset[str]] = frozenset()  # types it may change into without losing data
    controls_choices: ClassVar[bool] = False  # may be the controlling field of a dependent picklist
    # how records that exist when the field is added get a value: "computed"
    # (formula, roll-up: evaluated) or "numbered" (auto-number: in creation order)
    fills_existing: ClassVar[str | None] = None

    # --- settings -------------------------------------------------------------
    @classmethod
    def load_settings(cls, raw: dict) -> dict:
        """Validate a settings payload; raises mm.ValidationError keyed by setting."""
        return cls.Settings().load(raw or {})

    def check_settings(self, field: "FieldDef", obj, registry) -> dict[str, str]:
        """Cross-checks that need the rest of the metadata; {setting: message}."""
        return {}

    # settings the platform works out and stores; never accepted from a payload
    derived_settings: ClassVar[tuple[str, ...]] = ()

    def derive_settings(self, field: "FieldDef", obj, registry) -> dict:
        return {}

    def change_error(self, old: "FieldDef", new: "FieldDef") -> str | None:
        """Why changing `old` into `new` would lose or corrupt data, if it would."""
        return None

    def conflicting_rows(self, old: "FieldDef", new: "FieldDef", column: sa.ColumnElement):
        """For a change that is safe only while no stored value breaks it: a
        (predicate selecting the rows it would break, explanation) pair, else None."""
        return None

    # --- storage --------------------------------------------------------------
    @abstractmethod
    def column_type(self, field: "FieldDef") -> sa.types.TypeEngine:
        """The SQLAlchemy type of the field's column."""

    def to_db(self, value: Any) -> Any:
        return value

    def from_db(self, value: Any) -> Any:
        return value

    # --- values ---------------------------------------------------------------
    @abstractmethod
    def base_field(self, field: "FieldDef") -> mm.fields.Field:
        """The marshmallow field that coerces a value, without content rules."""

    def value_field(self, field: "FieldDef") -> mm.fields.Field:
        """The marshmallow field used on writes: coercion plus the type's rules."""
        return self.base_field(field)

    def check_record(self, field: "FieldDef", values: dict) -> str | None:
        """Rules that need other fields of the same record."""
        return None

    def openapi(self, field: "FieldDef") -> dict:
        return dict(self.openapi_type)

    # --- filters (the query compiler asks; the operators are `operators`) -----------
    def filter_value(self, field: "FieldDef", value: Any) -> Any:
        """A filter's value coerced to the column's (a 400 comes from the field's errors)."""
        return self.base_field(field).deserialize(value)

    def compile_in(self, field: "FieldDef", col, values: list) -> sa.ColumnElement:
        return col.in_(values)

    def compile_text(self, field: "FieldDef", col, op: str, value: str) -> sa.ColumnElement:
        return col.icontains(value, autoescape=True) if op == "contains" else col.istartswith(value, autoescape=True)

    def compile_eq(self, field: "FieldDef", col, value: Any) -> Any:
        """What `eq` compares the column with."""
        return value

    def now_value(self, field: "FieldDef", now, tz) -> Any:
        """What "$now" means for this field, or None where it means nothing."""
        return None

    def calendar_days(self, field: "FieldDef") -> bool:
        """Whether relative date ranges compare calendar days (a date), not instants."""
        return False

    # --- text in and out: imports, forms, pages -----------------------------------
    def parse_text(self, field: "FieldDef", text: str) -> Any:
        """A value from text as people write it (a file's cell, a web form's
        input; stripped, not empty). Text that does not parse comes back
        unchanged, so the record service names the error."""
        return text

    def format(self, field: "FieldDef", value: Any, out: "Formatting") -> str:
        """A stored value (not empty) as a page shows it."""
        return str(value)

    def input_value(self, field: "FieldDef", value: Any, tz: str) -> Any:
        """A stored value as a form input's value (None: an empty input)."""
        return "" if value is None else str(value)

    def from_form(self, field: "FieldDef", form, tz: str) -> Any:
        """A form's input as a payload value (None clears the field)."""
        raw = form.get(field.api_name, "")
        return raw if raw.strip() else None

    def form_text(self, field: "FieldDef", form) -> Any:
        """What a re-shown form holds: the submitted input as it was typed."""
        return form.get(field.api_name, "")


@dataclass(frozen=True)
class Formatting:
    """What showing a value needs from the page: the instance's time zone,
    the page's words, an option's label in the page's language."""
    tz: str
    gettext: Callable[[str], str]
    option_label: Callable[["FieldDef", str], str]


_TYPES: dict[str, FieldType] = {}


def register(cls: type[FieldType]) -> type[FieldType]:
    _TYPES[cls.name] = cls()
    return cls


def get_type(name: str) -> FieldType:
    return _TYPES[name]


def type_names() -> list[str]:
    return sorted(_TYPES)


class Strict:
    """Mixin for marshmallow fields: no silent bool-to-number coercion."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)
