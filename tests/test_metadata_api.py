"""Metadata at runtime: real tables and columns, soft delete with data kept,
restore, purge, versions seen by other processes, OpenAPI that follows."""
import sqlalchemy as sa

from leadhub.runtime import Runtime
from tests.conftest import count_rows
from tests.specs import DEAL_FIELDS, make_crm


def columns(runtime, table):
    with runtime.db.read() as conn:
        return {c["name"] for c in sa.inspect(conn).get_columns(table)}


def indexes(runtime, table):
    with runtime.db.read() as conn:
        return {i["name"]: i for i in sa.inspect(conn).get_indexes(table)}


def test_object_with_every_type_gets_a_real_table(api, make_object, runtime):
    make_crm(make_object, api)
    cols = columns(runtime, "o_deal")
    assert {f["api_name"] for f in DEAL_FIELDS} <= cols
    assert {"id", "owner", "created_at", "updated_at", "deleted_at", "hours_logged"} <= cols
    idx = indexes(runtime, "o_deal")
    assert idx["uq_o_deal_email"]["unique"]            # unique field: unique index (live rows)
    assert "ix_o_deal_account" in idx                   # lookups are indexed
    got = api.get("/meta/objects/deal").get_json()
    assert got["labels"] == {"en": "Deal", "zh_CN": "Deal"}
    types = {f["api_name"]: f["type"] for f in got["fields"]}
    assert types["city"] == "dependent_picklist" and types["hours_logged"] == "rollup"
    title = next(f for f in got["fields"] if f["api_name"] == "title")
    assert title["labels"] == {"en": "Title", "zh_CN": "标题"} and title["settings"]["max_length"] == 40


