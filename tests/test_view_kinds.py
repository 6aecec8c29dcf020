"""Layouts, shared list views and the menu as metadata kinds: the same
items the designer's pages edit are served, versioned and rolled back under
/api/v1/meta/{layouts,list-views,menu-order}; fields they show may be
deleted (they skip them), purging an object removes them, and a role is in
one layout of an object."""
from tests.conftest import count_rows
from tests.test_layouts_api import SALES_LAYOUT, VIEW, crm, layouts_crm, ok, refused  # noqa: F401  (fixtures)


def test_a_layout_is_an_item_with_versions_diff_and_rollback(api, crm, runtime):
    lid = ok(api.post("/meta/objects/account/layouts", SALES_LAYOUT), 201)["id"]
    item = ok(api.get("/meta/layouts/account.Sales"))
    assert item["id"] == lid and item["object"] == "account" and item["roles"] == []
    ok(api.patch(f"/meta/objects/account/layouts/{lid}", {"sections": [{"key": "main", "fields": ["name"]}]}))
    diff = ok(api.get("/meta/layouts/account.Sales/diff?from=1&to=2"))
    assert "sections.0.fields.1.field" in diff["changed"]
    back = ok(api.post("/meta/layouts/account.Sales/rollback", {"version": 1}))
    assert back["version"] == 3
    designer = ok(api.get(f"/meta/objects/account/layouts/{lid}"))
    assert [f["field"] for f in designer["sections"][0]["fields"]] == ["name", "industry", "secret", "owner"]
    # the audit log has an entry per change: created, updated, rolled back
    assert count_rows(runtime, "lh_audit", "object = 'layout' AND target = 'account.Sales'") == 3


def test_renaming_a_layout_keeps_its_history_and_id(api, crm, runtime):
    lid = ok(api.post("/meta/objects/account/layouts", SALES_LAYOUT), 201)["id"]
    ok(api.patch(f"/meta/objects/account/layouts/{lid}", {"name": "Field sales"}))
    assert api.get("/meta/layouts/account.Sales").status_code == 404
    versions = ok(api.get("/meta/layouts/account.Field sales/versions"))["versions"]
    assert [v["version"] for v in versions] == [2, 1] and versions[1]["data"]["name"] == "Sales"
    assert ok(api.get(f"/meta/objects/account/layouts/{lid}"))["name"] == "Field sales"
    # another layout cannot take a name in use
    other = ok(api.post("/meta/objects/account/layouts", {**SALES_LAYOUT, "name": "Other"}), 201)["id"]
    refused(api.patch(f"/meta/objects/account/layouts/{other}", {"name": "Field sales"}), 409, "name")


def test_deleting_a_field_a_layout_shows_is_allowed_and_the_layout_skips_it(api, crm):
    lid = ok(api.post("/meta/objects/account/layouts", {**SALES_LAYOUT, "default": True}), 201)["id"]
    assert api.delete("/meta/objects/account/fields/founded").status_code == 204
    shown = ok(api.get("/objects/account/layout"))
    assert "founded" not in [f["field"] for s in shown["sections"] for f in s["fields"]]
    # the layout saves again without it; placing the deleted field anew is refused, naming where
    ok(api.patch(f"/meta/objects/account/layouts/{lid}", {"name": "Sales 2"}))
    refused(api.patch(f"/meta/objects/account/layouts/{lid}", {"sections": [{"fields": ["name", "founded"]}]}),
            422, "sections.0.fields.1")
    # deleting the related list's columns is tolerated the same way
    assert api.delete("/meta/objects/contact/fields/phone").status_code == 204
    ok(api.patch(f"/meta/layouts/account.Sales 2", {"default": True}))


def test_purging_an_object_removes_its_layouts_and_shared_views(api, crm, runtime):
    ok(api.post("/meta/objects/account/layouts", SALES_LAYOUT), 201)
    ok(api.post("/objects/account/views", {**VIEW, "shared": True}), 201)
    assert count_rows(runtime, "lh_meta_items", "kind IN ('layout', 'list_view')") == 2
    # contact and deal point at account: remove them first
    for child in ("contact", "deal"):
        assert api.delete(f"/meta/objects/{child}").status_code == 204
        assert api.delete(f"/meta/objects/{child}?purge=true").status_code == 204
    assert api.delete("/meta/objects/account").status_code == 204
    assert count_rows(runtime, "lh_meta_items", "kind IN ('layout', 'list_view')") == 2   # restorable until purged
    assert api.delete("/meta/objects/account?purge=true").status_code == 204
    assert count_rows(runtime, "lh_meta_items", "kind IN ('layout', 'list_view')") == 0


def test_a_role_is_in_one_layout_of_an_object(api, crm, runtime):
    a = ok(api.post("/meta/objects/account/layouts", SALES_LAYOUT), 201)
    b = ok(api.post("/meta/objects/account/layouts", {**SALES_LAYOUT, "name": "Compact"}), 201)
    ok(api.put("/meta/objects/account/layout-assignments", {"account_rep": a["id"]}))
    # giving the role to another layout through the generic API takes it from the first
    ok(api.patch("/meta/layouts/account.Compact", {"roles": ["account_rep"]}))
    assert ok(api.get("/meta/objects/account/layout-assignments"))["assignments"] == {"account_rep": b["id"]}
    assert ok(api.get("/meta/layouts/account.Sales"))["roles"] == []
    assert crm["as"]["rep"].get("/objects/account/layout").get_json()["id"] == b["id"]
    # an unknown role is refused, naming where it sits
    refused(api.patch("/meta/layouts/account.Compact", {"roles": ["nobody"]}), 400, "roles.0")


