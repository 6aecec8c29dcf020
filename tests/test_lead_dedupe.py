"""Duplicate rules (查重): single and combined conditions, fuzzy company
names, time windows, each action, concurrent submissions, the check
endpoint under scope, scans, and bad rule payloads."""
import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from leadhub.data.query import QuerySpec
from leadhub.platform import auth
from leadhub.platform.permissions import Actor
from leadhub.plugins.lead import normalise as nz
from tests.conftest import Api, count_rows

PW = "s3cret-pass"
FENYANG = "北京纷扬科技有限公司"

pytestmark = pytest.mark.plugins("lead")   # each test starts with the plugin installed


@pytest.fixture
def lead(runtime):
    return runtime


@pytest.fixture
def reps(lead, api, app, runtime):
    out = {}
    for login in ("rep_a", "rep_b"):
        r = api.post("/users", {"login": login, "name": login, "password": PW, "roles": ["sales_rep"]})
        assert r.status_code == 201, r.get_json()
        out[login] = (r.get_json()["id"], Api(app.test_client(), auth.create_token(runtime.db, login)))
    return out


def rule(api, name, conditions, **extra):
    r = api.post("/meta/duplicate-rules", {"name": name, "conditions": conditions, **extra})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def create(client, **values):
    r = client.post("/objects/lead/records", {"name": "张伟", **values})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


MOBILE = [{"field": "mobile", "normaliser": "e164"}]
COMPANY_CITY = [{"field": "company", "normaliser": "company_name", "threshold": 85},
                {"field": "city", "normaliser": "exact"}]


@pytest.mark.plugins("base")
def test_company_normaliser():
    assert nz.company_key("北京纷扬科技有限公司") == nz.company_key("纷扬科技（中国）有限公司") == "纷扬科技"
    assert nz.company_key("ＦＥＮＹＡＮＧ Tech Co., Ltd.") == "fenyangtech"
    assert nz.company_key("广东省深圳市纷扬信息技术股份有限公司") == "纷扬信息技术"
    assert {nz.company_core(n) for n in (FENYANG, "纷扬科技", "北京纷扬")} == {"纷扬"}
    assert nz.company_core("北京") == "北京" and nz.company_key("科技有限公司") == "科技"
    assert nz.similarity("纷扬", "纷扬") == 100 and nz.similarity("纷扬", "纷扬星空") < 85
    assert nz.similarity("纷扬天下", "纷杨天下") == 75


def test_single_rule_marks_duplicates_across_phone_formats(lead, api):
    rule(api, "mobile", MOBILE)
    first = create(api, mobile="13800138000")
    assert first["is_duplicate"] is False and first["duplicate_of"] is None
    second = create(api, name="李雷", mobile="+86 138 0013 8000")
    assert (second["is_duplicate"], second["duplicate_of"], second["duplicate_rule"]) == (True, first["id"], "mobile")
    stored = api.get(f"/objects/lead/records/{second['id']}").get_json()
    assert stored["is_duplicate"] is True and stored["duplicate_of"] == first["id"]
    r = api.get('/objects/lead/records?filter={"field":"is_duplicate","op":"eq","value":true}')
    assert [x["id"] for x in r.get_json()["records"]] == [second["id"]]
    assert create(api, mobile="13900139000")["is_duplicate"] is False
    assert create(api, email="x@fenyang.cn")["is_duplicate"] is False   # an empty condition never matches


def test_email_and_wechat_rules(lead, api):
    rule(api, "email", [{"field": "email", "normaliser": "lower"}])
    rule(api, "wechat", [{"field": "wechat", "normaliser": "exact"}])
    a = create(api, email="Wang@Fenyang.cn")
    assert create(api, email="wang@FENYANG.CN")["duplicate_of"] == a["id"]
    w = create(api, wechat="wx_wang01")
    got = create(api, wechat="wx_wang01")
    assert got["duplicate_of"] == w["id"] and got["duplicate_rule"] == "wechat"


def test_combined_rule_needs_every_condition(lead, api):
    rule(api, "company_city", [{"field": "company", "normaliser": "company_name"},
                               {"field": "city", "normaliser": "exact"}])
    first = create(api, company=FENYANG, province="beijing", city="beijing")
    assert create(api, company="纷扬科技", province="guangdong", city="shenzhen")["is_duplicate"] is False
    assert create(api, company="纷扬科技（中国）有限公司", province="beijing", city="beijing")["duplicate_of"] == first["id"]
    assert create(api, company="纷扬科技")["is_duplicate"] is False       # no city: the rule cannot match


