"""A field type owns how its values are read from text (imports, web
forms), shown on pages, put in form inputs and read back from forms: the
pages, the importer and web forms ask the type, so a new type is one class."""
from __future__ import annotations

import datetime as dt
import decimal

import pytest
from werkzeug.datastructures import MultiDict

from leadhub.metadata.types.base import Formatting, get_type, type_names

FIELDS = [
    {"api_name": "name", "label": "Name", "type": "text"},
    {"api_name": "size", "label": "Size", "type": "integer"},
    {"api_name": "budget", "label": "Budget", "type": "currency", "precision": 14, "scale": 2},
    {"api_name": "rate", "label": "Rate", "type": "percent", "precision": 5, "scale": 1},
    {"api_name": "vip", "label": "VIP", "type": "boolean"},
    {"api_name": "met", "label": "Met", "type": "date"},
    {"api_name": "called", "label": "Called", "type": "datetime"},
    {"api_name": "tier", "label": "Tier", "type": "picklist",
     "options": [{"value": "gold", "label": {"en": "Gold", "zh_CN": "金牌"}}, "silver"]},
    {"api_name": "tags", "label": "Tags", "type": "multi_picklist",
     "options": [{"value": "edu", "label": {"en": "Education", "zh_CN": "教育"}}, "it"]},
    {"api_name": "notes", "label": "Notes", "type": "long_text"},
    {"api_name": "big", "label": "Big", "type": "formula", "return_type": "currency", "scale": 2,
     "expression": "budget * 2"},
]


@pytest.fixture
def obj(make_object, runtime):
    make_object("deal", FIELDS, name_field="name")
    return runtime.cache.current().objects["deal"]


OUT = Formatting(tz="Asia/Shanghai", gettext=lambda s: {"Yes": "是", "No": "否"}.get(s, s),
                 option_label=lambda fd, v: {"gold": "金牌", "edu": "教育"}.get(v, v))


@pytest.mark.parametrize("field, text, value", [
    ("size", "1,000", "1000"), ("size", "many", "many"),
    ("budget", "12,345.60", "12345.60"), ("rate", "15%", "15"),
    ("vip", "是", True), ("vip", "no", False), ("vip", "on", True), ("vip", "maybe", "maybe"),
    ("met", "2024/1/5", "2024-01-05"), ("met", "2024年1月5日", "2024-01-05"), ("met", "soon", "soon"),
    ("tier", "金牌", "gold"), ("tier", "GOLD", "gold"), ("tier", "bronze", "bronze"),
    ("tags", "教育，it", ["edu", "it"]), ("tags", "edu;IT", ["edu", "it"]),
    ("name", "纷扬科技", "纷扬科技"),
])
def test_text_is_read_as_each_type_reads_it(obj, field, text, value):
    fd = obj.fields[field]
    assert fd.type.parse_text(fd, text) == value


@pytest.mark.parametrize("field, value, shown", [
    ("budget", decimal.Decimal("1234.5"), "CNY 1,234.50"), ("rate", decimal.Decimal("12.5"), "12.5 %"),
    ("vip", True, "是"), ("vip", False, "否"), ("tier", "gold", "金牌"), ("tags", ["edu", "it"], "教育, it"),
    ("called", dt.datetime(2026, 1, 1, 1, 30, tzinfo=dt.timezone.utc), "2026-01-01 09:30"),
    ("big", decimal.Decimal("20"), "CNY 20.00"), ("size", 7, "7"),
])
def test_values_are_shown_as_each_type_formats_them(obj, field, value, shown):
    fd = obj.fields[field]
    assert fd.type.format(fd, value, OUT) == shown


def test_form_inputs_round_trip_through_the_type(obj):
    called = obj.fields["called"]
    stored = dt.datetime(2026, 1, 1, 1, 30, tzinfo=dt.timezone.utc)
    shown = called.type.input_value(called, stored, "Asia/Shanghai")
    assert shown == "2026-01-01T09:30"
    back = called.type.from_form(called, MultiDict({"called": shown}), "Asia/Shanghai")
    assert dt.datetime.fromisoformat(back) == stored
    tags = obj.fields["tags"]
    assert tags.type.from_form(tags, MultiDict([("tags", "edu"), ("tags", "it")]), "UTC") == ["edu", "it"]
    assert tags.type.from_form(tags, MultiDict(), "UTC") is None
    vip = obj.fields["vip"]
    assert vip.type.from_form(vip, MultiDict({"vip": "on"}), "UTC") is True
    assert vip.type.from_form(vip, MultiDict(), "UTC") is False
    name = obj.fields["name"]
    assert name.type.from_form(name, MultiDict({"name": "  "}), "UTC") is None


def test_every_type_names_its_widget():
    known = {"text", "email", "tel", "url", "textarea", "integer", "decimal", "checkbox", "date", "datetime",
             "select", "dependent", "multi", "lookup", "user"}
    for name in type_names():
        assert get_type(name).widget in known, name


def test_filters_compile_as_each_type_says(api, obj):
    """multi-select membership, relative days on dates, $now on dates and datetimes."""
    for rec in ({"name": "a", "tags": ["edu", "it"], "met": "2020-01-01"}, {"name": "b", "tags": ["it"]},
                {"name": "c"}):
        assert api.post("/objects/deal/records", rec).status_code == 201

    def names(tree):
        r = api.post("/objects/deal/query", {"filter": tree, "fields": ["name"], "sort": ["name"]})
        assert r.status_code == 200, r.get_json()
        return [x["name"] for x in r.get_json()["records"]]
    assert names({"field": "tags", "op": "contains", "value": "edu"}) == ["a"]
    assert names({"field": "tags", "op": "in", "value": ["edu", "it"]}) == ["a", "b"]
    assert names({"field": "tags", "op": "not_in", "value": ["edu"]}) == ["b", "c"]
    assert names({"field": "tags", "op": "eq", "value": ["it"]}) == ["b"]
    assert names({"field": "met", "op": "lt", "value": "$now"}) == ["a"]
    assert names({"field": "called", "op": "lt", "value": "$now"}) == []
    r = api.post("/objects/deal/query", {"filter": {"field": "size", "op": "eq", "value": "$now"}})
    assert r.status_code == 400 and "size" in r.get_json()["error"]["fields"]
