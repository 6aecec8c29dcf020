"""Date and datetime; datetimes are stored in UTC and accept any offset."""
from __future__ import annotations

import datetime as dt

import marshmallow as mm
import sqlalchemy as sa

from leadhub.metadata.types.base import EQUALITY, ORDERED, RELATIVE_DATES, FieldType, register
from leadhub.platform.db import UTCDateTime


class DateField(mm.fields.Date):
    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        return super()._deserialize(value, attr, data, **kwargs)


class DateTimeField(mm.fields.AwareDateTime):
    def __init__(self, **kwargs):
        super().__init__(default_timezone=dt.timezone.utc, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return super()._deserialize(value, attr, data, **kwargs)


@register
class DateType(FieldType):
    name = "date"
    operators = EQUALITY | ORDERED | RELATIVE_DATES
    openapi_type = {"type": "string", "format": "date"}

    def column_type(self, field):
        return sa.Date()

    def base_field(self, field):
        return DateField(allow_none=True)


@register
class DateTimeType(FieldType):
    name = "datetime"
    operators = EQUALITY | ORDERED | RELATIVE_DATES
    openapi_type = {"type": "string", "format": "date-time"}

    def column_type(self, field):
        return UTCDateTime()

    def base_field(self, field):
        return DateTimeField(allow_none=True)