def test_fuzzy_company_names_meet(lead, api):
    rule(api, "fuzzy_company", [{"field": "company", "normaliser": "company_name", "threshold": 85}])
    first = create(api, company=FENYANG)
    for name in ("纷扬科技", "北京纷扬", "纷扬信息技术（深圳）有限公司"):
        got = create(api, company=name)
        assert got["duplicate_of"] == first["id"], name
    for name in ("纷扬星空文化传媒有限公司", "华为技术有限公司", "北京字节跳动科技有限公司"):
        assert create(api, company=name)["is_duplicate"] is False, name
    r = api.post("/objects/lead/duplicates/check", {"company": "北京纷扬"}).get_json()
    assert r["duplicate"] and r["matches"][0]["id"] == first["id"] and r["matches"][0]["score"] == 100


def test_fuzzy_and_city_together(lead, api):
    rule(api, "tob", COMPANY_CITY, action="tag_only")
    first = create(api, company=FENYANG, province="beijing", city="beijing")
    same = create(api, company="北京纷扬", province="beijing", city="beijing")
    assert same["duplicate_of"] == first["id"] and same["is_duplicate"] is False   # tag_only
    assert create(api, company="北京纷扬", province="shanghai", city="shanghai")["duplicate_of"] is None


def test_time_window(lead, api, runtime):
    rule(api, "mobile", MOBILE, window_months=6)
    old = create(api, mobile="13800138000")
    recent = create(api, mobile="13900139000")
    with runtime.db.write() as conn:   # test setup only: age one lead by 7 months
        table = runtime.cache.current().table("lead")
        conn.execute(sa.update(table).where(table.c.id == old["id"])
                     .values(created_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=213)))
    assert create(api, mobile="13800138000")["is_duplicate"] is False
    assert create(api, mobile="13900139000")["duplicate_of"] == recent["id"]
    api.patch("/meta/duplicate-rules/mobile", {"window_months": 12})
    assert create(api, mobile="13800138000")["duplicate_of"] == old["id"]


def test_collect_updates_the_original(lead, api):
    rule(api, "mobile", MOBILE, action="collect")
    first = create(api, mobile="13800138000", company="纷扬科技", title="经理")
    second = create(api, name="张伟 (展会)", mobile="13800138000", email="zhang@fenyang.cn", title="总监",
                    source="exhibition")
    assert second["duplicate_of"] == first["id"] and second["is_duplicate"] is True
    original = api.get(f"/objects/lead/records/{first['id']}").get_json()
    assert (original["email"], original["title"], original["source"]) == ("zhang@fenyang.cn", "总监", "exhibition")
    assert original["name"] == "张伟" and original["company"] == "纷扬科技"   # name kept, empty values never overwrite
    assert original["is_duplicate"] is False


def test_route_to_the_owner_and_notify(lead, api, reps, runtime):
    rule(api, "mobile", MOBILE, action="route")
    (a_id, rep_a), (b_id, rep_b) = reps["rep_a"], reps["rep_b"]
    mine = create(rep_a, mobile="13800138000")
    routed = create(rep_b, name="王芳", mobile="138 0013 8000")
    assert routed["owner"] == a_id and routed["duplicate_of"] == mine["id"] and routed["is_duplicate"]
    assert rep_a.get(f"/objects/lead/records/{routed['id']}").status_code == 200
    assert rep_b.get(f"/objects/lead/records/{routed['id']}").status_code == 404
    notes = rep_a.get("/notifications").get_json()["notifications"]
    assert [n["kind"] for n in notes] == ["lead.duplicate_routed"]
    assert notes[0]["link"] == f"/o/lead/{routed['id']}" and notes[0]["data"]["original"] == mine["id"]
    assert rep_b.get("/notifications").get_json()["notifications"] == []


def test_route_without_an_owner_leaves_it_for_assignment(lead, api, reps, runtime):
    rule(api, "mobile", MOBILE, action="route")
    unowned = runtime.records.create(Actor.system(), "lead", {"name": "表单客户", "mobile": "13800138000"})
    assert unowned["owner"] is None
    b_id, rep_b = reps["rep_b"]
    got = create(rep_b, mobile="13800138000")
    assert got["duplicate_of"] == unowned["id"] and got["owner"] == b_id
    from_form = runtime.records.create(Actor.system(), "lead", {"name": "表单二", "mobile": "13800138000"})
    assert from_form["owner"] is None and from_form["duplicate_of"] == unowned["id"]


