"""References to other records: lookup, master-detail and user."""
from __future__ import annotations

import marshmallow as mm
import sqlalchemy as sa

from leadhub.metadata.types.base import EQUALITY, FieldType, register
from leadhub.metadata.types.numbers import IntegerField

ON_DELETE = ("restrict", "set_null", "cascade")
USER = "user"  # reference_to value that points at lh_users


class LookupSettings(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    reference_to = mm.fields.String(required=True)
    on_delete = mm.fields.String(load_default="set_null", validate=mm.validate.OneOf(ON_DELETE))


class MasterDetailSettings(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    reference_to = mm.fields.String(required=True)
    on_delete = mm.fields.String(load_default="cascade", validate=mm.validate.Equal(
        "cascade", error="A master-detail field always cascades deletes."))


class UserSettings(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    reference_to = mm.fields.String(load_default=USER, validate=mm.validate.Equal(USER))


class ReferenceType(FieldType):
    """Stores the referenced record's id; the record service checks it exists."""
    operators = EQUALITY
    openapi_type = {"type": "integer", "format": "int64"}
    widget = "lookup"
    is_reference = True
    always_indexed = True      # joined and looked up by value

    def parse_text(self, field, text):
        return int(text) if text.isdigit() else text    # a name: imports look it up (Importer.resolve)

    def format(self, field, value, out):
        return f"#{value}"                              # pages show the name when the query brought it

    def column_type(self, field):
        return sa.BigInteger()

    def base_field(self, field):
        return IntegerField(strict=True, allow_none=True)

    def reference(self, field) -> str:
        return field.settings["reference_to"]

    def check_settings(self, field, obj, registry):
        target = self.reference(field)
        if target == USER:
            return {}
        if target not in registry.objects:
            return {"reference_to": f"No object '{target}'."}
        return {}

    def change_error(self, old, new):
        if self.reference(old) != self.reference(new):
            return "reference_to cannot change: stored ids would point at the wrong object."
        return None

    def openapi(self, field):
        return {"type": "integer", "format": "int64",
                "description": f"id of a {self.reference(field)} record"}


@register
class LookupType(ReferenceType):
    name = "lookup"
    Settings = LookupSettings


@register
class MasterDetailType(ReferenceType):
    name = "master_detail"
    always_required = True
    Settings = MasterDetailSettings

    def check_settings(self, field, obj, registry):
        errors = super().check_settings(field, obj, registry)
        if self.reference(field) == USER:
            errors["reference_to"] = "A master-detail field references an object, not a user."
        return errors


@register
class UserType(ReferenceType):
    name = "user"
    Settings = UserSettings
    widget = "user"
