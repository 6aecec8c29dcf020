"""Follow-up deadlines: T and the deadline on owner and status changes, a
follow-up clearing it, the sweep's one reminder and one violation (with
evidence, to owner and manager), rules as admin metadata, and timeliness
statistics seen through each caller's scope. Time is the service's clock
and the sweep's `now`; nothing sleeps."""
from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
import sqlalchemy as sa

from leadhub.platform import auth
from leadhub.platform.notifications import notifications
from leadhub.platform.errors import ValidationFailed
from leadhub.platform.permissions import Actor
from leadhub.plugins.lead.followup import service, sweep
from tests.conftest import Api, prepared

PW = "s3cret-pass"
T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.timezone.utc)
H = dt.timedelta(hours=1)

pytestmark = pytest.mark.plugins("lead")   # each test starts with the plugin installed


def iso(value: dt.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(runtime):
    c = Clock()
    service(runtime).clock = c
    return c


@prepared(base="lead")
def follow_up_org(api, runtime):
    """South: manager mgr with reps rep_a and rep_b; East: rep_c under boss;
    follow-up rules for new (24 h, reminder 4 h before) and following (72 h)."""
    def post(path, body):
        r = api.post(path, body)
        assert r.status_code == 201, r.get_json()
        return r.get_json()
    south = post("/departments", {"name": "South"})
    east = post("/departments", {"name": "East"})
    users = {}
    for login, dept, manager, role in [("boss", east, None, "sales_manager"), ("mgr", south, None, "sales_manager"),
                                       ("rep_a", south, "mgr", "sales_rep"), ("rep_b", south, "mgr", "sales_rep"),
                                       ("rep_c", east, "boss", "sales_rep")]:
        users[login] = post("/users", {"login": login, "name": login, "password": PW, "roles": [role],
                                       "email": f"{login}@example.com", "department": dept["id"],
                                       "manager": users[manager] if manager else None,
                                       # the manager reads English in Berlin; reps Chinese in Shanghai
                                       **({"language": "en", "timezone": "Europe/Berlin"} if login == "mgr" else {})
                                       })["id"]
    post("/meta/follow-up-rules", {"status": "new", "hours": 24, "remind_before_hours": 4})
    post("/meta/follow-up-rules", {"status": "following", "hours": 72})
    return {"users": users, "tokens": {login: auth.create_token(runtime.db, login) for login in users}}


@pytest.fixture
def org(follow_up_org, clock, api, app):
    clients = {login: Api(app.test_client(), token) for login, token in follow_up_org["tokens"].items()}
    return {"users": follow_up_org["users"], "as": clients, "admin": api}


def new_lead(client, **values):
    r = client.post("/objects/lead/records", {"name": "张三", "company": "北京纷扬科技有限公司", **values})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def lead(api, lead_id):
    r = api.get(f"/objects/lead/records/{lead_id}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def follow_up(client, lead_id, **values):
    return client.post("/objects/follow_up/records", {"lead": lead_id, "method": "call", "content": "打过电话",
                                                      **values})


def inbox(runtime, user_id):
    with runtime.db.read() as conn:
        return conn.execute(sa.select(notifications.c.kind, notifications.c.title, notifications.c.data)
                            .where(notifications.c.user_id == user_id).order_by(notifications.c.id)).all()


def test_insert_sets_t_and_the_deadline_and_an_owner_change_restarts_it(org, clock):
    rep_a, admin = org["as"]["rep_a"], org["admin"]
    rec = new_lead(rep_a)
    assert rec["owner"] == org["users"]["rep_a"]
    assert rec["owner_changed_at"] == iso(T0)
    assert rec["follow_up_deadline"] == iso(T0 + 24 * H) == rec["follow_up_due_at"]

    clock.now = T0 + 5 * H       # an edit that keeps the owner keeps T
    assert admin.patch(f"/objects/lead/records/{rec['id']}", {"title": "CTO"}).status_code == 200
    assert lead(admin, rec["id"])["owner_changed_at"] == iso(T0)

    clock.now = T0 + 10 * H      # handed to rep_b: a new T and a new deadline
    r = admin.patch(f"/objects/lead/records/{rec['id']}", {"owner": org["users"]["rep_b"]})
    assert r.status_code == 200, r.get_json()
    after = lead(admin, rec["id"])
    assert after["owner_changed_at"] == iso(T0 + 10 * H)
    assert after["follow_up_deadline"] == iso(T0 + 34 * H)


def test_reps_cannot_set_the_deadline_fields_themselves(org):
    rep_a = org["as"]["rep_a"]
    rec = new_lead(rep_a)
    for field in ("owner_changed_at", "follow_up_deadline", "last_follow_up_at", "first_follow_up_at"):
        r = rep_a.patch(f"/objects/lead/records/{rec['id']}", {field: iso(T0 + 100 * H)})
        assert r.status_code == 422 and field in r.get_json()["error"]["fields"], (field, r.get_json())
    assert lead(org["admin"], rec["id"])["follow_up_deadline"] == iso(T0 + 24 * H)


def test_status_change_re_evaluates_the_deadline(org, clock):
    admin = org["admin"]
    rec = new_lead(org["as"]["rep_a"])
    clock.now = T0 + 2 * H
    admin.patch(f"/objects/lead/records/{rec['id']}", {"status": "following"})
    assert lead(admin, rec["id"])["follow_up_deadline"] == iso(T0 + 72 * H)   # same T, the other rule's N
    admin.patch(f"/objects/lead/records/{rec['id']}", {"status": "invalid"})   # no rule: no deadline
    assert lead(admin, rec["id"])["follow_up_deadline"] is None


def test_a_follow_up_clears_the_deadline_and_moves_the_leads_dates(org, clock):
    rep_a, admin = org["as"]["rep_a"], org["admin"]
    rec = new_lead(rep_a)
    clock.now = T0 + 3 * H
    r = follow_up(rep_a, rec["id"], method="wechat", result="有意向", next_step="发报价",
                  next_follow_up_at=iso(T0 + 48 * H))
    assert r.status_code == 201, r.get_json()
    after = lead(admin, rec["id"])
    assert after["follow_up_deadline"] is None
    assert after["follow_up_due_at"] == iso(T0 + 24 * H)          # kept for the statistics
    assert after["last_follow_up_at"] == after["first_follow_up_at"] == iso(T0 + 3 * H)
    assert after["next_follow_up_at"] == iso(T0 + 48 * H)

    clock.now = T0 + 5 * H        # a second follow-up moves "last", not "first"
    assert follow_up(rep_a, rec["id"]).status_code == 201
    after = lead(admin, rec["id"])
    assert (after["first_follow_up_at"], after["last_follow_up_at"]) == (iso(T0 + 3 * H), iso(T0 + 5 * H))

    listed = rep_a.post("/objects/follow_up/query", {"filter": {"field": "lead", "op": "eq", "value": rec["id"]},
                                                     "sort": ["created_at"]}).get_json()["records"]
    assert [f["method"] for f in listed] == ["wechat", "call"]

    from leadhub.web.pages import timeline     # the lead page's timeline shows them, newest first
    runtime = admin.client.application.extensions["leadhub"]
    actor = auth.actor_for(runtime.db, runtime.cache, org["users"]["rep_a"])
    items = [i for i in timeline.items(runtime, actor, "lead", rec["id"]) if i["kind"] == "follow_up"]
    assert [i["title"] for i in items] == ["call: 打过电话", "wechat: 打过电话"]
    assert items[1]["body"] == "有意向 / 发报价" and items[1]["url"].startswith("/o/follow_up/")
    other = auth.actor_for(runtime.db, runtime.cache, org["users"]["rep_c"])
    assert [i for i in timeline.items(runtime, other, "lead", rec["id"]) if i["kind"] == "follow_up"] == []


def test_the_lead_page_shows_the_deadline_and_logs_a_follow_up_in_place(org, clock, app):
    from tests.test_pages import PW as PAGES_PW, Browser
    rep_a, admin = org["as"]["rep_a"], org["admin"]
    rec = new_lead(rep_a, mobile="13800138000", email="zs@fenyang.cn")
    for login in ("rep_a", "rep_c"):           # (a reset revokes their tokens: the pages use sessions)
        assert admin.patch(f"/users/{org['users'][login]}", {"password": PAGES_PW}).status_code == 200
    page = Browser(app, "rep_a")
    clock.now = T0 + 1 * H
    html = page.get(f"/o/lead/{rec['id']}").text
    assert 'data-panel="follow_up"' in html and "请在 2026-03-03 09:00 前跟进。" in html   # Shanghai time
    assert html.index('data-panel="follow_up"') < html.index('id="section-')
    assert 'href="tel:+8613800138000"' in html and 'href="mailto:zs@fenyang.cn"' in html     # a tap calls or writes
    listed = page.get("/o/lead?columns=name,mobile,email").text
    assert 'href="tel:+8613800138000"' in listed and 'href="mailto:zs@fenyang.cn"' in listed   # in the list too
    clock.now = T0 + 30 * H
    assert "已超时：应在 2026-03-03 09:00 前跟进。" in page.get(f"/o/lead/{rec['id']}").text

    composer = {"lead": rec["id"], "method": "wechat", "content": "", "back": f"/o/lead/{rec['id']}"}
    r = page.post("/o/follow_up/new", composer)                  # nothing said: refused, nothing saved
    assert r.status_code == 422 and f'name="back" value="/o/lead/{rec["id"]}"' in r.text
    assert lead(admin, rec["id"])["last_follow_up_at"] is None
    r = page.post("/o/follow_up/new", {**composer, "content": "加了微信，约周五拜访"})
    assert r.status_code == 302 and r.headers["Location"] == f"/o/lead/{rec['id']}"
    after = lead(admin, rec["id"])
    assert after["follow_up_deadline"] is None and after["last_follow_up_at"] == iso(T0 + 30 * H)
    html = page.get(f"/o/lead/{rec['id']}").text
    assert "已跟进，目前没有截止时间。" in html and "最近跟进：2026-03-03 15:00" in html and "加了微信" in html

    # the composer cannot log a follow-up on a lead its user may not see
    outsider = Browser(app, "rep_c")
    assert outsider.get(f"/o/lead/{rec['id']}").status_code == 404
    r = outsider.post("/o/follow_up/new", {**composer, "content": "不该记上"})
    assert r.status_code == 422
    assert len(admin.post("/objects/follow_up/query", {"filter": {"field": "lead", "op": "eq",
                                                                  "value": rec["id"]}}).get_json()["records"]) == 1


def test_follow_ups_before_the_owner_changed_do_not_count(org, clock):
    rep_a, admin = org["as"]["rep_a"], org["admin"]
    rec = new_lead(rep_a)
    clock.now = T0 + H
    follow_up(rep_a, rec["id"])
    clock.now = T0 + 2 * H
    admin.patch(f"/objects/lead/records/{rec['id']}", {"owner": org["users"]["rep_b"]})
    after = lead(admin, rec["id"])
    assert after["first_follow_up_at"] is None and after["last_follow_up_at"] == iso(T0 + H)
    assert after["follow_up_deadline"] == iso(T0 + 26 * H)


def test_bad_follow_ups_change_nothing(org):
    rep_a, rep_c, admin = org["as"]["rep_a"], org["as"]["rep_c"], org["admin"]
    rec = new_lead(rep_a)
    r = follow_up(rep_a, rec["id"], method="fax")
    assert r.status_code == 422 and "method" in r.get_json()["error"]["fields"]
    r = follow_up(rep_a, 999999)
    assert r.status_code == 422 and "lead" in r.get_json()["error"]["fields"]
    r = follow_up(rep_c, rec["id"])           # not rep_c's lead: as if it did not exist
    assert r.status_code == 422 and "lead" in r.get_json()["error"]["fields"]
    r = rep_a.post("/objects/follow_up/records", {"lead": rec["id"], "method": "call"})
    assert r.status_code == 422 and "content" in r.get_json()["error"]["fields"]
    assert lead(admin, rec["id"])["follow_up_deadline"] == iso(T0 + 24 * H)
    assert rep_a.post("/objects/follow_up/query", {}).get_json()["records"] == []


def test_sweep_writes_one_violation_with_evidence_and_notifies_owner_and_manager(org, runtime):
    users, admin = org["users"], org["admin"]
    rec = new_lead(org["as"]["rep_a"], mobile="13800138000")
    assert sweep(runtime, T0 + 23 * H)["violations"] == 0
    result = sweep(runtime, T0 + 25 * H)
    assert result["violations"] == 1

    violations = admin.post("/objects/violation/query", {}).get_json()["records"]
    assert len(violations) == 1
    v = violations[0]
    assert (v["lead"], v["owner"], v["manager"], v["status"]) == (rec["id"], users["rep_a"], users["mgr"], "open")
    assert (v["deadline"], v["detected_at"], v["owner_changed_at"]) == (iso(T0 + 24 * H), iso(T0 + 25 * H), iso(T0))
    assert v["rule"] == "new: T+24h"
    evidence = json.loads(v["evidence"])
    assert evidence["lead"]["name"] == "张三" and evidence["lead"]["company"] == "北京纷扬科技有限公司"
    assert evidence["owner"] == users["rep_a"] and evidence["manager"] == users["mgr"]
    assert evidence["deadline"] == "2026-03-03T01:00:00+00:00"
    after = lead(admin, rec["id"])
    assert after["follow_up_violation"] == v["id"]
    assert after["follow_up_deadline"] == iso(T0 + 24 * H)     # still overdue, still in the overdue view
    overdue = admin.post("/objects/lead/query", {"filter": {"field": "follow_up_deadline", "op": "lt",
                                                            "value": "$now"}}).get_json()["records"]
    assert [r["id"] for r in overdue] == [rec["id"]]

    for who in ("rep_a", "mgr"):
        kinds = [n.kind for n in inbox(runtime, users[who])]
        assert kinds.count("lead.follow_up_violation") == 1, who
    assert inbox(runtime, users["rep_b"]) == [] and inbox(runtime, users["boss"]) == []
    bell = org["as"]["mgr"].get("/notifications?unread=1").get_json()["notifications"][0]
    assert bell["link"] == f"/o/violation/{v['id']}"
    # each in their own language and time zone: T+24h is 01:00 UTC on 3 March
    assert bell["title"] == "Not followed up in time: 张三 / 北京纷扬科技有限公司"
    assert "2026-03-03 02:00 CET" in bell["body"]
    rep_note = org["as"]["rep_a"].get("/notifications").get_json()["notifications"][0]
    assert rep_note["title"] == "跟进超时：张三 / 北京纷扬科技有限公司" == v["title"]
    assert "2026-03-03 09:00 CST" in rep_note["body"]

    # idempotent: the same T never yields a second violation or notification
    assert sweep(runtime, T0 + 26 * H)["violations"] == 0
    assert sweep(runtime, T0 + 500 * H)["violations"] == 0
    assert len(admin.post("/objects/violation/query", {}).get_json()["records"]) == 1
    assert [n.kind for n in inbox(runtime, users["mgr"])].count("lead.follow_up_violation") == 1


def test_a_new_owner_can_earn_a_new_violation(org, runtime, clock):
    admin, users = org["admin"], org["users"]
    rec = new_lead(org["as"]["rep_a"])
    sweep(runtime, T0 + 25 * H)
    clock.now = T0 + 30 * H
    admin.patch(f"/objects/lead/records/{rec['id']}", {"owner": users["rep_c"]})
    after = lead(admin, rec["id"])
    assert after["follow_up_violation"] is None and after["follow_up_deadline"] == iso(T0 + 54 * H)
    assert sweep(runtime, T0 + 55 * H)["violations"] == 1
    owners = sorted(v["owner"] for v in admin.post("/objects/violation/query", {}).get_json()["records"])
    assert owners == sorted([users["rep_a"], users["rep_c"]])
    assert "lead.follow_up_violation" in [n.kind for n in inbox(runtime, users["boss"])]   # rep_c's manager


def test_followed_up_leads_are_never_violated(org, runtime, clock):
    rep_a = org["as"]["rep_a"]
    rec = new_lead(rep_a)
    clock.now = T0 + 23 * H
    follow_up(rep_a, rec["id"])
    assert sweep(runtime, T0 + 100 * H) == {"reminders": 0, "violations": 0, "at": T0 + 100 * H}


def test_one_reminder_before_the_deadline(org, runtime):
    users = org["users"]
    new_lead(org["as"]["rep_a"])
    new_lead(org["as"]["rep_b"], status="following")   # its rule has no reminder
    assert sweep(runtime, T0 + 19 * H)["reminders"] == 0          # more than 4 h before
    assert sweep(runtime, T0 + 20 * H + dt.timedelta(minutes=30))["reminders"] == 1
    assert sweep(runtime, T0 + 22 * H)["reminders"] == 0          # once only
    reminders = [n for n in inbox(runtime, users["rep_a"]) if n.kind == "lead.follow_up_reminder"]
    assert len(reminders) == 1 and reminders[0].title == "请在 4 小时内跟进 张三 / 北京纷扬科技有限公司"
    assert inbox(runtime, users["mgr"]) == []                     # the manager hears only of violations
    assert inbox(runtime, users["rep_b"]) == []


def test_two_sweeps_at_once_write_one_violation(org, runtime):
    for _ in range(5):
        new_lead(org["as"]["rep_a"])
    results, errors = [], []

    def run():
        try:
            results.append(sweep(runtime, T0 + 25 * H)["violations"])
        except Exception as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)
    threads = [threading.Thread(target=run) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert sum(results) == 5
    assert len(org["admin"].post("/objects/violation/query", {}).get_json()["records"]) == 5


def test_violations_are_the_sweeps_and_can_only_be_acknowledged(org, runtime):
    rep_a, users = org["as"]["rep_a"], org["users"]
    rec = new_lead(rep_a)
    r = rep_a.post("/objects/violation/records", {"lead": rec["id"], "title": "fake", "status": "open"})
    assert r.status_code == 403
    sweep(runtime, T0 + 25 * H)
    vid = rep_a.post("/objects/violation/query", {}).get_json()["records"][0]["id"]
    r = rep_a.patch(f"/objects/violation/records/{vid}", {"evidence": "{}"})
    assert r.status_code == 422 and "evidence" in r.get_json()["error"]["fields"]
    r = rep_a.patch(f"/objects/violation/records/{vid}", {"status": "acknowledged"})
    assert r.status_code == 200 and r.get_json()["status"] == "acknowledged"
    assert org["as"]["rep_b"].post("/objects/violation/query", {}).get_json()["records"] == []
    assert [v["id"] for v in org["as"]["mgr"].post("/objects/violation/query", {}).get_json()["records"]] == [vid]
    del users


def test_changing_a_rule_moves_waiting_leads_deadlines(org):
    admin = org["admin"]
    rec = new_lead(org["as"]["rep_a"])
    done = new_lead(org["as"]["rep_a"])
    follow_up(org["as"]["rep_a"], done["id"])
    rule = next(r for r in admin.get("/meta/follow-up-rules").get_json()["items"] if r["status"] == "new")
    r = admin.patch(f"/meta/follow-up-rules/{rule['id']}", {"hours": 8})
    assert r.status_code == 200 and r.get_json()["hours"] == 8
    assert lead(admin, rec["id"])["follow_up_deadline"] == iso(T0 + 8 * H)
    assert lead(admin, done["id"])["follow_up_deadline"] is None
    admin.patch(f"/meta/follow-up-rules/{rule['id']}", {"active": False})
    assert lead(admin, rec["id"])["follow_up_deadline"] is None
    assert admin.delete(f"/meta/follow-up-rules/{rule['id']}").status_code == 204
    assert admin.get(f"/meta/follow-up-rules/{rule['id']}").status_code == 404


@pytest.mark.parametrize("body, field, status", [
    ({"hours": 24}, "status", 400),
    ({"status": "nonsense", "hours": 24}, "status", 400),
    ({"status": "returned"}, "hours", 400),
    ({"status": "returned", "hours": 0}, "hours", 400),
    ({"status": "returned", "hours": "24"}, "hours", 400),
    ({"status": "returned", "hours": 24.5}, "hours", 400),
    ({"status": "returned", "hours": 10 ** 9}, "hours", 400),
    ({"status": "returned", "hours": 24, "remind_before_hours": -1}, "remind_before_hours", 400),
    ({"status": "returned", "hours": 24, "remind_before_hours": 24}, "remind_before_hours", 400),
    ({"status": "returned", "hours": 24, "active": "maybe"}, "active", 400),
    ({"status": "returned", "hours": 24, "colour": "red"}, "colour", 400),
    ({"status": "new", "hours": 24}, "status", 409),
])
def test_rule_validation_names_the_field(org, body, field, status):
    admin = org["admin"]
    before = admin.get("/meta/follow-up-rules").get_json()["items"]
    r = admin.post("/meta/follow-up-rules", body)
    assert r.status_code == status and field in r.get_json()["error"]["fields"], r.get_json()
    assert admin.get("/meta/follow-up-rules").get_json()["items"] == before


def test_rule_endpoints_bad_input(org):
    admin = org["admin"]
    rid = admin.get("/meta/follow-up-rules").get_json()["items"][0]["id"]
    assert admin.post("/meta/follow-up-rules", data="[1", content_type="application/json").status_code == 400
    r = admin.patch(f"/meta/follow-up-rules/{rid}", {"remind_before_hours": 30})
    assert r.status_code == 400 and "remind_before_hours" in r.get_json()["error"]["fields"]
    r = admin.patch(f"/meta/follow-up-rules/{rid}", {"status": "following"})     # the key: a rule per status
    assert r.status_code == 400 and r.get_json()["error"]["fields"] == {"status": "Cannot change."}
    for path in (f"/meta/follow-up-rules/{rid + 1000}", "/meta/follow-up-rules/99999999999"):
        assert admin.get(path).status_code == 404
        assert admin.patch(path, {"hours": 3}).status_code == 404
        assert admin.delete(path).status_code == 404


def test_reps_read_rules_but_cannot_edit_them_or_run_the_sweep(org):
    rep = org["as"]["rep_a"]
    rules = rep.get("/meta/follow-up-rules")
    assert rules.status_code == 200 and len(rules.get_json()["items"]) == 2
    rid = rules.get_json()["items"][0]["id"]
    assert rep.post("/meta/follow-up-rules", {"status": "returned", "hours": 5}).status_code == 403
    assert rep.patch(f"/meta/follow-up-rules/{rid}", {"hours": 5000}).status_code == 403
    assert rep.delete(f"/meta/follow-up-rules/{rid}").status_code == 403
    assert rep.post("/follow-up/sweep").status_code == 403
    assert org["admin"].get(f"/meta/follow-up-rules/{rid}").get_json()["hours"] != 5000
    assert Api(org["admin"].client, "bogus").get("/meta/follow-up-rules").status_code == 401


def test_admin_runs_the_sweep_now(org, clock):
    new_lead(org["as"]["rep_a"])
    clock.now = T0 + 30 * H
    r = org["admin"].post("/follow-up/sweep")
    assert r.status_code == 200 and r.get_json()["violations"] == 1


def test_timeliness_per_rep_through_each_callers_scope(org, runtime, clock):
    users, a, b, c = org["users"], org["as"]["rep_a"], org["as"]["rep_b"], org["as"]["rep_c"]
    on_time, late, never = new_lead(a), new_lead(a), new_lead(a)
    b_lead = new_lead(b)
    c_lead = new_lead(c)
    clock.now = T0 + 2 * H
    follow_up(a, on_time["id"])
    follow_up(b, b_lead["id"])
    sweep(runtime, T0 + 25 * H)            # late, never and c_lead are violated
    clock.now = T0 + 30 * H
    follow_up(a, late["id"])
    del never, c_lead

    def stats(client, **q):
        r = client.get("/follow-up/stats", query_string={"from": "2026-03-01", "to": "2026-03-10", **q})
        assert r.status_code == 200, r.get_json()
        return {row["owner_name"]: row for row in r.get_json()["reps"]}

    mgr = stats(org["as"]["mgr"])
    assert set(mgr) == {"rep_a", "rep_b"}                     # his reps only
    ra = mgr["rep_a"]
    assert (ra["leads_due"], ra["in_time"], ra["late"], ra["pending"], ra["violations"]) == (3, 1, 2, 0, 2)
    assert ra["avg_hours_to_first_follow_up"] == 16.0         # (2 + 30) / 2
    assert (mgr["rep_b"]["in_time"], mgr["rep_b"]["violations"]) == (1, 0)

    assert set(stats(a)) == {"rep_a"}                          # a rep sees himself
    assert set(stats(c)) == {"rep_c"} and stats(c)["rep_c"]["violations"] == 1
    assert set(stats(org["admin"])) == {"rep_a", "rep_b", "rep_c"}
    assert stats(org["admin"], **{"from": "2026-04-01", "to": "2026-05-01"}) == {}


@pytest.mark.parametrize("query, field", [
    ({"from": "yesterday"}, "from"), ({"to": "2026-13-01"}, "to"),
    ({"from": "2026-03-10", "to": "2026-03-01"}, "to"),
])
def test_stats_bad_dates_are_400(org, query, field):
    r = org["admin"].get("/follow-up/stats", query_string=query)
    assert r.status_code == 400 and field in r.get_json()["error"]["fields"]


def test_demo_helper_makes_a_reminder_and_a_violation_due(clock, runtime, admin):
    from leadhub.plugins.lead.followup import seed_demo
    rep = auth.create_user(runtime.db, "demo_rep", "Demo rep")
    runtime.records.bulk_create(admin, "lead", [{"name": f"L{i}", "owner": rep} for i in range(4)])
    clock.now = T0 + 100 * H
    made = seed_demo(runtime, leads=4)
    assert len(made["reminder_soon"]) == len(made["overdue"]) == 2
    assert sweep(runtime, clock.now) == {"reminders": 2, "violations": 2, "at": clock.now}
    assert sweep(runtime, clock.now) == {"reminders": 0, "violations": 0, "at": clock.now}
    assert seed_demo(runtime, leads=0) == {"reminder_soon": [], "overdue": []}   # the rule is not doubled
    assert len(runtime.kinds.items("follow_up_rule")) == 1


def test_the_scheduler_runs_the_sweep(org, runtime, clock):
    assert runtime.scheduler.tasks["lead.follow_up_sweep"].seconds == 300
    new_lead(org["as"]["rep_a"])
    clock.now = T0 + 25 * H
    assert "lead.follow_up_sweep" in runtime.scheduler.tick(clock.now)   # inline without Redis
    assert len(org["admin"].post("/objects/violation/query", {}).get_json()["records"]) == 1
    assert "lead.follow_up_sweep" not in runtime.scheduler.tick(clock.now + dt.timedelta(minutes=1))
    status = {s["name"]: s for s in runtime.scheduler.status()}["lead.follow_up_sweep"]
    assert status["last_error"] is None


def test_a_follow_up_landing_while_the_sweep_runs_wins(org, runtime, clock):
    """The sweep saw the lead overdue; the rep's follow-up commits before the
    sweep writes: the locked re-read finds the deadline gone, nothing is written."""
    from leadhub.plugins.lead import followup, followup_rules
    rec = new_lead(org["as"]["rep_a"])
    seen = next(followup._leads(runtime, T0 + 25 * H))
    assert seen["id"] == rec["id"]
    clock.now = T0 + 25 * H
    follow_up(org["as"]["rep_a"], rec["id"])
    svc = service(runtime)
    assert followup._violate(svc, seen, followup_rules.active(runtime.cache.current())["new"], T0 + 25 * H) == 0
    assert org["admin"].post("/objects/violation/query", {}).get_json()["records"] == []
    assert inbox(runtime, org["users"]["mgr"]) == []


def test_a_dry_run_follow_up_leaves_the_lead_alone(org, runtime, clock):
    rec = new_lead(org["as"]["rep_a"])
    actor = auth.actor_for(runtime.db, runtime.cache, org["users"]["rep_a"])
    clock.now = T0 + H
    with runtime.db.write(rollback=True):
        runtime.records.create(actor, "follow_up", {"lead": rec["id"], "method": "sms", "content": "短信"})
        inside = runtime.records.get(Actor.system(), "lead", rec["id"])   # same transaction: moved
        assert inside["follow_up_deadline"] is None and inside["last_follow_up_at"] == T0 + H
    after = lead(org["admin"], rec["id"])
    assert after["follow_up_deadline"] == iso(T0 + 24 * H) and after["last_follow_up_at"] is None


def test_the_sweep_pages_through_many_due_leads(org, runtime, clock, monkeypatch):
    from leadhub.plugins.lead import followup
    monkeypatch.setattr(followup, "BATCH", 2)      # pages of 2: ties on the same alert time cross pages
    for _ in range(3):
        new_lead(org["as"]["rep_a"])
    clock.now = T0 + 2 * H
    for _ in range(2):
        new_lead(org["as"]["rep_b"])               # due 2 h later than rep_a's three
    assert sweep(runtime, T0 + 21 * H) == {"reminders": 3, "violations": 0, "at": T0 + 21 * H}
    assert sweep(runtime, T0 + 25 * H) == {"reminders": 2, "violations": 3, "at": T0 + 25 * H}
    assert sweep(runtime, T0 + 27 * H) == {"reminders": 0, "violations": 2, "at": T0 + 27 * H}
    assert sweep(runtime, T0 + 99 * H) == {"reminders": 0, "violations": 0, "at": T0 + 99 * H}


def test_a_hand_over_moves_leads_and_follow_ups_keeps_violations_and_is_all_or_nothing(org, runtime):
    users, admin, rep_a = org["users"], org["admin"], org["as"]["rep_a"]
    leads = [new_lead(rep_a, mobile=f"1380013800{i}")["id"] for i in range(3)]
    assert follow_up(rep_a, leads[0]).status_code == 201
    sweep(runtime, T0 + 25 * H)                                  # two leads were let slide: two violations
    owned = lambda obj, uid: len(admin.post(f"/objects/{obj}/query", {"filter": {   # noqa: E731
        "field": "owner", "op": "eq", "value": uid}}).get_json()["records"])
    assert (owned("lead", users["rep_a"]), owned("follow_up", users["rep_a"]), owned("violation", users["rep_a"])) \
        == (3, 1, 2)

    # a record a handler refuses to move stops the hand-over: nothing moved, no audit entry
    contest = [leads[1]]

    def refuse_second(ev):
        if ev.values.get("id") in contest and ev.changed("owner"):
            raise ValidationFailed({"owner": "This lead is in a contest; it cannot change hands today."})
    runtime.events.subscribe("before_update", refuse_second, object="lead")
    r = admin.post(f"/users/{users['rep_a']}/handover", {"to": users["rep_b"]})
    assert r.status_code == 422 and f"lead.{leads[1]}.owner" in r.get_json()["error"]["fields"], r.get_json()
    assert r.get_json()["error"]["message"].startswith("Nothing was handed over")
    assert (owned("lead", users["rep_a"]), owned("follow_up", users["rep_a"])) == (3, 1)
    assert admin.get("/audit?action=handover").get_json()["entries"] == []
    contest.clear()                                              # the contest is over

    r = admin.post(f"/users/{users['rep_a']}/handover", {"to": users["rep_b"]})
    assert r.status_code == 200 and r.get_json()["moved"] == {"follow_up": 1, "lead": 3}
    assert (owned("lead", users["rep_b"]), owned("follow_up", users["rep_b"])) == (3, 1)
    assert owned("violation", users["rep_a"]) == 2                # evidence stays with who let it slide
    assert admin.get("/audit?action=handover").get_json()["entries"][0]["details"]["moved"] == {"follow_up": 1,
                                                                                                 "lead": 3}
    r = admin.post(f"/users/{users['rep_b']}/handover", {"to": users["rep_c"], "objects": ["violation"]})
    assert r.status_code == 422 and "stay with their owner" in r.get_json()["error"]["fields"]["objects"]
