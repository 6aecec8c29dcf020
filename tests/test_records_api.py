"""Records through the API: every type coerced and stored, computed fields
kept current, history, soft delete and restore, events."""
import datetime as dt
from decimal import Decimal

import pytest



@pytest.fixture
def crm(crm_objects, api):
    acc = api.post("/objects/account/records", {"name": "华为"}).get_json()
    return acc


def deal(api, **values):
    body = {"title": "Big deal", "quantity": 3, "amount": "100.50", "discount": 10, "province": "guangdong",
            "city": "shenzhen", **values}
    r = api.post("/objects/deal/records", body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_every_type_round_trips(api, crm):
    d = deal(api, notes="long " * 100, weight="1.250", won=True, close_date="2026-03-01",
             last_contact="2026-02-01T08:30:00+08:00", email="Sales@Example.COM", phone="138 0013 8000",
             website="example.com", tags=["vip", "hot", "vip"], account=crm["id"], reviewer=1)
    got = api.get(f"/objects/deal/records/{d['id']}").get_json()
    assert got["weight"] == "1.250" and got["amount"] == "100.50"
    assert got["won"] is True and got["close_date"] == "2026-03-01"
    assert got["last_contact"] == "2026-02-01T00:30:00Z"
    assert got["email"] == "Sales@example.com"          # domain lower-cased, local part kept
    assert got["phone"] == "13800138000"
    assert got["website"] == "https://example.com"
    assert got["tags"] == ["vip", "hot"]                  # de-duplicated, order kept
    assert got["stage"] == "open"                         # default
    assert got["deal_no"] == f"DL-{dt.date.today().year}-0001"
    assert got["total"] == "271.35"                       # 3 * 100.50 * 0.9
    assert got["headline"] == "OPEN: Big deal"
    assert got["days_left"] == 59
    assert got["owner"] == 1 and got["created_by"] == 1
    assert api.get(f"/objects/account/records/{crm['id']}").get_json()["deal_count"] == 1


def test_formula_follows_update_and_rollups_follow_children(api, crm):
    d = deal(api, account=crm["id"])
    r = api.patch(f"/objects/deal/records/{d['id']}", {"quantity": 10, "stage": "won"})
    assert r.status_code == 200
    assert r.get_json()["total"] == "904.50" and r.get_json()["headline"] == "WON: Big deal"
    for hours in ("1.5", "2.0"):
        assert api.post("/objects/note/records", {"deal": d["id"], "hours": hours}).status_code == 201
    assert api.get(f"/objects/deal/records/{d['id']}").get_json()["hours_logged"] == "3.5"
    d2 = deal(api, account=crm["id"])
    assert api.get(f"/objects/account/records/{crm['id']}").get_json()["deal_count"] == 2
    # moving a child to another parent updates both
    acc2 = api.post("/objects/account/records", {"name": "腾讯"}).get_json()
    api.patch(f"/objects/deal/records/{d2['id']}", {"account": acc2["id"]})
    assert api.get(f"/objects/account/records/{crm['id']}").get_json()["deal_count"] == 1
    assert api.get(f"/objects/account/records/{acc2['id']}").get_json()["deal_count"] == 1


def test_soft_delete_restore_and_cascade(api, crm):
    d = deal(api)
    note = api.post("/objects/note/records", {"deal": d["id"], "hours": "4"}).get_json()
    assert api.delete(f"/objects/deal/records/{d['id']}").status_code == 204
    assert api.get(f"/objects/deal/records/{d['id']}").status_code == 404
    assert api.get(f"/objects/note/records/{note['id']}").status_code == 404   # cascaded
    binned = api.get("/objects/deal/records?deleted=true").get_json()["records"]
    assert [r["id"] for r in binned] == [d["id"]]
    r = api.post(f"/objects/deal/records/{d['id']}/restore")
    assert r.status_code == 200 and r.get_json()["title"] == "Big deal"
    assert api.get(f"/objects/note/records/{note['id']}").status_code == 200   # came back with it
    assert api.post(f"/objects/deal/records/{d['id']}/restore").status_code == 404


def test_restrict_blocks_delete_of_referenced_parent(api, crm):
    deal(api, account=crm["id"])
    r = api.delete(f"/objects/account/records/{crm['id']}")
    assert r.status_code == 409
    assert "account" in r.get_json()["error"]["fields"]
    assert api.get(f"/objects/account/records/{crm['id']}").status_code == 200


def test_set_null_clears_children(api, make_object):
    make_object("team", [{"api_name": "title", "label": "T", "type": "text"}])
    make_object("member", [{"api_name": "team", "label": "Team", "type": "lookup", "reference_to": "team"}])
    team = api.post("/objects/team/records", {"title": "a"}).get_json()
    m = api.post("/objects/member/records", {"team": team["id"]}).get_json()
    assert api.delete(f"/objects/team/records/{team['id']}").status_code == 204
    assert api.get(f"/objects/member/records/{m['id']}").get_json()["team"] is None


def test_field_history_records_who_when_old_new(api, make_object):
    make_object("ticket", [{"api_name": "state", "label": "S", "type": "picklist", "options": ["a", "b"],
                            "track_history": True},
                           {"api_name": "memo", "label": "M", "type": "text"}])
    t = api.post("/objects/ticket/records", {"state": "a", "memo": "x"}).get_json()
    api.patch(f"/objects/ticket/records/{t['id']}", {"state": "b", "memo": "y"})
    api.patch(f"/objects/ticket/records/{t['id']}", {"state": "b"})  # no change, no entry
    hist = api.get(f"/objects/ticket/records/{t['id']}/history").get_json()["history"]
    assert [(h["field"], h["old_value"], h["new_value"], h["changed_by"]) for h in hist] == [("state", "a", "b", 1)]


def test_events_fire_in_the_transaction(runtime, api, make_object):
    make_object("task", [{"api_name": "subject", "label": "S", "type": "text"}])
    seen = []

    @runtime.events.subscribe("before_insert", object="task")
    def shout(ev):
        ev.values["subject"] = (ev.values.get("subject") or "").upper()

    @runtime.events.subscribe("after_update", object="task")
    def log(ev):
        seen.append((ev.record_id, ev.old["subject"], ev.values["subject"]))

    t = api.post("/objects/task/records", {"subject": "call back"}).get_json()
    assert t["subject"] == "CALL BACK"
    api.patch(f"/objects/task/records/{t['id']}", {"subject": "done"})
    assert seen == [(t["id"], "CALL BACK", "done")]


def test_batch_handlers_see_a_bulk_write_at_once_and_refusals_name_each_row(runtime, api, make_object):
    """A batch handler gets one call per write with every row; a per-row
    refusal is named records.<i>.<field>, later handlers skip that row, and
    nothing of the write is stored."""
    from leadhub.platform.errors import ValidationFailed
    make_object("task", [{"api_name": "subject", "label": "S", "type": "text"}])
    calls, later = [], []

    @runtime.events.subscribe("before_insert", object="task")
    def refuse_blank(ev):
        if ev.values["subject"] == "-":
            raise ValidationFailed({"subject": "Say what the task is."})

    @runtime.events.subscribe("before_insert", object="task", batch=True)
    def look_up_once(events):
        calls.append([ev.values["subject"] for ev in events])

    runtime.events.subscribe("before_insert", lambda ev: later.append(ev.values["subject"]), object="task")
    r = api.post("/objects/task/records/bulk", {"records": [{"subject": "a"}, {"subject": "-"}, {"subject": "c"},
                                                            {"subject": "-"}]})
    assert r.status_code == 422
    assert r.get_json()["error"]["fields"] == {"records.1.subject": "Say what the task is.",
                                               "records.3.subject": "Say what the task is."}
    assert calls == [["a", "c"]] and later == ["a", "c"]
    assert api.get("/objects/task/records?count=true").get_json()["total"] == 0
    calls.clear()
    assert api.post("/objects/task/records/bulk", {"records": [{"subject": "x"}, {"subject": "y"}]}).status_code == 201
    assert calls == [["x", "y"]]


def test_failed_after_event_rolls_back_the_write(runtime, api, make_object):
    from leadhub.platform.errors import ValidationFailed
    make_object("task", [{"api_name": "subject", "label": "S", "type": "text"}])

    def refuse(ev):
        raise ValidationFailed({"subject": "Refused by a plugin."})
    runtime.events.subscribe("after_insert", refuse, object="task")
    r = api.post("/objects/task/records", {"subject": "x"})
    assert r.status_code == 422 and r.get_json()["error"]["fields"] == {"subject": "Refused by a plugin."}
    assert api.get("/objects/task/records?count=true").get_json()["total"] == 0


def test_bulk_create_and_update(api, crm):
    r = api.post("/objects/deal/records/bulk", {"records": [{"title": f"d{i}", "quantity": i} for i in range(5)]})
    assert r.status_code == 201
    ids = [x["id"] for x in r.get_json()["records"]]
    nos = [x["deal_no"] for x in r.get_json()["records"]]
    assert len(set(nos)) == 5
    r = api.post("/objects/deal/records/bulk", {"operation": "update",
                                                 "records": [{"id": i, "stage": "won"} for i in ids]})
    assert r.status_code == 200 and {x["stage"] for x in r.get_json()["records"]} == {"won"}


def test_owner_can_be_set_to_an_active_user(api, runtime, crm):
    from leadhub.platform import auth
    uid = auth.create_user(runtime.db, "rep", "Rep")
    d = deal(api, owner=uid)
    got = api.post("/objects/deal/query", {"fields": ["owner", "owner.name", "owner.login"],
                                           "filter": {"field": "id", "op": "eq", "value": d["id"]}}).get_json()
    assert got["records"] == [{"owner": uid, "owner.name": "Rep", "owner.login": "rep"}]


def test_rollup_min_max_and_filtered_sum(api, make_object):
    make_object("purchase", [{"api_name": "ref", "label": "R", "type": "text"}])
    make_object("line", [{"api_name": "purchase", "label": "O", "type": "master_detail", "reference_to": "purchase"},
                         {"api_name": "qty", "label": "Q", "type": "integer"},
                         {"api_name": "shipped", "label": "S", "type": "date"},
                         {"api_name": "kind", "label": "K", "type": "picklist", "options": ["goods", "fee"]}])
    for name, spec in {"first_ship": {"function": "min", "aggregate_field": "shipped"},
                       "last_ship": {"function": "max", "aggregate_field": "shipped"},
                       "goods_qty": {"function": "sum", "aggregate_field": "qty",
                                     "filter": {"field": "kind", "op": "eq", "value": "goods"}}}.items():
        r = api.post("/meta/objects/purchase/fields", {"api_name": name, "label": name, "type": "rollup",
                                                     "child_object": "line", "child_field": "purchase", **spec})
        assert r.status_code == 201, r.get_json()
    o = api.post("/objects/purchase/records", {"ref": "PO-1"}).get_json()
    assert (o["goods_qty"], o["first_ship"]) == (0, None)
    lines = [{"purchase": o["id"], "qty": 2, "shipped": "2026-03-02", "kind": "goods"},
             {"purchase": o["id"], "qty": 5, "shipped": "2026-01-09", "kind": "fee"},
             {"purchase": o["id"], "qty": 3, "shipped": None, "kind": "goods"}]
    ids = [r["id"] for r in api.post("/objects/line/records/bulk", {"records": lines}).get_json()["records"]]
    got = api.get(f"/objects/purchase/records/{o['id']}").get_json()
    assert (got["first_ship"], got["last_ship"], got["goods_qty"]) == ("2026-01-09", "2026-03-02", "5")
    api.delete(f"/objects/line/records/{ids[0]}")
    got = api.get(f"/objects/purchase/records/{o['id']}").get_json()
    assert (got["first_ship"], got["last_ship"], got["goods_qty"]) == ("2026-01-09", "2026-01-09", "3")
    api.post(f"/objects/line/records/{ids[0]}/restore")
    assert api.get(f"/objects/purchase/records/{o['id']}").get_json()["goods_qty"] == "5"


def test_formula_over_a_rollup_follows_children(api, make_object):
    make_object("purchase", [{"api_name": "ref", "label": "R", "type": "text"}])
    make_object("line", [{"api_name": "purchase", "label": "O", "type": "lookup", "reference_to": "purchase"}])
    api.post("/meta/objects/purchase/fields", {"api_name": "lines", "label": "L", "type": "rollup",
                                            "child_object": "line", "child_field": "purchase", "function": "count"})
    api.post("/meta/objects/purchase/fields", {"api_name": "size", "label": "S", "type": "formula",
                                            "expression": "'big' if lines >= 2 else 'small'"})
    o = api.post("/objects/purchase/records", {"ref": "x"}).get_json()
    assert o["size"] == "small"
    api.post("/objects/line/records/bulk", {"records": [{"purchase": o["id"]}, {"purchase": o["id"]}]})
    assert api.get(f"/objects/purchase/records/{o['id']}").get_json()["size"] == "big"
