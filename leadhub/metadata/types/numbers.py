"""Numeric types: integer, decimal, currency, percent, and boolean."""
from __future__ import annotations

import decimal
import re

import marshmallow as mm
import sqlalchemy as sa

from leadhub.metadata.types.base import EQUALITY, ORDERED, FieldType, Strict, register

INT64 = 2**63 - 1
_WHOLE = re.compile(r"^\s*[+-]?[0-9]{1,19}\s*$")


class IntegerField(Strict, mm.fields.Integer):
    """Whole numbers, also written as "42" or 42.0; never 1.5 truncated to 1."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and _WHOLE.match(value):
            value = int(value)
        elif isinstance(value, (float, decimal.Decimal)) and not isinstance(value, bool):
            number = decimal.Decimal(value)
            if not number.is_finite() or number != number.to_integral_value():
                raise self.make_error("invalid")
            if abs(number) > INT64:     # 1e309 and the like: whole, but no column holds them
                raise mm.ValidationError(f"Must be between {-INT64} and {INT64}.")
            value = int(number)
        value = super()._deserialize(value, attr, data, **kwargs)
        if not -INT64 <= value <= INT64:  # a 64-bit column: larger is an error, not an overflow
            raise mm.ValidationError(f"Must be between {-INT64} and {INT64}.")
        return value


class DecimalField(Strict, mm.fields.Decimal):
    pass


class BooleanField(mm.fields.Boolean):
    pass


def _fits(precision: int, scale: int):
    """A validator: at most `scale` decimals and `precision - scale` integer digits."""
    def check(value: decimal.Decimal) -> None:
        if not value.is_finite():
            raise mm.ValidationError("Must be a finite number.")
        _sign, digits, exponent = value.normalize().as_tuple()
        decimals = max(0, -exponent)
        if decimals > scale:
            raise mm.ValidationError(f"At most {scale} decimal places are allowed.")
        integer_digits = max(0, len(digits) + exponent)
        if value != 0 and integer_digits > precision - scale:
            raise mm.ValidationError(
                f"Too large: at most {precision - scale} digits before the decimal point.")
    return check


@register
class IntegerType(FieldType):
    name = "integer"
    may_be_unique = True
    operators = EQUALITY | ORDERED
    openapi_type = {"type": "integer", "format": "int64"}
    widget = "integer"

    def parse_text(self, field, text):
        return number_text(text)

    def column_type(self, field):
        return sa.BigInteger()

    def base_field(self, field):
        return IntegerField(strict=True, allow_none=True)



class DecimalSettings(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    precision = mm.fields.Integer(load_default=18, validate=mm.validate.Range(1, 38))
    scale = mm.fields.Integer(load_default=2, validate=mm.validate.Range(0, 18))

    @mm.validates_schema
    def _scale_within_precision(self, data, **kwargs):
        if data["scale"] > data["precision"]:
            raise mm.ValidationError("Scale must not exceed precision.", "scale")


class CurrencySettings(DecimalSettings):
    currency = mm.fields.String(load_default="CNY", validate=mm.validate.Regexp(
        r"^[A-Z]{3}$", error="Currency must be an ISO 4217 code such as CNY."))


class PercentSettings(DecimalSettings):
    precision = mm.fields.Integer(load_default=9, validate=mm.validate.Range(1, 38))


@register
class DecimalType(FieldType):
    name = "decimal"
    may_be_unique = True
    operators = EQUALITY | ORDERED
    Settings = DecimalSettings
    widget = "decimal"

    def parse_text(self, field, text):
        return number_text(text)

    def format(self, field, value, out):
        return grouped(value, field.settings.get("scale"))

    def column_type(self, field):
        return sa.Numeric(field.settings["precision"], field.settings["scale"], asdecimal=True)

    def base_field(self, field):
        return DecimalField(allow_none=True, allow_nan=False)

    def value_field(self, field):
        return DecimalField(allow_none=True, allow_nan=False,
                            validate=_fits(field.settings["precision"], field.settings["scale"]))

    def from_db(self, value):
        if value is None:
            return None
        return decimal.Decimal(value) if not isinstance(value, decimal.Decimal) else value

    def change_error(self, old, new):
        op, os_ = old.settings["precision"], old.settings["scale"]
        np_, ns = new.settings["precision"], new.settings["scale"]
        if ns < os_ or (np_ - ns) < (op - os_):
            return (f"Changing precision/scale from ({op},{os_}) to ({np_},{ns}) could round or "
                    "overflow stored values; precision and scale may only grow.")
        return None

    def openapi(self, field):
        return {"type": "string", "format": "decimal",
                "description": f"precision {field.settings['precision']}, scale {field.settings['scale']}"}


@register
class CurrencyType(DecimalType):
    name = "currency"
    Settings = CurrencySettings

    def format(self, field, value, out):
        return f"{field.settings.get('currency', '')} {grouped(value, field.settings.get('scale', 2))}".strip()


@register
class PercentType(DecimalType):
    name = "percent"
    may_be_unique = False
    Settings = PercentSettings

    def format(self, field, value, out):
        return grouped(value, field.settings.get("scale", 2)) + " %"


@register
class BooleanType(FieldType):
    name = "boolean"
    operators = EQUALITY
    openapi_type = {"type": "boolean"}
    widget = "checkbox"
    controls_choices = True

    def parse_text(self, field, text):
        return BOOLEAN_WORDS.get(text.casefold(), text)

    def format(self, field, value, out):
        return out.gettext("Yes") if value else out.gettext("No")

    def input_value(self, field, value, tz):
        return bool(value)

    def from_form(self, field, form, tz):
        return form.get(field.api_name) in ("on", "true", "1")

    def form_text(self, field, form):
        return form.get(field.api_name) in ("on", "true", "1")

    def column_type(self, field):
        return sa.Boolean()

    def base_field(self, field):
        return BooleanField(allow_none=True)


# how people write yes and no in a spreadsheet or a form
BOOLEAN_WORDS = {"true": True, "yes": True, "y": True, "1": True, "是": True, "对": True, "√": True, "✓": True,
                 "on": True,
                 "false": False, "no": False, "n": False, "0": False, "否": False, "错": False, "×": False, "✗": False}


def number_text(text: str) -> str:
    """1,000 and 15% as the number they mean (still text: the type's field coerces it)."""
    return text.replace(",", "").rstrip("%") if re.fullmatch(r"[+-]?[\d,]+(\.\d+)?%?", text) else text


def grouped(value, scale: int | None) -> str:
    """12,345.60: thousands grouped, `scale` decimals (as stored without one)."""
    if scale is None:
        return str(value)
    try:
        return f"{decimal.Decimal(value):,.{scale}f}"
    except (decimal.InvalidOperation, ValueError, TypeError):
        return str(value)
