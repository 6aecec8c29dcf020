"""Layouts, list views, menu order, XLSX export and bulk delete (issue 6's
metadata backend), through the REST API as the pages and the designer use it,
with users whose roles hide and lock fields."""
import datetime as dt
import decimal
import io

import openpyxl
import pytest

from leadhub.platform import auth
from tests.conftest import Api, count_rows, prepared

PW = "s3cret-pass"


@prepared()
def layouts_crm(api, runtime, make_object):
    """account (name, industry, secret, tier formula, revenue, founded, visited)
    <- contact (lookup) and <- deal (master-detail); a rep role that hides
    `secret` and only reads `industry` and `owner`; users of each kind."""
    make_object("account", [
        {"api_name": "name", "label": {"en": "Name", "zh_CN": "名称"}, "type": "text", "required": True},
        {"api_name": "industry", "label": "Industry", "type": "picklist", "options": ["retail", "tech"]},
        {"api_name": "secret", "label": "Secret", "type": "text"},
        {"api_name": "revenue", "label": "Revenue", "type": "currency", "precision": 14, "scale": 2},
        {"api_name": "employees", "label": "Employees", "type": "integer"},
        {"api_name": "founded", "label": "Founded", "type": "date"},
        {"api_name": "visited_at", "label": "Visited", "type": "datetime"},
        {"api_name": "tier", "label": "Tier", "type": "formula", "return_type": "text",
         "expression": "'big' if employees > 100 else 'small'"},
    ], name_field="name")
    make_object("contact", [
        {"api_name": "full_name", "label": {"en": "Full name", "zh_CN": "姓名"}, "type": "text"},
        {"api_name": "account", "label": "Account", "type": "lookup", "reference_to": "account"},
        {"api_name": "phone", "label": "Phone", "type": "phone"},
    ], name_field="full_name")
    make_object("deal", [
        {"api_name": "title", "label": "Title", "type": "text"},
        {"api_name": "account", "label": "Account", "type": "master_detail", "reference_to": "account"},
    ], name_field="title")
    make_object("memo", [{"api_name": "body", "label": "Body", "type": "text"}])
    r = api.post("/roles", {"api_name": "account_rep", "label": {"en": "Account rep", "zh_CN": "客户代表"}, "objects": {
        "*": {"create": True, "read": True, "edit": True, "scope": "own", "fields": {"owner": "read"}},
        "memo": {"read": False},
        "account": {"create": True, "read": True, "edit": True, "scope": "own",
                    "fields": {"owner": "read", "secret": "hidden", "industry": "read"}}}})
    assert r.status_code == 201, r.get_json()
    users = {}
    for login, roles in [("rep", ["account_rep"]), ("rep2", ["account_rep"]), ("mgr", ["sales_manager"]),
                         ("marketer", ["marketing"]), ("plain_rep", ["sales_rep"])]:
        r = api.post("/users", {"login": login, "name": login, "password": PW, "roles": roles})
        assert r.status_code == 201, r.get_json()
        users[login] = r.get_json()["id"]
    return {"users": users, "tokens": {login: auth.create_token(runtime.db, login) for login in users}}


@pytest.fixture
def crm(layouts_crm, app):
    return {"users": layouts_crm["users"],
            "as": {login: Api(app.test_client(), token) for login, token in layouts_crm["tokens"].items()}}


def ok(r, status=200):
    assert r.status_code == status, r.get_json()
    return r.get_json()


def refused(r, status, *paths):
    assert r.status_code == status, r.get_json()
    fields = r.get_json()["error"]["fields"]
    for p in paths:
        assert p in fields, (p, fields)
    return fields


SALES_LAYOUT = {
    "name": "Sales",
    "sections": [
        {"key": "main", "title": {"en": "Main", "zh_CN": "主要"}, "columns": 2,
         "fields": ["name", {"field": "industry", "required": True}, "secret", "owner"]},
        {"key": "money", "title": {"en": "Money", "zh_CN": "金额"}, "columns": 1, "collapsible": True,
         "collapsed": True, "fields": [{"field": "revenue", "read_only": True}, "tier", "founded"]},
    ],
    "related_lists": [{"object": "contact", "field": "account", "columns": ["full_name", "phone"],
                       "sort": ["full_name"]}],
    "buttons": [{"kind": "standard", "name": "edit"}, {"kind": "standard", "name": "delete"},
                {"kind": "action", "name": "send_welcome", "function": "send_welcome",
                 "label": {"en": "Send welcome", "zh_CN": "发送欢迎"}}],
}


def field_names(layout):
    return [f["field"] for s in layout["sections"] for f in s["fields"]]


def field(layout, name):
    return next(f for s in layout["sections"] for f in s["fields"] if f["field"] == name)


# ------------------------------------------------------------------ layouts

