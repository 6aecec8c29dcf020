"""Blacklists and sensitive words: a metadata kind (`blacklist`), one item
per entry, keyed "<type>:<normalised value>" so an entry is found by what it
blocks. Values are stored as cleaning compares them (E.164 numbers, folded
addresses and domains, company keys, folded words), so the cleaning of a
whole write is set lookups in the registry snapshot: no query."""
from __future__ import annotations

from typing import Any

import marshmallow as mm

from leadhub.metadata.kinds import Context, Kind
from leadhub.platform.errors import BadRequest
from leadhub.plugins.lead import normalise as nz

TYPES = ("phone", "email", "email_domain", "company", "keyword", "sensitive")


class EntrySchema(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    type = mm.fields.String(required=True, validate=mm.validate.OneOf(TYPES))
    value = mm.fields.String(required=True)
    note = mm.fields.String(allow_none=True, load_default=None, validate=mm.validate.Length(max=500))


def blacklist_value(kind: str, raw: Any) -> str:
    """The normalised form a blacklist entry is stored (and compared) in."""
    if not isinstance(raw, str) or not raw.strip():
        raise BadRequest("value must be non-empty text.", {"value": "Must be non-empty text."})
    value = nz.fold(raw)
    if kind == "phone":
        number = nz.e164(raw)
        if number is None:
            raise BadRequest("value is not a valid phone number.", {"value": "Not a valid phone number."})
        return number
    if kind == "email":
        if "@" not in value or value.startswith("@"):
            raise BadRequest("value is not an e-mail address.", {"value": "Not an e-mail address."})
        return value
    if kind == "email_domain":
        value = value.lstrip("@")
        problem = nz.email_domain_problem("x@" + value)
        if problem and "reserved" not in problem:
            raise BadRequest(f"value: {problem}.", {"value": problem})
        return value
    if kind == "company":
        key = nz.company_key(raw)
        if not key:
            raise BadRequest("value has no company name left once normalised.", {"value": "Empty company name."})
        return key
    if len(value) > 100:
        raise BadRequest("A keyword has at most 100 characters.", {"value": "Too long."})
    return value


def _check(ctx: Context, data: dict, old) -> dict:
    return {**data, "value": blacklist_value(data["type"], data["value"])}


def _key(data: dict) -> str:
    return f"{data['type']}:{data['value']}"


KIND = Kind(name="blacklist", url="blacklists", plugin="lead", schema=EntrySchema, key=_key,
            key_fields=("type", "value"), title="value",
            labels={"en": "Blacklists and sensitive words", "zh_CN": "黑名单与敏感词"}, check=_check,
            order=lambda item: (TYPES.index(item.data["type"]), item.data["value"]), read_admin=False,
            editor="lead_admin.blacklists", properties={
                "type": {"en": "Type", "zh_CN": "类型"}, "value": {"en": "Value", "zh_CN": "内容"},
                "note": {"en": "Note", "zh_CN": "备注"}},
            choices={"type": {
                "phone": {"en": "Phone numbers", "zh_CN": "电话号码"},
                "email": {"en": "E-mail addresses", "zh_CN": "邮箱地址"},
                "email_domain": {"en": "E-mail domains", "zh_CN": "邮箱域名"},
                "company": {"en": "Company names", "zh_CN": "公司名称"},
                "keyword": {"en": "Keywords", "zh_CN": "关键词"},
                "sensitive": {"en": "Sensitive words", "zh_CN": "敏感词"}}})


def entries(reg) -> dict[str, set[str]]:
    """Every entry's value by type, built once per registry snapshot."""
    def build() -> dict[str, set[str]]:
        found: dict[str, set[str]] = {t: set() for t in TYPES}
        for item in reg.items.get(KIND.name, {}).values():
            found[item.data["type"]].add(item.data["value"])
        return found
    return reg.memo("lead_blacklist_entries", build)