def test_first_active_rule_decides(lead, api):
    rule(api, "off", MOBILE, active=False)
    rule(api, "email", [{"field": "email", "normaliser": "lower"}], action="tag_only")
    rule(api, "mobile", MOBILE)
    first = create(api, mobile="13800138000", email="a@fenyang.cn")
    got = create(api, mobile="13800138000", email="a@fenyang.cn")
    assert got["duplicate_rule"] == "email" and got["is_duplicate"] is False
    assert create(api, mobile="13800138000")["duplicate_rule"] == "mobile"
    assert first["duplicate_rule"] is None


def test_duplicates_inside_one_bulk_write(lead, api):
    rule(api, "mobile", MOBILE)
    r = api.post("/objects/lead/records/bulk", {"records": [
        {"name": "一", "mobile": "13800138000"}, {"name": "二", "mobile": "13800138000"},
        {"name": "三", "mobile": "13900139000"}, {"name": "四", "mobile": "+8613800138000"}]})
    assert r.status_code == 201
    rows = r.get_json()["records"]
    assert [x["duplicate_of"] for x in rows] == [None, rows[0]["id"], None, rows[0]["id"]]


BEIJING = {"province": "beijing", "city": "beijing"}


def test_each_action_inside_one_bulk_write(lead, api, reps, runtime, admin):
    """A bulk write is checked in one pass before its insert: an earlier row of
    the same write is the original; collect fills it before it is stored, route
    hands the later row to its owner, who is told with the new row's link."""
    rule(api, "company", COMPANY_CITY, action="collect")
    rule(api, "mobile", MOBILE, action="route")
    (a_id, rep_a), (b_id, _rep_b) = reps["rep_a"], reps["rep_b"]
    rows = runtime.records.bulk_create(admin, "lead", [
        {"name": "甲", "company": FENYANG, **BEIJING, "owner": a_id, "mobile": "13800138000"},
        {"name": "乙", "company": "纷扬科技", **BEIJING, "title": "总监", "owner": b_id},
        {"name": "丙", "mobile": "+86 138 0013 8000", "owner": b_id},
        {"name": "丁", "company": "纷扬星空", **BEIJING, "owner": b_id}])
    first, collected, routed, other = rows
    assert collected["duplicate_of"] == first["id"] and collected["duplicate_rule"] == "company"
    stored = runtime.records.get(admin, "lead", first["id"])
    assert stored["title"] == "总监" and stored["name"] == "甲" and stored["is_duplicate"] is False
    assert routed["duplicate_of"] == first["id"] and routed["owner"] == a_id
    assert other["duplicate_of"] is None and other["is_duplicate"] is False
    notes = rep_a.get("/notifications").get_json()["notifications"]
    assert [(n["kind"], n["link"]) for n in notes] == [("lead.duplicate_routed", f"/o/lead/{routed['id']}")]
    # the links were written to the stored rows too, not only answered
    assert runtime.records.get(admin, "lead", routed["id"])["duplicate_of"] == first["id"]


def test_two_fuzzy_rules_share_one_read_of_the_buckets(lead, api, runtime, admin):
    """Fuzzy company AND city, then fuzzy company alone: each rule sees the
    buckets through its own conditions, though they are read once."""
    rule(api, "fuzzy_city", COMPANY_CITY)
    rule(api, "fuzzy", [{"field": "company", "normaliser": "company_name", "threshold": 85}], action="tag_only")
    original = create(api, company=FENYANG, **BEIJING)
    got = runtime.records.bulk_create(admin, "lead", [
        {"name": "甲", "company": "纷扬科技", **BEIJING},
        {"name": "乙", "company": "纷扬科技", "province": "shanghai", "city": "shanghai"},
        {"name": "丙", "company": "纷扬星空", **BEIJING}])
    assert [(g["duplicate_rule"], g["duplicate_of"]) for g in got] == [
        ("fuzzy_city", original["id"]), ("fuzzy", original["id"]), (None, None)]
    assert [g["is_duplicate"] for g in got] == [True, False, False]