def test_layout_crud_keeps_every_version(api, crm, runtime):
    created = ok(api.post("/meta/objects/account/layouts", SALES_LAYOUT), 201)
    lid = created["id"]
    assert created["version"] == 1 and created["name"] == "Sales" and created["default"] is False
    assert field_names(created) == ["name", "industry", "secret", "owner", "revenue", "tier", "founded"]
    # name is required on the object, so the layout reports it required too
    assert field(created, "name")["required"] is True and field(created, "revenue")["read_only"] is True
    assert created["sections"][1]["collapsed"] is True and created["sections"][1]["columns"] == 1
    assert created["related_lists"] == [{"object": "contact", "field": "account",
                                         "title": {"en": "Contact", "zh_CN": "Contact"},
                                         "columns": ["full_name", "phone"], "sort": ["full_name"]}]
    assert created["buttons"][2] == {"kind": "action", "name": "send_welcome", "function": "send_welcome",
                                     "label": {"en": "Send welcome", "zh_CN": "发送欢迎"}}

    changed = ok(api.patch(f"/meta/objects/account/layouts/{lid}", {"name": "Sales v2", "default": True}))
    assert changed["version"] == 2 and changed["default"] is True
    assert field_names(changed) == field_names(created)          # untouched parts stay
    moved = ok(api.patch(f"/meta/objects/account/layouts/{lid}",
                         {"sections": [{"title": "Only", "fields": ["founded", "name"]}]}))
    assert moved["version"] == 3 and field_names(moved) == ["founded", "name"]
    assert moved["sections"][0]["key"] == "section_1" and moved["sections"][0]["columns"] == 2

    versions = ok(api.get(f"/meta/objects/account/layouts/{lid}/versions"))["versions"]
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert [v["name"] for v in versions] == ["Sales v2", "Sales v2", "Sales"]
    assert field_names(versions[2]) == field_names(created) and versions[2]["default"] is False

    listed = ok(api.get("/meta/objects/account/layouts"))["layouts"]
    assert [x["id"] for x in listed] == [lid]
    assert ok(api.get(f"/meta/objects/account/layouts/{lid}"))["version"] == 3

    assert api.delete(f"/meta/objects/account/layouts/{lid}").status_code == 204
    assert api.get(f"/meta/objects/account/layouts/{lid}").status_code == 404
    assert api.get(f"/meta/objects/account/layouts/{lid}/versions").status_code == 404
    # its history stays, ending in the deletion (GET /meta/layouts/account.Sales v2/versions shows it)
    assert count_rows(runtime, "lh_meta_history", "kind = 'layout' AND action = 'deleted'") == 1


def test_stale_version_is_a_conflict_and_changes_nothing(api, crm):
    lid = ok(api.post("/meta/objects/account/layouts", SALES_LAYOUT), 201)["id"]
    ok(api.patch(f"/meta/objects/account/layouts/{lid}", {"name": "A", "version": 1}))
    fields = refused(api.patch(f"/meta/objects/account/layouts/{lid}", {"name": "B", "version": 1}), 409, "version")
    assert "2" in fields["version"]
    assert ok(api.get(f"/meta/objects/account/layouts/{lid}"))["name"] == "A"


@pytest.mark.parametrize("change, status, path", [
    ({"sections": [{"fields": ["name", "nope"]}]}, 422, "sections.0.fields.1"),
    ({"sections": [{"fields": ["name"]}, {"fields": ["founded", "revenue", "name"]}]}, 422, "sections.1.fields.2"),
    ({"sections": [{"fields": [{"field": "name", "required": False}]}]}, 422, "sections.0.fields.0.required"),
    ({"sections": [{"fields": [{"field": "tier", "required": True}]}]}, 422, "sections.0.fields.0.required"),
    ({"sections": [{"fields": [{"field": "name", "read_only": True}]}]}, 422, "sections.0.fields.0.read_only"),
    ({"sections": [{"fields": [{"field": "founded", "required": "yes"}]}]}, 422, "sections.0.fields.0.required"),
    ({"sections": [{"fields": [{"field": "founded", "colour": "red"}]}]}, 422, "sections.0.fields.0.colour"),
    ({"sections": [{"fields": ["created_at"]}]}, 422, "sections.0.fields.0"),
    ({"sections": [{"fields": [7]}]}, 422, "sections.0.fields.0"),
    ({"sections": [{"columns": 3, "fields": ["name"]}]}, 422, "sections.0.columns"),
    ({"sections": [{"collapsed": True, "fields": ["name"]}]}, 422, "sections.0.collapsed"),
    ({"sections": [{"key": "a", "fields": ["name"]}, {"key": "a", "fields": []}]}, 422, "sections.1.key"),
    ({"sections": [{"key": "Bad Key", "fields": []}]}, 422, "sections.0.key"),
    ({"sections": [{"title": {"fr": "x"}, "fields": []}]}, 422, "sections.0.title"),
    ({"sections": "main"}, 422, "sections"),
    ({"related_lists": [{"object": "ghost"}]}, 422, "related_lists.0.object"),
    ({"related_lists": [{"object": "memo"}]}, 422, "related_lists.0.field"),
    ({"related_lists": [{"object": "contact", "field": "phone"}]}, 422, "related_lists.0.field"),
    ({"related_lists": [{"object": "contact", "columns": ["full_name", "nope"]}]}, 422, "related_lists.0.columns.1"),
    ({"related_lists": [{"object": "contact", "sort": ["-nope"]}]}, 422, "related_lists.0.sort.0"),
    ({"related_lists": [{"object": "contact"}, {"object": "contact", "field": "account"}]}, 422, "related_lists.1"),
    ({"buttons": [{"kind": "standard", "name": "launch"}]}, 422, "buttons.0.name"),
    ({"buttons": [{"kind": "action", "name": "go", "function": "Not A Name"}]}, 422, "buttons.0.function"),
    ({"buttons": [{"kind": "action", "name": "go"}]}, 422, "buttons.0.function"),
    ({"buttons": [{"kind": "magic", "name": "go"}]}, 422, "buttons.0.kind"),
    ({"buttons": ["edit", "edit"]}, 422, "buttons.1.name"),
    ({"name": ""}, 422, "name"),
    ({"default": "yes"}, 422, "default"),
    ({"colour": "red"}, 422, "colour"),
])
def test_bad_layouts_name_the_path_and_save_nothing(api, crm, runtime, change, status, path):
    r = api.post("/meta/objects/account/layouts", {**SALES_LAYOUT, **change})
    refused(r, status, path)
    assert count_rows(runtime, "lh_meta_items", "kind = 'layout'") == 0
    assert count_rows(runtime, "lh_meta_history", "kind = 'layout'") == 0
    lid = ok(api.post("/meta/objects/account/layouts", SALES_LAYOUT), 201)["id"]
    refused(api.patch(f"/meta/objects/account/layouts/{lid}", change), status, path)
    assert ok(api.get(f"/meta/objects/account/layouts/{lid}"))["version"] == 1
    assert count_rows(runtime, "lh_meta_history", "kind = 'layout'") == 1