def test_label_follows_accept_language(api, make_object):
    make_object("visit", [{"api_name": "subject", "label": {"en": "Subject", "zh_CN": "主题"}, "type": "text"}],
                label={"en": "Visit", "zh_CN": "拜访"})
    zh = api.get("/meta/objects/visit", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_json()
    en = api.get("/meta/objects/visit", headers={"Accept-Language": "en-US,en;q=0.8"}).get_json()
    assert (zh["label"], en["label"]) == ("拜访", "Visit")
    assert zh["fields"][-1]["label"] == "主题"


def test_add_field_to_populated_object_then_delete_restore_keeps_data(api, make_object, runtime):
    make_object("contact", [{"api_name": "name", "label": "Name", "type": "text"}])
    api.post("/objects/contact/records/bulk", {"records": [{"name": f"n{i}"} for i in range(20)]})
    r = api.post("/meta/objects/contact/fields", {"api_name": "wechat", "label": "WeChat", "type": "text"})
    assert r.status_code == 201
    assert "wechat" in columns(runtime, "o_contact")
    api.patch("/objects/contact/records/1", {"wechat": "wx_1"})
    assert api.delete("/meta/objects/contact/fields/wechat").status_code == 204
    assert "wechat" not in api.get("/objects/contact/records/1").get_json()
    assert "wechat" in columns(runtime, "o_contact")   # data kept until purged
    r = api.post("/objects/contact/records", {"name": "x", "wechat": "w"})
    assert r.status_code == 422 and r.get_json()["error"]["fields"] == {"wechat": "Unknown field."}
    assert api.post("/meta/objects/contact/fields/wechat/restore").status_code == 200
    assert api.get("/objects/contact/records/1").get_json()["wechat"] == "wx_1"


def test_purge_field_drops_the_column(api, make_object, runtime):
    make_object("contact", [{"api_name": "name", "label": "Name", "type": "text"},
                            {"api_name": "fax", "label": "Fax", "type": "phone", "unique": True}])
    api.post("/objects/contact/records", {"name": "a", "fax": "123456"})
    api.delete("/meta/objects/contact/fields/fax")
    assert api.delete("/meta/objects/contact/fields/fax?purge=true").status_code == 204
    assert "fax" not in columns(runtime, "o_contact")
    assert api.get("/meta/objects/contact/fields/fax").status_code == 404
    # the name is free again
    assert api.post("/meta/objects/contact/fields", {"api_name": "fax", "label": "Fax", "type": "text"}).status_code == 201


def test_required_field_on_populated_object_needs_default_and_backfills(api, make_object):
    make_object("contact", [{"api_name": "name", "label": "Name", "type": "text"}])
    api.post("/objects/contact/records", {"name": "a"})
    r = api.post("/meta/objects/contact/fields", {"api_name": "level", "label": "L", "type": "picklist",
                                                   "options": ["a", "b"], "required": True})
    assert r.status_code == 409
    r = api.post("/meta/objects/contact/fields", {"api_name": "level", "label": "L", "type": "picklist",
                                                   "options": ["a", "b"], "required": True, "default": "b"})
    assert r.status_code == 201
    assert api.get("/objects/contact/records/1").get_json()["level"] == "b"


def test_computed_fields_added_later_are_backfilled(api, make_object):
    make_object("item", [{"api_name": "price", "label": "P", "type": "decimal"},
                         {"api_name": "qty", "label": "Q", "type": "integer"}])
    api.post("/objects/item/records/bulk", {"records": [{"price": "2.50", "qty": 4}, {"price": "1", "qty": 1}]})
    api.post("/meta/objects/item/fields", {"api_name": "line", "label": "Line", "type": "formula",
                                           "return_type": "decimal", "expression": "price * qty"})
    api.post("/meta/objects/item/fields", {"api_name": "code", "label": "Code", "type": "auto_number",
                                           "pattern": "IT-{000}"})
    recs = api.get("/objects/item/records?sort=id").get_json()["records"]
    assert [(r["line"], r["code"]) for r in recs] == [("10.00", "IT-001"), ("1.00", "IT-002")]
    assert api.post("/objects/item/records", {"price": "1", "qty": 2}).get_json()["code"] == "IT-003"
    # changing the expression recomputes every record
    api.patch("/meta/objects/item/fields/line", {"expression": "price * qty * 2"})
    assert api.get("/objects/item/records/1").get_json()["line"] == "20.00"


def test_widening_and_relabelling_fields(api, make_object, runtime):
    make_object("memo", [{"api_name": "body", "label": "B", "type": "text", "max_length": 10},
                         {"api_name": "kind", "label": "K", "type": "picklist", "options": ["a"]}])
    assert api.post("/objects/memo/records", {"body": "x" * 11}).status_code == 422
    r = api.patch("/meta/objects/memo/fields/body", {"max_length": 50, "label": {"en": "Body", "zh_CN": "正文"},
                                                      "help_text": "What was said", "indexed": True})
    assert r.status_code == 200 and r.get_json()["settings"]["max_length"] == 50
    assert api.post("/objects/memo/records", {"body": "x" * 11, "kind": "a"}).status_code == 201
    assert "ix_o_memo_body" in indexes(runtime, "o_memo")
    r = api.patch("/meta/objects/memo/fields/kind", {"options": ["a", "b"]})
    assert r.status_code == 200
    assert api.post("/objects/memo/records", {"kind": "b"}).status_code == 201
    # text -> long_text is the one allowed type change
    assert api.patch("/meta/objects/memo/fields/body", {"type": "long_text"}).status_code == 200
    # narrowing is fine while no stored value is longer
    assert api.patch("/meta/objects/memo/fields/kind", {"options": ["a", "b", "c"]}).status_code == 200


def test_object_soft_delete_restore_and_purge(api, make_object, runtime):
    make_object("scratch", [{"api_name": "v", "label": "V", "type": "integer"}])
    api.post("/objects/scratch/records", {"v": 1})
    assert api.delete("/meta/objects/scratch").status_code == 204
    assert api.get("/objects/scratch/records").status_code == 404
    listed = [o["api_name"] for o in api.get("/meta/objects").get_json()["objects"]]
    assert "scratch" not in listed
    assert count_rows(runtime, "o_scratch") == 1
    assert api.post("/meta/objects/scratch/restore").status_code == 200
    assert api.get("/objects/scratch/records").get_json()["records"][0]["v"] == 1
    assert api.delete("/meta/objects/scratch?purge=true").status_code == 409   # must be deleted first
    api.delete("/meta/objects/scratch")
    assert api.delete("/meta/objects/scratch?purge=true").status_code == 204
    with runtime.db.read() as conn:
        assert "o_scratch" not in sa.inspect(conn).get_table_names()


def test_object_in_use_by_another_cannot_be_deleted(api, make_object):
    make_crm(make_object, api)
    r = api.delete("/meta/objects/account")
    assert r.status_code == 409 and "deal.account" in r.get_json()["error"]["message"]


def test_other_processes_see_metadata_changes(runtime, config, api, make_object):
    other = Runtime(config)          # a second process: its own engine and cache
    make_object("shop", [{"api_name": "name", "label": "N", "type": "text"}])
    assert "name" in other.cache.current().get("shop").fields
    api.post("/meta/objects/shop/fields", {"api_name": "city", "label": "C", "type": "text"})
    reg = other.cache.current()
    assert "city" in reg.get("shop").fields
    assert "city" in reg.table("shop").c
    other.close()


def test_openapi_follows_live_metadata(api, make_object):
    make_object("shop", [{"api_name": "name", "label": "N", "type": "text", "required": True}])
    doc = api.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    schema = doc["components"]["schemas"]["shop_record"]
    assert "name" in schema["properties"] and schema["required"] == ["name"]
    assert "/objects/shop/records" in doc["paths"]
    api.post("/meta/objects/shop/fields", {"api_name": "rating", "label": "R", "type": "picklist",
                                           "options": ["a", "b"]})
    doc = api.get("/openapi.json").get_json()
    assert doc["components"]["schemas"]["shop_record"]["properties"]["rating"]["enum"] == ["a", "b"]


def test_openapi_document_is_valid(api, runtime, make_object):
    from openapi_spec_validator import validate
    make_crm(make_object, api)
    runtime.plugins.install("lead")
    doc = api.get("/openapi.json").get_json()
    validate(doc)
    # every area's and plugin's endpoints are listed, not only the kernel's
    for path in ("/imports", "/notifications", "/meta/functions", "/functions/{function}/run",
                 "/meta/duplicate-rules", "/meta/web-forms", "/meta/follow-up-rules", "/meta/scoring-rules"):
        assert path in doc["paths"], path
    # a metadata kind's items are described by its schema
    rule = doc["components"]["schemas"]["duplicate_rule_item"]
    assert rule["properties"]["action"]["enum"] == ["mark", "collect", "route", "tag_only"]
    assert rule["properties"]["conditions"]["items"]["properties"]["threshold"] == {
        "type": ["integer", "null"], "minimum": 50, "maximum": 100}
    assert "/meta/scoring-settings/default/versions" in doc["paths"]


def test_metadata_changes_need_an_admin(app, runtime, make_object):
    from leadhub.platform import auth
    from tests.conftest import Api
    auth.create_user(runtime.db, "rep", "Rep")
    rep = Api(app.test_client(), auth.create_token(runtime.db, "rep"))
    r = rep.post("/meta/objects", {"api_name": "x", "label": "X"})
    assert r.status_code == 403
    assert rep.get("/meta/objects").status_code == 200


def test_list_types(api):
    types = {t["type"]: t for t in api.get("/meta/types").get_json()["types"]}
    assert len(types) == 21
    assert "last_n_days" in types["date"]["operators"] and types["formula"]["computed"]