def test_a_hot_key_cannot_hide_other_keys_of_the_same_write(lead, api, runtime, admin, monkeypatch):
    """Candidates are capped per key, not per write: 30 stored leads on one
    number do not crowd out the single lead on another."""
    from leadhub.plugins.lead import dedupe
    monkeypatch.setattr(dedupe, "CANDIDATES", 5)
    runtime.records.bulk_create(admin, "lead", [{"name": f"热{i}", "mobile": "13800138000"} for i in range(30)])
    lone = create(api, mobile="13900139000")
    rule(api, "mobile", MOBILE)
    got = runtime.records.bulk_create(admin, "lead", [{"name": "新一", "mobile": "13800138000"},
                                                      {"name": "新二", "mobile": "13900139000"}])
    assert got[1]["duplicate_of"] == lone["id"]
    assert got[0]["duplicate_of"] is not None


def test_quarantined_leads_are_nobodys_original_and_release_checks(lead, api):
    rule(api, "mobile", MOBILE)
    junk = create(api, name="test", mobile="13800138000")
    assert junk["status"] == "invalid" and junk["is_duplicate"] is False
    clean = create(api, mobile="13800138000")
    assert clean["is_duplicate"] is False
    api.patch(f"/objects/lead/records/{junk['id']}", {"name": "刘洋"})
    released = api.post(f"/objects/lead/records/{junk['id']}/release").get_json()
    assert released["status"] == "new" and released["duplicate_of"] == clean["id"]


def test_concurrent_duplicates_make_one_original(lead, api, runtime, admin):
    rule(api, "mobile", MOBILE)
    # lead_no's counter row would serialise the inserts by itself; without it
    # only the duplicate check's own lock keeps two originals apart
    runtime.metadata.delete_field(admin, "lead", "lead_no")
    n = 8
    barrier = threading.Barrier(n)
    errors = []

    def submit(i):
        try:
            barrier.wait()
            runtime.records.create(admin, "lead", {"name": f"并发{i}", "mobile": "13800138000"})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=submit, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    rows = runtime.records.query(admin, "lead", QuerySpec(fields=["id", "is_duplicate", "duplicate_of"],
                                                          page_size=50))["records"]
    originals = [x for x in rows if not x["is_duplicate"]]
    assert len(rows) == n and len(originals) == 1
    assert all(x["duplicate_of"] == originals[0]["id"] for x in rows if x["is_duplicate"])


def test_concurrent_bulk_writes_sharing_keys_neither_deadlock_nor_double(lead, api, runtime, admin):
    rule(api, "mobile", MOBILE)
    runtime.metadata.delete_field(admin, "lead", "lead_no")
    mobiles = [f"1380013{i:04d}" for i in range(6)]
    errors = []

    def submit(order, barrier):
        try:
            barrier.wait()
            runtime.records.bulk_create(admin, "lead", [{"name": "批量", "mobile": m} for m in order])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
    for _ in range(3):   # opposite key orders: locks taken per row in row order could deadlock
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=submit, args=(order, barrier)) for order in (mobiles, mobiles[::-1])]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert not errors, errors
    rows = runtime.records.query(admin, "lead", QuerySpec(fields=["mobile", "is_duplicate"], page_size=100))["records"]
    assert len(rows) == 36
    originals = sorted(x["mobile"] for x in rows if not x["is_duplicate"])
    assert originals == sorted("+86" + m for m in mobiles)


def test_check_endpoint_reveals_only_readable_matches(lead, api, reps, runtime):
    rule(api, "mobile", MOBILE)
    (a_id, rep_a), (b_id, rep_b) = reps["rep_a"], reps["rep_b"]
    mine = create(rep_a, mobile="13800138000")
    draft = {"name": "新客户", "mobile": "138-0013-8000"}
    got = rep_a.post("/objects/lead/duplicates/check", draft).get_json()
    assert got["duplicate"] and [m["id"] for m in got["matches"]] == [mine["id"]]
    assert got["matches"][0]["rule"] == "mobile" and got["matches"][0]["record"]["mobile"] == "+8613800138000"
    assert rep_b.post("/objects/lead/duplicates/check", draft).get_json() == {"duplicate": False, "matches": []}
    assert api.post("/objects/lead/duplicates/check", {"record": draft, "rule": "mobile"}).get_json()["duplicate"]
    # editing the record itself: it is not its own duplicate
    assert not rep_a.post("/objects/lead/duplicates/check", {**draft, "id": mine["id"]}).get_json()["duplicate"]
    assert count_rows(runtime, "o_lead") == 1   # a check writes nothing
    for body, field in [({"mobile": "abc"}, "mobile"), ({"colour": "red"}, "colour"), ({"score": 5}, "score"),
                        ({"id": "x"}, "id"), ({"record": {}, "extra": 1}, "extra"), ({"record": {}, "rule": 5}, "rule")]:
        r = api.post("/objects/lead/duplicates/check", body)
        assert r.status_code == 400 and field in r.get_json()["error"]["fields"], (body, r.get_json())
    assert api.post("/objects/lead/duplicates/check", {"record": {}, "rule": "nope"}).status_code == 404
    assert api.post("/objects/nothing/duplicates/check", {}).status_code == 404