def test_layout_requests_that_are_not_layouts(api, crm):
    refused(api.post("/meta/objects/ghost/layouts", SALES_LAYOUT), 404, "object")
    refused(api.post("/meta/objects/account/layouts", {"name": "x"}), 422, "sections")
    assert api.post("/meta/objects/account/layouts", [1, 2]).status_code == 400
    assert api.patch("/meta/objects/account/layouts/99", {"name": "x"}).status_code == 404
    lid = ok(api.post("/meta/objects/account/layouts", SALES_LAYOUT), 201)["id"]
    assert api.get(f"/meta/objects/contact/layouts/{lid}").status_code == 404     # another object's id
    refused(api.post("/meta/objects/account/layouts", SALES_LAYOUT), 409, "name")  # names are unique per object


def test_only_admins_design_layouts(api, crm, runtime):
    rep = crm["as"]["rep"]
    assert rep.post("/meta/objects/account/layouts", SALES_LAYOUT).status_code == 403
    lid = ok(api.post("/meta/objects/account/layouts", SALES_LAYOUT), 201)["id"]
    for call in (rep.get("/meta/objects/account/layouts"), rep.get(f"/meta/objects/account/layouts/{lid}"),
                 rep.patch(f"/meta/objects/account/layouts/{lid}", {"name": "mine"}),
                 rep.delete(f"/meta/objects/account/layouts/{lid}"),
                 rep.get(f"/meta/objects/account/layouts/{lid}/versions"),
                 rep.put("/meta/objects/account/layout-assignments", {"account_rep": lid})):
        assert call.status_code == 403
    assert count_rows(runtime, "lh_meta_history", "kind = 'layout'") == 1
    assert runtime.layouts.assignments("account") == {}


# ------------------------------------------------------------------ effective layouts

def test_default_generated_layout_with_related_lists(api, crm):
    got = ok(api.get("/objects/account/layout"))
    assert got["id"] is None and len(got["sections"]) == 1
    main = got["sections"][0]
    assert main["columns"] == 2 and main["title"] == {"en": "Details", "zh_CN": "详细信息"}
    assert field_names(got) == ["name", "industry", "secret", "revenue", "employees", "founded", "visited_at", "tier"]
    assert field(got, "name") == {"field": "name", "required": True, "read_only": False}
    assert field(got, "tier")["read_only"] is True               # formulas are never editable
    related = {(r["object"], r["field"]): r for r in got["related_lists"]}
    assert set(related) == {("contact", "account"), ("deal", "account")}
    assert related[("contact", "account")]["columns"][0] == "full_name"
    assert "account" not in related[("contact", "account")]["columns"]
    assert related[("deal", "account")]["sort"] == ["-created_at"]
    assert [b["name"] for b in got["buttons"]] == ["edit", "delete", "transfer_owner"]