def test_shared_views_are_items_named_by_api_name(api, crm, runtime):
    shared = ok(api.post("/objects/account/views", {**VIEW, "shared": True}), 201)
    assert shared["id"] == "big_tech" and shared["shared"] is True
    item = ok(api.get("/meta/list-views/account.big_tech"))
    assert item["name"] == {"en": "Big tech", "zh_CN": "大型科技"} and item["columns"] == ["name", "revenue"]
    # the same English name twice is a conflict naming the name
    refused(api.post("/objects/account/views", {**VIEW, "shared": True}), 409, "name")
    # a view naming a field that does not exist is refused through the generic API too
    refused(api.patch("/meta/list-views/account.big_tech", {"columns": ["name", "nope"]}), 400, "columns")
    assert runtime.kinds.items("list_view")["account.big_tech"].version == 1
    # a rep's personal view made shared by an admin? only his own: an admin shares his own view
    mine = ok(api.post("/objects/account/views", {**VIEW, "name": "Mine"}), 201)
    assert isinstance(mine["id"], int)
    moved = ok(api.patch(f"/objects/account/views/{mine['id']}", {"shared": True}))
    assert moved["id"] == "mine" and moved["shared"] is True
    assert api.get(f"/objects/account/views/{mine['id']}").status_code == 404
    assert count_rows(runtime, "lh_list_views") == 0


def test_menu_order_is_a_singleton_item(api, crm):
    ok(api.put("/meta/menu", {"objects": ["deal", "account"]}))
    assert ok(api.get("/meta/menu-order/default"))["objects"] == ["deal", "account"]
    assert [m["object"] for m in ok(api.get("/meta/menu"))["menu"]][:2] == ["deal", "account"]
    refused(api.put("/meta/menu", {"objects": ["deal", "ghost"]}), 422, "objects.1")
    assert api.delete("/meta/menu-order/default").status_code == 409


def test_the_generic_editor_links_a_layout_to_its_designer_page(api, crm, app, runtime):
    from leadhub.platform import auth
    from tests.test_lead_admin_pages import speaking
    from tests.test_pages import PW
    lid = ok(api.post("/meta/objects/account/layouts", SALES_LAYOUT), 201)["id"]
    admin_id = auth.user_id(runtime.db, "admin")
    runtime.org.update_user(auth.actor_for(runtime.db, runtime.cache, admin_id), admin_id, {"password": PW})
    admin = speaking(app, "admin")
    page = admin.get("/admin/meta/layouts/account.Sales").text
    assert f'href="/admin/objects/account/layouts/{lid}"' in page
    assert admin.get("/admin/meta/layouts").status_code == 200 and admin.get("/admin/meta").status_code == 200


def test_an_old_link_to_a_shared_view_still_opens_it(tmp_path, api, crm, app, runtime):
    """Shared views became items named by api name (0012); their old numbers
    are kept, and the list page redirects a link that uses one."""
    from leadhub.platform import auth, migrate
    from leadhub.platform.db import Database
    from tests.test_lead_admin_pages import speaking
    from tests.test_pages import PW
    old = Database(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(old, "0011")
    now = "2026-01-01 00:00:00"
    with old.write() as conn:
        conn.exec_driver_sql("INSERT INTO lh_users (id, login, name, is_admin, active, language, created_at)"
                             f" VALUES (3, 'ops', 'Ops', 1, 1, 'zh_CN', '{now}')")
        conn.exec_driver_sql("INSERT INTO lh_list_views (id, object, labels, columns, filter, sort, shared, owner_id,"
                             " position, created_at, updated_at) VALUES (12, 'account', '{\"en\": \"Big tech\"}',"
                             f" '[\"name\"]', NULL, '[]', 1, 3, 0, '{now}', '{now}')")
    migrate.upgrade(old)
    with old.read() as conn:
        assert conn.exec_driver_sql("SELECT old_id, object, api_name FROM lh_list_view_links").all() == \
            [(12, "account", "big_tech")]
    old.dispose()

    ok(api.post("/objects/account/views", {**VIEW, "shared": True}), 201)        # account.big_tech, here
    with runtime.db.write() as conn:
        conn.exec_driver_sql("INSERT INTO lh_list_view_links (old_id, object, api_name) VALUES (12, 'account', 'big_tech')")
    admin_id = auth.user_id(runtime.db, "admin")
    runtime.org.update_user(auth.actor_for(runtime.db, runtime.cache, admin_id), admin_id, {"password": PW})
    page = speaking(app, "admin")
    r = page.get("/o/account?view=12&page=2")
    assert r.status_code == 302 and r.headers["Location"] == "/o/account?view=big_tech&page=2"
    assert page.get("/o/account?view=13").status_code == 404