def test_scan_reports_duplicate_groups(lead, api, reps, runtime):
    rule(api, "fuzzy_company", [{"field": "company", "normaliser": "company_name", "threshold": 85}], active=False)
    ids = [create(api, company=n)["id"] for n in (FENYANG, "纷扬科技", "北京纷扬", "华为技术有限公司",
                                                  "深圳市华为技术有限公司", "纷扬星空文化传媒", "字节跳动")]
    assert reps["rep_a"][1].post("/meta/duplicate-rules/fuzzy_company/scan").status_code == 403
    assert api.get("/meta/duplicate-rules/fuzzy_company/scan").status_code == 404
    r = api.post("/meta/duplicate-rules/fuzzy_company/scan")
    assert r.status_code == 202
    scan = api.get("/meta/duplicate-rules/fuzzy_company/scan").get_json()
    assert scan["status"] == "done" and scan["scanned"] == 7
    groups = sorted(sorted(x["id"] for x in g["records"]) for g in scan["groups"])
    assert groups == [ids[:3], ids[3:5]]
    assert api.get(f"/meta/duplicate-rules/fuzzy_company/scans/{scan['id']}").get_json()["groups"] == scan["groups"]
    assert api.post("/meta/duplicate-rules/nope/scan").status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"name": "x1"}, "conditions"),
    ({"name": "x1", "conditions": []}, "conditions"),
    ({"conditions": MOBILE}, "name"),
    ({"name": "Bad Name", "conditions": MOBILE}, "name"),
    ({"name": "x1", "conditions": [{"field": "mobile", "normaliser": "soundex"}]}, "conditions.0.normaliser"),
    ({"name": "x1", "conditions": [{"field": "nope", "normaliser": "exact"}]}, "conditions.0.field"),
    ({"name": "x1", "conditions": [{"field": "title", "normaliser": "exact"}]}, "conditions.0.field"),
    ({"name": "x1", "conditions": [{"field": "title", "normaliser": "lower"},
                                   {"field": "city", "normaliser": "exact"}]}, "conditions.0.field"),
    ({"name": "x1", "conditions": [{"field": "name", "normaliser": "e164"}]}, "conditions.0.field"),
    ({"name": "x1", "conditions": [{"field": "name", "normaliser": "company_name"}]}, "conditions.0.field"),
    ({"name": "x1", "conditions": [{"field": "mobile", "normaliser": "e164", "threshold": 80}]},
     "conditions.0.threshold"),
    ({"name": "x1", "conditions": [{"field": "company", "normaliser": "company_name", "threshold": 20}]},
     "conditions.0.threshold"),
    ({"name": "x1", "conditions": [{"field": "mobile", "normaliser": "e164", "colour": 1}]}, "conditions.0.colour"),
    ({"name": "x1", "conditions": MOBILE + MOBILE}, "conditions.1.field"),
    ({"name": "x1", "conditions": MOBILE, "match_objects": ["lead", "customer"]}, "match_objects.1"),
    ({"name": "x1", "conditions": MOBILE, "match_objects": []}, "match_objects"),
    ({"name": "x1", "conditions": MOBILE, "object": "campaign"}, "object"),
    ({"name": "x1", "conditions": MOBILE, "object": "nothing"}, "object"),
    ({"name": "x1", "conditions": MOBILE, "window_months": 0}, "window_months"),
    ({"name": "x1", "conditions": MOBILE, "window_months": "6"}, "window_months"),
    ({"name": "x1", "conditions": MOBILE, "action": "merge"}, "action"),
    ({"name": "x1", "conditions": "mobile"}, "conditions"),
    ({"name": "x1", "conditions": MOBILE, "active": "maybe"}, "active"),
])
def test_bad_rule_payloads_are_400_naming_the_field(lead, api, body, field):
    r = api.post("/meta/duplicate-rules", body)
    assert r.status_code == 400 and field in r.get_json()["error"]["fields"], r.get_json()
    assert api.get("/meta/duplicate-rules").get_json()["items"] == []