def test_effective_layout_per_role_applies_field_rights(api, crm):
    sales = ok(api.post("/meta/objects/account/layouts", SALES_LAYOUT), 201)["id"]
    compact = ok(api.post("/meta/objects/account/layouts", {
        "name": "Compact", "default": True, "sections": [{"fields": ["name", "founded"]}]}), 201)["id"]
    assert ok(api.put("/meta/objects/account/layout-assignments", {"account_rep": sales})) == {
        "assignments": {"account_rep": sales}}

    rep = ok(crm["as"]["rep"].get("/objects/account/layout"))
    assert rep["id"] == sales and rep["name"] == "Sales"
    assert "secret" not in field_names(rep)                      # hidden by his role: absent
    assert field(rep, "industry") == {"field": "industry", "required": True, "read_only": True}
    assert field(rep, "owner")["read_only"] is True and field(rep, "revenue")["read_only"] is True
    assert field(rep, "founded")["read_only"] is False
    assert [b["name"] for b in rep["buttons"]] == ["edit", "send_welcome"]   # no delete right
    assert rep["related_lists"][0]["columns"] == ["full_name", "phone"]

    # the manager's role has no assignment: the default layout
    mgr = ok(crm["as"]["mgr"].get("/objects/account/layout"))
    assert mgr["id"] == compact and field_names(mgr) == ["name", "founded"]
    # admins always get the default layout
    assert ok(api.get("/objects/account/layout"))["id"] == compact

    # unassigning falls back to the default; deleting the default falls back to the generated one
    ok(api.put("/meta/objects/account/layout-assignments", {"account_rep": None}))
    assert ok(crm["as"]["rep"].get("/objects/account/layout"))["id"] == compact
    assert api.delete(f"/meta/objects/account/layouts/{compact}").status_code == 204
    assert ok(crm["as"]["rep"].get("/objects/account/layout"))["id"] is None


def test_assignment_errors_name_the_role(api, crm):
    lid = ok(api.post("/meta/objects/account/layouts", SALES_LAYOUT), 201)["id"]
    other = ok(api.post("/meta/objects/contact/layouts", {"name": "C", "sections": [{"fields": ["full_name"]}]}),
               201)["id"]
    refused(api.put("/meta/objects/account/layout-assignments", {"no_such_role": lid}), 422, "no_such_role")
    refused(api.put("/meta/objects/account/layout-assignments", {"account_rep": other}), 422, "account_rep")
    refused(api.put("/meta/objects/account/layout-assignments", {"account_rep": "1"}), 422, "account_rep")
    refused(api.put("/meta/objects/account/layout-assignments", {"sales_rep": lid, "ghost": lid}), 422, "ghost")
    assert ok(api.get("/meta/objects/account/layout-assignments"))["assignments"] == {}


def test_deleted_fields_and_objects_do_not_break_layouts(api, crm):
    lid = ok(api.post("/meta/objects/account/layouts", {**SALES_LAYOUT, "default": True}), 201)["id"]
    assert api.delete("/meta/objects/account/fields/founded").status_code == 204
    assert api.delete("/meta/objects/contact/fields/phone").status_code == 204
    got = ok(api.get("/objects/account/layout"))
    assert got["id"] == lid and "founded" not in field_names(got)
    assert got["related_lists"][0]["columns"] == ["full_name"]
    # the stored layout, shown to the designer without the deleted field, saves back as it is
    stored = ok(api.get(f"/meta/objects/account/layouts/{lid}"))
    assert "founded" not in field_names(stored)
    ok(api.patch(f"/meta/objects/account/layouts/{lid}", {"sections": stored["sections"]}))
    # the whole child object goes: its related list goes with it
    assert api.delete("/meta/objects/contact/fields/account").status_code == 204
    assert api.delete("/meta/objects/contact").status_code == 204
    assert ok(api.get("/objects/account/layout"))["related_lists"] == []


def test_effective_layout_needs_the_read_right(crm):
    assert crm["as"]["rep"].get("/objects/memo/layout").status_code == 403
    assert crm["as"]["rep"].get("/objects/ghost/layout").status_code == 404


# ------------------------------------------------------------------ list views

VIEW = {"name": {"en": "Big tech", "zh_CN": "大型科技"}, "columns": ["name", "revenue"],
        "filter": {"and": [{"field": "employees", "op": "gte", "value": 100},
                           {"field": "name", "op": "contains", "value": "a"}]},
        "sort": ["-revenue"]}


def test_personal_and_shared_views(api, crm):
    rep, rep2 = crm["as"]["rep"], crm["as"]["rep2"]
    mine = ok(rep.post("/objects/account/views", VIEW), 201)
    assert mine["shared"] is False and mine["owner"] == crm["users"]["rep"] and mine["filter"] == VIEW["filter"]
    assert mine["columns"] == ["name", "revenue"] and mine["sort"] == ["-revenue"] and mine["filter_error"] is None
    shared = ok(api.post("/objects/account/views", {**VIEW, "name": "Everyone", "shared": True, "position": 1}), 201)

    assert [v["id"] for v in ok(rep.get("/objects/account/views"))["views"]] == [mine["id"], shared["id"]]
    assert [v["id"] for v in ok(rep2.get("/objects/account/views"))["views"]] == [shared["id"]]
    # another user's personal view does not exist for him, admin or not
    for client in (rep2, api):
        assert client.get(f"/objects/account/views/{mine['id']}").status_code == 404
        assert client.patch(f"/objects/account/views/{mine['id']}", {"name": "x"}).status_code == 404
        assert client.delete(f"/objects/account/views/{mine['id']}").status_code == 404
    # a shared view is read by all and changed by admins only
    assert ok(rep2.get(f"/objects/account/views/{shared['id']}"))["name"]["en"] == "Everyone"
    assert rep2.patch(f"/objects/account/views/{shared['id']}", {"name": "x"}).status_code == 403
    assert rep2.delete(f"/objects/account/views/{shared['id']}").status_code == 403
    # a non-admin may neither create a shared view nor share his own
    assert rep.post("/objects/account/views", {**VIEW, "shared": True}).status_code == 403
    assert rep.patch(f"/objects/account/views/{mine['id']}", {"shared": True}).status_code == 403

    changed = ok(rep.patch(f"/objects/account/views/{mine['id']}", {"columns": ["name"], "filter": None}))
    assert changed["columns"] == ["name"] and changed["filter"] is None and changed["sort"] == ["-revenue"]
    assert rep.delete(f"/objects/account/views/{mine['id']}").status_code == 204
    assert rep.get(f"/objects/account/views/{mine['id']}").status_code == 404


