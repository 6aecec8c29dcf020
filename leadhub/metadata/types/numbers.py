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
            if not decimal.Decimal(value).is_finite() or decimal.Decimal(value) % 1:
                raise self.make_error("invalid")
            value = int(value)
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
    operators = EQUALITY | ORDERED
    openapi_type = {"type": "integer", "format": "int64"}

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
    operators = EQUALITY | ORDERED
    Settings = DecimalSettings

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


@register
class PercentType(DecimalType):
    name = "percent"
    Settings = PercentSettings


@register
class BooleanType(FieldType):
    name = "boolean"
    operators = EQUALITY
    openapi_type = {"type": "boolean"}

    def column_type(self, field):
        return sa.Boolean()

    def base_field(self, field):
        return BooleanField(allow_none=True)