def test_rule_crud_and_rights(lead, api, reps):
    rep = reps["rep_a"][1]
    assert rep.post("/meta/duplicate-rules", {"name": "m", "conditions": MOBILE}).status_code == 403
    made = rule(api, "mobile", MOBILE, label="手机号查重", window_months=6, action="route")
    assert made["match_objects"] == ["lead"] and made["active"] is True
    assert api.post("/meta/duplicate-rules", {"name": "mobile", "conditions": MOBILE}).status_code == 409
    assert rep.get("/meta/duplicate-rules/mobile").get_json()["label"] == "手机号查重"
    r = api.patch("/meta/duplicate-rules/mobile", {"active": False, "conditions": COMPANY_CITY})
    assert r.status_code == 200 and r.get_json()["active"] is False and len(r.get_json()["conditions"]) == 2
    assert api.patch("/meta/duplicate-rules/mobile", {"name": "other"}).status_code == 400
    assert api.patch("/meta/duplicate-rules/mobile", {"action": "x"}).status_code == 400
    assert rep.patch("/meta/duplicate-rules/mobile", {"active": True}).status_code == 403
    assert rep.delete("/meta/duplicate-rules/mobile").status_code == 403
    assert api.delete("/meta/duplicate-rules/mobile").status_code == 204
    assert api.get("/meta/duplicate-rules/mobile").status_code == 404
    assert api.patch("/meta/duplicate-rules/mobile", {"active": True}).status_code == 404


def test_company_keys_backfill_on_any_update(lead, api, runtime, admin):
    got = create(api, company=FENYANG)
    assert (got["company_key"], got["company_prefix"]) == ("纷扬科技", "纷扬")
    with runtime.db.write() as conn:   # test setup only: a lead written before the keys existed
        table = runtime.cache.current().table("lead")
        conn.execute(sa.update(table).where(table.c.id == got["id"]).values(company_key=None, company_prefix=None))
    runtime.records.bulk_update(admin, "lead", [{"id": got["id"]}])
    stored = api.get(f"/objects/lead/records/{got['id']}").get_json()
    assert (stored["company_key"], stored["company_prefix"]) == ("纷扬科技", "纷扬")
    changed = api.patch(f"/objects/lead/records/{got['id']}", {"company": "上海华为技术有限公司"}).get_json()
    assert (changed["company_key"], changed["company_prefix"]) == ("华为技术", "华为")
    assert api.patch(f"/objects/lead/records/{got['id']}", {"company_key": "x"}).status_code == 422


def test_fuzzy_buckets_have_their_covering_index(lead, runtime):
    """The plugin's declared index (bucket, key, then the columns a fuzzy
    lookup reads) exists once, however often the plugin is upgraded."""
    runtime.plugins.install("lead")
    with runtime.db.read() as conn:
        found = [i for i in sa.inspect(conn).get_indexes("o_lead") if i["name"] == "ix_o_lead_company_bucket"]
    assert len(found) == 1 and found[0]["column_names"][:2] == ["company_prefix", "company_key"]
    rule_ok = lead.records.create(Actor.system(), "lead", {"name": "甲", "company": FENYANG})
    assert rule_ok["company_prefix"] == "纷扬"


def test_a_duplicate_mark_shows_a_rep_only_the_original_he_may_read(lead, api, reps, runtime):
    """rep_b's new lead duplicates rep_a's: rep_b sees that it is a
    duplicate, not which lead it duplicates (he cannot read that one)."""
    rule(api, "mobile", MOBILE)
    (a_id, rep_a), (b_id, rep_b) = reps["rep_a"], reps["rep_b"]
    original = create(rep_a, mobile="13800138000")
    copy = create(rep_b, mobile="138 0013 8000")
    seen = rep_b.get(f"/objects/lead/records/{copy['id']}").get_json()
    assert seen["is_duplicate"] is True and seen["duplicate_of"] is None
    listed = rep_b.post("/objects/lead/query", {"fields": ["duplicate_of", "duplicate_of.name"]}).get_json()
    assert listed["records"] == [{"duplicate_of": None, "duplicate_of.name": None}]
    assert api.get(f"/objects/lead/records/{copy['id']}").get_json()["duplicate_of"] == original["id"]