@pytest.mark.parametrize("change, path", [
    ({"filter": {"field": "nope", "op": "eq", "value": 1}}, "filter"),
    ({"filter": {"field": "employees", "op": "contains", "value": "x"}}, "filter"),
    ({"filter": {"field": "employees", "op": "gte", "value": "many"}}, "filter"),
    ({"filter": {"or": []}}, "filter"),
    ({"filter": "name = 1"}, "filter"),
    ({"filter": {"field": "founded", "op": "last_n_days", "value": 0}}, "filter"),
    ({"columns": ["name", "nope"]}, "columns"),
    ({"columns": []}, "columns"),
    ({"sort": ["-nope"]}, "sort"),
    ({"sort": "name"}, "sort"),
])
def test_bad_view_queries_are_400_naming_the_part(crm, runtime, change, path):
    rep = crm["as"]["rep"]
    refused(rep.post("/objects/account/views", {**VIEW, **change}), 400, path)
    assert count_rows(runtime, "lh_list_views") == 0


def test_view_cannot_use_a_field_hidden_from_its_author(crm, runtime):
    rep = crm["as"]["rep"]
    refused(rep.post("/objects/account/views", {**VIEW, "filter": {"field": "secret", "op": "eq", "value": "s"}}),
            400, "filter")
    refused(rep.post("/objects/account/views", {**VIEW, "columns": ["name", "secret"]}), 400, "columns")
    assert count_rows(runtime, "lh_list_views") == 0


@pytest.mark.parametrize("change, path", [
    ({"name": ""}, "name"), ({"name": None}, "name"), ({"shared": "no"}, "shared"),
    ({"position": -1}, "position"), ({"position": True}, "position"), ({"owner": 1}, "owner"),
])
def test_bad_view_properties_are_422(crm, change, path):
    refused(crm["as"]["rep"].post("/objects/account/views", {**VIEW, **change}), 422, path)


def test_shared_view_shows_each_user_only_what_he_may_read(api, crm):
    view = ok(api.post("/objects/account/views", {**VIEW, "name": "All", "shared": True,
                                                   "columns": ["name", "secret", "revenue"], "sort": ["secret"],
                                                   "filter": {"field": "secret", "op": "is_null", "value": False}}),
              201)
    mine = ok(crm["as"]["rep"].get(f"/objects/account/views/{view['id']}"))
    assert mine["columns"] == ["name", "revenue"] and mine["sort"] == []
    assert "secret" in mine["filter_error"]
    assert ok(api.get(f"/objects/account/views/{view['id']}"))["filter_error"] is None
    # a field deleted later drops out of the columns for everyone
    assert api.delete("/meta/objects/account/fields/revenue").status_code == 204
    assert ok(api.get(f"/objects/account/views/{view['id']}"))["columns"] == ["name", "secret"]


def test_views_need_the_read_right(crm):
    rep = crm["as"]["rep"]
    assert rep.get("/objects/memo/views").status_code == 403
    assert rep.post("/objects/memo/views", {"name": "x", "columns": ["body"]}).status_code == 403


def test_saved_view_runs_through_the_query_endpoint(api, crm):
    """What the list page does: fetch the view, query with its filter and sort."""
    for name, employees, revenue in [("Acme", 500, "10.00"), ("Bea", 50, "99.00"), ("Cal", 300, "20.00")]:
        ok(api.post("/objects/account/records", {"name": name, "employees": employees, "revenue": revenue}), 201)
    view = ok(api.post("/objects/account/views", VIEW), 201)
    r = ok(api.post("/objects/account/query", {"filter": view["filter"], "sort": view["sort"],
                                               "fields": view["columns"]}))
    assert [x["name"] for x in r["records"]] == ["Cal", "Acme"]


# ------------------------------------------------------------------ menu

def test_menu_order_and_rights(api, crm):
    default = [m["object"] for m in ok(api.get("/meta/menu"))["menu"]]
    assert default == ["account", "contact", "deal", "memo"]      # by label
    ok(api.put("/meta/menu", {"objects": ["memo", "deal"]}))
    got = ok(api.get("/meta/menu"))
    assert [m["object"] for m in got["menu"]] == ["memo", "deal", "account", "contact"]
    assert got["order"] == ["memo", "deal"] and got["menu"][0]["label"] == {"en": "Memo", "zh_CN": "Memo"}
    # the rep may not read memos: they are not in his menu
    assert [m["object"] for m in ok(crm["as"]["rep"].get("/meta/menu"))["menu"]] == ["deal", "account", "contact"]
    # a deleted object leaves every menu
    assert api.delete("/meta/objects/memo").status_code == 204
    assert [m["object"] for m in ok(api.get("/meta/menu"))["menu"]] == ["deal", "account", "contact"]


