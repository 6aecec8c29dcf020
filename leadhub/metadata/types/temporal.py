"""Date and datetime; datetimes are stored in UTC and accept any offset."""
from __future__ import annotations

import datetime as dt
import zoneinfo

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
    may_be_unique = True
    operators = EQUALITY | ORDERED | RELATIVE_DATES
    openapi_type = {"type": "string", "format": "date"}
    widget = "date"

    def parse_text(self, field, text):
        return date_text(text)

    def now_value(self, field, now, tz):
        return now.astimezone(tz).date()

    def calendar_days(self, field):
        return True

    def input_value(self, field, value, tz):
        return value.isoformat() if isinstance(value, dt.date) else super().input_value(field, value, tz)

    def column_type(self, field):
        return sa.Date()

    def base_field(self, field):
        return DateField(allow_none=True)


@register
class DateTimeType(FieldType):
    name = "datetime"
    operators = EQUALITY | ORDERED | RELATIVE_DATES
    openapi_type = {"type": "string", "format": "date-time"}
    widget = "datetime"

    def parse_text(self, field, text):
        return date_text(text)

    def now_value(self, field, now, tz):
        return now

    def format(self, field, value, out):
        if isinstance(value, dt.datetime):      # stored in UTC, shown on the instance's wall clock
            return value.astimezone(zoneinfo.ZoneInfo(out.tz)).strftime("%Y-%m-%d %H:%M")
        return str(value)

    def input_value(self, field, value, tz):
        if isinstance(value, dt.datetime):
            return value.astimezone(zoneinfo.ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M")
        return super().input_value(field, value, tz)

    def from_form(self, field, form, tz):
        raw = form.get(field.api_name, "")
        if not raw.strip():
            return None
        try:
            local = dt.datetime.fromisoformat(raw.strip())
        except ValueError:
            return raw
        if local.tzinfo is None:                # a form's input is the instance's wall clock
            local = local.replace(tzinfo=zoneinfo.ZoneInfo(tz))
        return local.isoformat()

    def column_type(self, field):
        return UTCDateTime()

    def base_field(self, field):
        return DateTimeField(allow_none=True)


# how dates are written in Chinese and international spreadsheets
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日")


def date_text(text: str) -> str:
    """2024/1/5 or 2024年1月5日 as 2024-01-05 (unchanged when no format fits)."""
    for fmt in DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            pass
    return text
