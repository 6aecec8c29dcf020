"""Text-like types: text, long text, email, phone, url."""
from __future__ import annotations

import re

import marshmallow as mm
import sqlalchemy as sa

from leadhub.metadata.types.base import EQUALITY, ORDERED, TEXT, FieldType, register


class CleanString(mm.fields.String):
    """Strips surrounding whitespace; blank text is stored as null."""

    def deserialize(self, value, attr=None, data=None, **kwargs):
        if isinstance(value, str) and not value.strip():
            return None
        return super().deserialize(value, attr, data, **kwargs)

    default_error_messages = {"control": "Text must not contain NUL characters or unpaired surrogates."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        if "\x00" in value:  # PostgreSQL text cannot hold it; SQLite must refuse alike
            raise self.make_error("control")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise self.make_error("control") from None
        return super()._deserialize(value.strip(), attr, data, **kwargs)


def _length(max_length: int) -> mm.validate.Length:
    return mm.validate.Length(max=max_length, error="Must be at most {max} characters.")


class TextSettings(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    max_length = mm.fields.Integer(load_default=255, validate=mm.validate.Range(1, 4000))


class LongTextSettings(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    max_length = mm.fields.Integer(load_default=32768, validate=mm.validate.Range(1, 1_000_000))


class _StringType(FieldType):
    operators = EQUALITY | ORDERED | TEXT
    fixed_length: int = 255
    searchable = True

    def max_length(self, field) -> int:
        return field.settings.get("max_length", self.fixed_length)

    def column_type(self, field):
        return sa.String(self.max_length(field))

    def base_field(self, field):
        return CleanString(allow_none=True)

    def value_field(self, field):
        return CleanString(allow_none=True, validate=_length(self.max_length(field)))

    def conflicting_rows(self, old, new, column):
        if self.max_length(new) < self.max_length(old):
            return (sa.func.length(column) > self.max_length(new),
                    f"Narrowing max_length to {self.max_length(new)} would truncate stored values.")
        return None

    def openapi(self, field):
        return {"type": "string", "maxLength": self.max_length(field)}


@register
class TextType(_StringType):
    name = "text"
    may_be_unique = True
    becomes = frozenset({"long_text"})
    Settings = TextSettings


@register
class LongTextType(_StringType):
    name = "long_text"
    operators = EQUALITY | TEXT
    Settings = LongTextSettings
    widget = "textarea"
    searchable = False         # global search looks in short text only

    def max_length(self, field):
        return field.settings.get("max_length", 32768)

    def column_type(self, field):
        return sa.Text()


class EmailField(CleanString):
    default_error_messages = {"invalid_email": "Not a valid email address."}
    _pattern = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$")

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if not self._pattern.match(value) or ".." in value:
            raise self.make_error("invalid_email")
        local, _, domain = value.rpartition("@")
        return f"{local}@{domain.lower()}"


@register
class EmailType(_StringType):
    name = "email"
    link_prefix = "mailto:"
    may_be_unique = True
    fixed_length = 254
    widget = "email"

    def value_field(self, field):
        return EmailField(allow_none=True, validate=_length(254))

    def openapi(self, field):
        return {"type": "string", "format": "email", "maxLength": 254}


class PhoneField(CleanString):
    default_error_messages = {"invalid_phone": "Not a valid phone number: use digits, optionally starting with +."}
    _separators = re.compile(r"[\s\-().]")
    _pattern = re.compile(r"^\+?[0-9]{3,20}$")

    def _deserialize(self, value, attr, data, **kwargs):
        value = self._separators.sub("", super()._deserialize(value, attr, data, **kwargs))
        if not self._pattern.match(value):
            raise self.make_error("invalid_phone")
        return value


@register
class PhoneType(_StringType):
    name = "phone"
    link_prefix = "tel:"
    may_be_unique = True
    fixed_length = 32
    widget = "tel"

    def value_field(self, field):
        return PhoneField(allow_none=True)


class UrlField(CleanString):
    default_error_messages = {"invalid_url": "Not a valid http(s) URL.",
                              "unsafe_url": "A URL cannot hold spaces, quotes, <, >, backslashes or braces; "
                                            "percent-encode them (%20, %22)."}
    _url_rule = mm.validate.URL(relative=False, require_tld=False, schemes={"http", "https"})
    # RFC 3986 never allows these unencoded; browsers "fix" them, and a quote
    # or angle bracket in a stored link is how markup gets into other systems
    _UNSAFE = frozenset('"\'<>`\\{}|^ ')

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if any(c in self._UNSAFE or ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise self.make_error("unsafe_url")
        if "://" not in value:
            value = "https://" + value
        try:
            self._url_rule(value)
        except mm.ValidationError:
            raise self.make_error("invalid_url") from None
        return value


@register
class UrlType(_StringType):
    name = "url"
    link_prefix = ""
    may_be_unique = True
    fixed_length = 2048
    widget = "url"

    def value_field(self, field):
        return UrlField(allow_none=True, validate=_length(2048))

    def openapi(self, field):
        return {"type": "string", "format": "uri", "maxLength": 2048}