def test_menu_changes_need_an_admin_and_valid_names(api, crm):
    assert crm["as"]["rep"].put("/meta/menu", {"objects": ["deal"]}).status_code == 403
    refused(api.put("/meta/menu", {"objects": ["deal", "ghost"]}), 422, "objects.1")
    refused(api.put("/meta/menu", {"objects": ["deal", "deal"]}), 422, "objects.1")
    refused(api.put("/meta/menu", {"objects": "deal"}), 422, "objects")
    refused(api.put("/meta/menu", {"order": ["deal"]}), 422, "order", "objects")
    assert ok(api.get("/meta/menu"))["order"] == []


def test_menu_through_the_service(runtime, admin, crm):
    runtime.layouts.set_menu(admin, ["contact"])
    assert runtime.layouts.menu(admin)[0] == {"object": "contact", "label": {"en": "Contact", "zh_CN": "Contact"}}


# ------------------------------------------------------------------ XLSX export

def read_xlsx(r):
    assert r.status_code == 200, r.get_json()
    assert r.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert 'filename="account.xlsx"' in r.headers["Content-Disposition"]
    book = openpyxl.load_workbook(io.BytesIO(r.data))
    rows = list(book.active.iter_rows(values_only=True))
    return rows[0], [dict(zip(rows[0], row)) for row in rows[1:]], book.active


def test_xlsx_export_has_real_dates_numbers_and_no_formulas(api, crm, runtime):
    ok(api.post("/objects/account/records", {
        "name": "=HYPERLINK(\"http://evil\")", "industry": "tech", "revenue": "1234567.89", "employees": 250,
        "founded": "2001-02-03", "visited_at": "2026-03-04T05:06:07Z", "secret": "s1"}), 201)
    ok(api.post("/objects/account/records", {"name": "深圳贸易"}), 201)
    header, rows, sheet = read_xlsx(api.get("/objects/account/export?format=xlsx&sort=id"))
    assert header[:3] == ("id", "owner", "created_by") and "secret" in header and "tier" in header
    first, second = rows
    assert first["name"] == "=HYPERLINK(\"http://evil\")"          # text, not a formula
    assert sheet.cell(row=2, column=header.index("name") + 1).data_type == "s"
    assert first["revenue"] == 1234567.89 and first["employees"] == 250   # numbers, not text
    assert first["founded"] == dt.datetime(2001, 2, 3)                  # a real Excel date
    assert sheet.cell(row=2, column=header.index("founded") + 1).is_date
    assert first["visited_at"] == dt.datetime(2026, 3, 4, 13, 6, 7)     # Asia/Shanghai local time
    assert first["tier"] == "big" and first["industry"] == "tech"
    assert second["name"] == "深圳贸易" and second["revenue"] is None
    with runtime.db.read() as conn:
        entries = conn.exec_driver_sql("SELECT details FROM lh_audit WHERE action = 'export'").all()
    assert len(entries) == 1


def test_xlsx_export_follows_rights_and_filters(api, crm):
    rep = crm["as"]["rep"]
    for name in ("Mine", "Also mine"):
        ok(rep.post("/objects/account/records", {"name": name, "employees": 5}), 201)
    ok(api.post("/objects/account/records", {"name": "Admin's", "secret": "s"}), 201)
    # the account rep's role grants no export right
    assert rep.get("/objects/account/export?format=xlsx").status_code == 403
    assert rep.get("/objects/account/export").status_code == 403          # CSV is refused alike
    # the manager may export, within his scope (his department tree, which is empty) and without hidden fields
    mgr_rows = read_xlsx(crm["as"]["mgr"].get("/objects/account/export?format=xlsx"))[1]
    assert mgr_rows == []
    filt = '{"field": "name", "op": "contains", "value": "mine"}'
    header, rows, _ = read_xlsx(api.get(f"/objects/account/export?format=xlsx&filter={filt}&fields=name,employees"))
    assert header == ("name", "employees") and sorted(r["name"] for r in rows) == ["Also mine", "Mine"]


@pytest.mark.parametrize("query", ["format=pdf", "format=XLSX", "format="])
def test_wrong_export_format_is_a_400_naming_format(api, crm, runtime, query):
    refused(api.get(f"/objects/account/export?{query}"), 400, "format")
    assert count_rows(runtime, "lh_audit", "action = 'export'") == 0


# ------------------------------------------------------------------ bulk delete and bulk owner transfer

def make_accounts(client, *names):
    return [ok(client.post("/objects/account/records", {"name": n}), 201)["id"] for n in names]


def live_names(api):
    return sorted(r["name"] for r in ok(api.get("/objects/account/records?fields=name"))["records"])


