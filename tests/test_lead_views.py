"""The lead plugin ships its layout and shared list views as metadata: they
install once, compile for every user, and "My leads" is each reader's own."""
from leadhub.platform import auth
from tests.conftest import Api


def test_lead_views_install_once_and_serve_each_reader(api, app, runtime):
    report = runtime.plugins.install("lead")
    assert "layout/lead.Standard lead layout" in report.created_items
    assert "list_view/lead.my_leads" in report.created_items
    assert not runtime.plugins.upgrade("lead").created_items          # nothing twice
    r = api.post("/users", {"login": "rep", "name": "Rep", "password": "s3cret-pass", "roles": ["sales_rep"]})
    rep_id = r.get_json()["id"]
    rep = Api(app.test_client(), auth.create_token(runtime.db, "rep"))
    assert rep.post("/objects/lead/records", {"name": "张三", "company": "纷扬科技"}).status_code == 201
    assert api.post("/objects/lead/records", {"name": "李四", "company": "北京某某"}).status_code == 201
    views = {v["name"]["en"]: v for v in rep.get("/objects/lead/views").get_json()["views"]}
    assert {"My leads", "New today", "Overdue follow-up", "Duplicates", "Quarantine"} <= set(views)
    mine = views["My leads"]
    q = rep.post("/objects/lead/query", {"filter": mine["filter"], "fields": ["name", "owner"]}).get_json()
    assert [(x["name"], x["owner"]) for x in q["records"]] == [("张三", rep_id)]
    q = api.post("/objects/lead/query", {"filter": mine["filter"], "fields": ["name"]}).get_json()
    assert [x["name"] for x in q["records"]] == ["李四"]
    for name in ("New today", "Overdue follow-up", "Duplicates", "Quarantine"):
        r = rep.post("/objects/lead/query", {"filter": views[name]["filter"], "sort": views[name]["sort"]})
        assert r.status_code == 200, (name, r.get_json())
    layout = rep.get("/objects/lead/layout").get_json()
    assert [s["key"] for s in layout["sections"]][:2] == ["basics", "qualification"]
    assert {r["object"] for r in layout["related_lists"]} == {"follow_up", "violation"}