def test_bulk_delete_is_all_or_nothing(api, crm, runtime):
    a, b, c = make_accounts(api, "A", "B", "C")
    assert ok(api.post("/objects/account/records/bulk-delete", {"ids": [a, b]})) == {"deleted": 2}
    assert live_names(api) == ["C"]
    # one missing (here: already deleted) id: a 404 naming it, and C stays
    fields = refused(api.post("/objects/account/records/bulk-delete", {"ids": [c, a]}), 404, "ids")
    assert str(a) in fields["ids"] and live_names(api) == ["C"]
    # deleted records can be restored one by one as usual
    ok(api.post(f"/objects/account/records/{a}/restore"))
    assert live_names(api) == ["A", "C"]


def test_bulk_delete_out_of_scope_id_deletes_nothing(api, crm):
    mgr = crm["as"]["mgr"]
    mine = make_accounts(mgr, "M1", "M2")
    others = make_accounts(api, "Admin's")
    fields = refused(mgr.post("/objects/account/records/bulk-delete", {"ids": mine + others}), 404, "ids")
    assert str(others[0]) in fields["ids"] and str(mine[0]) not in fields["ids"]
    assert live_names(api) == ["Admin's", "M1", "M2"]
    # without the delete right: 403 and nothing deleted
    rep_ids = make_accounts(crm["as"]["rep"], "R1")
    assert crm["as"]["rep"].post("/objects/account/records/bulk-delete", {"ids": rep_ids}).status_code == 403
    assert "R1" in live_names(api)


def test_bulk_delete_with_cascading_children_in_the_same_request(api, crm):
    """A deal is a master-detail child of its account: deleting the account
    deletes it too, so naming both in one request is no error."""
    parent = make_accounts(api, "Parent")[0]
    deal = ok(api.post("/objects/deal/records", {"title": "D", "account": parent}), 201)["id"]
    ok(api.post("/objects/account/records/bulk-delete", {"ids": [parent]}))
    assert ok(api.get("/objects/deal/records"))["records"] == []
    ok(api.post(f"/objects/account/records/{parent}/restore"))
    assert [x["id"] for x in ok(api.get("/objects/deal/records"))["records"]] == [deal]
    # within one object: a branch cascades with its head office, and both are named
    ok(api.post("/meta/objects/account/fields", {"api_name": "head_office", "label": "Head office", "type": "lookup",
                                                 "reference_to": "account", "on_delete": "cascade"}), 201)
    branch = ok(api.post("/objects/account/records", {"name": "Branch", "head_office": parent}), 201)["id"]
    other = make_accounts(api, "Other")[0]
    ok(api.post("/objects/account/records/bulk-delete", {"ids": [parent, branch, other]}))
    assert live_names(api) == []


@pytest.mark.parametrize("payload, status, path", [
    ({"ids": []}, 400, "ids"), ({"ids": "1"}, 400, "ids"), ({}, 400, "ids"),
    ({"ids": [1, "2"]}, 422, "ids.1"), ({"ids": [1, True]}, 422, "ids.1"), ({"ids": [1, 1]}, 400, "ids"),
    ({"ids": list(range(1, 1002))}, 400, "ids"), ({"ids": [1], "all": True}, 400, "all"),
])
def test_bad_bulk_delete_bodies(api, crm, payload, status, path):
    make_accounts(api, "Keep")
    refused(api.post("/objects/account/records/bulk-delete", payload), status, path)
    assert live_names(api) == ["Keep"]


def test_bulk_delete_huge_ids_are_simply_not_found(api, crm):
    make_accounts(api, "Keep")
    refused(api.post("/objects/account/records/bulk-delete", {"ids": [2**63, 2**80]}), 404, "ids")


def test_bulk_owner_transfer_needs_the_owner_right(api, crm):
    """The list page's bulk edit and owner transfer use POST .../records/bulk
    with operation "update" (there is no PATCH .../records/bulk)."""
    mgr, rep = crm["as"]["mgr"], crm["as"]["rep"]
    ids = make_accounts(mgr, "T1", "T2")
    body = {"operation": "update", "records": [{"id": i, "owner": crm["users"]["rep"]} for i in ids]}
    # the account rep may only read owner: refused, nothing moves
    rep_ids = make_accounts(rep, "R1")
    r = rep.post("/objects/account/records/bulk", {"operation": "update", "records": [
        {"id": rep_ids[0], "owner": crm["users"]["rep2"]}]})
    refused(r, 403, "owner")
    assert ok(api.get(f"/objects/account/records/{rep_ids[0]}"))["owner"] == crm["users"]["rep"]
    # the manager may: both move, each audited
    ok(mgr.post("/objects/account/records/bulk", body))
    assert [ok(api.get(f"/objects/account/records/{i}"))["owner"] for i in ids] == [crm["users"]["rep"]] * 2
    entries = ok(api.get("/audit?action=owner_transferred"))["entries"]
    assert len(entries) == 2
    assert api.patch("/objects/account/records/bulk", body).status_code == 405


def test_openapi_lists_layout_view_menu_export_and_bulk_delete_paths(api, crm):
    from openapi_spec_validator import validate
    doc = ok(api.get("/openapi.json"))
    validate(doc)
    for path in ("/meta/objects/{object}/layouts", "/meta/objects/{object}/layouts/{id}/versions",
                 "/meta/objects/{object}/layout-assignments", "/objects/{object}/layout",
                 "/objects/{object}/views/{id}", "/meta/menu", "/objects/account/export",
                 "/objects/account/records/bulk-delete"):
        assert path in doc["paths"], path


def test_generated_layout_saves_as_a_starting_point(api, runtime, admin, crm):
    """The designer starts a new layout from the generated one: it validates as it is."""
    from leadhub.data.layout_rules import default_definition
    reg = runtime.cache.current()
    start = default_definition(reg, reg.get("account"))
    saved = runtime.layouts.create_layout(admin, "account", {"name": "From default", **start})
    assert field_names(saved) == field_names(ok(api.get("/objects/account/layout")))
    assert {(r["object"], r["field"]) for r in saved["related_lists"]} == {("contact", "account"), ("deal", "account")}


def test_concurrent_saves_of_one_version_let_exactly_one_win(runtime, admin, crm):
    import threading
    lid = runtime.layouts.create_layout(admin, "account", SALES_LAYOUT)["id"]
    outcomes, barrier = [], threading.Barrier(4)

    def save(i):
        barrier.wait()
        try:
            runtime.layouts.update_layout(admin, "account", lid, {"name": f"Edit {i}", "version": 1})
            outcomes.append("saved")
        except Exception as exc:   # noqa: BLE001  (the loser's error is what is checked)
            outcomes.append(type(exc).__name__)
    threads = [threading.Thread(target=save, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(outcomes) == ["Conflict"] * 3 + ["saved"]
    assert [v["version"] for v in runtime.layouts.layout_versions("account", lid)] == [2, 1]


@pytest.mark.parametrize("raw, path", [
    ('{"name": "a\\u0000b", "sections": [{"fields": ["name"]}]}', "name"),
    ('{"name": "x", "sections": [{"title": "\\ud800", "fields": ["name"]}]}', "sections.0.title"),
    ('{"name": "x", "sections": [{"columns": 1.0, "fields": ["name"]}]}', "sections.0.columns"),
    ('{"name": "x", "sections": [{"columns": true, "fields": ["name"]}]}', "sections.0.columns"),
])
def test_text_that_cannot_be_stored_is_refused(api, crm, runtime, raw, path):
    r = api.client.post("/api/v1/meta/objects/account/layouts", data=raw, headers={
        **api.headers, "Content-Type": "application/json"})
    refused(r, 422, path)
    r = api.client.post("/api/v1/objects/account/views", data=raw.replace('"sections"', '"columns": ["name"], "x"'),
                        headers={**api.headers, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.get_json()["error"]["fields"]
    assert count_rows(runtime, "lh_meta_items", "kind IN ('layout', 'list_view')") == 0
    assert count_rows(runtime, "lh_list_views") == 0


def test_unstorable_text_in_assignments_and_menu(api, crm):
    for path, raw in (("/meta/objects/account/layout-assignments", '{"\\ud800": null}'),
                      ("/meta/menu", '{"objects": ["deal", "\\u0000"]}')):
        r = api.client.put("/api/v1" + path, data=raw, headers={**api.headers, "Content-Type": "application/json"})
        assert r.status_code == 422 and r.get_json()["error"]["fields"], r.data


def test_concurrent_creates_of_one_name_let_exactly_one_win(runtime, admin, crm):
    import threading
    outcomes, barrier = [], threading.Barrier(4)

    def create():
        barrier.wait()
        try:
            runtime.layouts.create_layout(admin, "account", {**SALES_LAYOUT, "name": "Same"})
            outcomes.append("saved")
        except Exception as exc:   # noqa: BLE001
            outcomes.append(type(exc).__name__)
    threads = [threading.Thread(target=create) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(outcomes) == ["Conflict"] * 3 + ["saved"]
    assert count_rows(runtime, "lh_meta_items", "kind = 'layout'") == 1
    assert count_rows(runtime, "lh_meta_history", "kind = 'layout'") == 1


def test_one_shared_my_records_view_serves_every_reader(api, crm):
    """A shared view filtered on owner = $me lists each reader's own records."""
    mgr, rep = crm["as"]["mgr"], crm["as"]["rep"]
    make_accounts(rep, "Rep's")
    make_accounts(mgr, "Manager's")
    view = ok(api.post("/objects/account/views", {"name": {"en": "My accounts", "zh_CN": "我的客户"},
                                                   "columns": ["name"], "shared": True,
                                                   "filter": {"field": "owner", "op": "eq", "value": "$me"}}), 201)
    for client, expected in ((rep, ["Rep's"]), (mgr, ["Manager's"]), (api, [])):
        got = ok(client.get(f"/objects/account/views/{view['id']}"))
        assert got["filter_error"] is None
        r = ok(client.post("/objects/account/query", {"filter": got["filter"], "fields": got["columns"]}))
        assert [x["name"] for x in r["records"]] == expected
