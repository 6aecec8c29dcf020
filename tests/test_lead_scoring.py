"""Lead scoring through the API: attribute rules, behaviour events with
half-life decay, grades, the MQL milestone and its event, the explanation,
rights, rescoring jobs (inline and on RQ) and bad input."""
import datetime as dt
import threading
import uuid

import pytest
import sqlalchemy as sa

from leadhub.platform import auth
from leadhub.platform.jobs import Jobs
import leadhub.plugins.lead as lead_plugin
from leadhub.plugins.lead import scoring, scoring_jobs, scoring_runs
from leadhub.plugins.lead.scoring_tables import score_events, score_jobs
from tests.conftest import REDIS_URL, Api, count_rows, needs_redis

PW = "s3cret-pass"
UTC = dt.timezone.utc


pytestmark = pytest.mark.plugins("lead")   # each test starts with the plugin installed


@pytest.fixture(autouse=True)
def only_scoring(monkeypatch, request):
    """The lead plugin with only its scoring part: the other parts (cleaning,
    dedupe, follow-up, forms) have tests of their own, so these tests do not
    depend on them, except the one about the whole intake pipeline."""
    if "whole_intake" not in request.node.name:
        monkeypatch.setattr(lead_plugin, "PARTS", ("scoring", "scoring_runs"))   # before the runtime starts


@pytest.fixture
def no_rules(api):
    """Start from no attribute rules (the migration seeds two examples)."""
    for rule in api.get("/meta/scoring-rules").get_json()["items"]:
        assert api.delete(f"/meta/scoring-rules/{rule['id']}").status_code == 200


def lead(api, **fields):
    r = api.post("/objects/lead/records", {"name": "Zhang Wei", **fields})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def stored(api, rid):
    r = api.get(f"/objects/lead/records/{rid}?fields=score,score_attribute,score_behaviour,grade,mql,mql_at")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def ago(days: float) -> str:
    return (dt.datetime.now(UTC) - dt.timedelta(days=days)).isoformat()


def add_rule(api, condition, points, label=None):
    r = api.post("/meta/scoring-rules", {"label": label or condition, "condition": condition, "points": points})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def error_fields(r, status=400):
    assert r.status_code == status, (r.status_code, r.get_json())
    return r.get_json()["error"]["fields"]


# --- attribute rules ------------------------------------------------------------------

def test_seeded_rules_score_a_new_lead_and_explain_why(api):
    big_it = lead(api, company="Acme Software", company_size=800, industry="it")
    assert (big_it["score"], big_it["score_attribute"], big_it["grade"], big_it["mql"]) == (35, 35, "C", False)
    small = lead(api, company="Corner Shop", company_size=5, industry="retail")
    assert (small["score"], small["grade"]) == (0, "D")
    why = api.get(f"/objects/lead/records/{big_it['id']}/score").get_json()
    assert why["score"] == 35 and why["attribute"] == 35 and why["behaviour"] == 0
    assert sorted((r["condition"], r["points"]) for r in why["rules"]) == [
        ("company_size >= 500", 20), ("industry in ['it', 'finance']", 15)]
    assert why["events"] == [] and why["stored"] == {"score": 35, "grade": "C"}


def test_rules_match_with_negative_points_and_bulk_writes_score_too(api, no_rules):
    add_rule(api, "company_size >= 500", 20)
    add_rule(api, "industry in ['it', 'finance']", 15)
    add_rule(api, "source == 'cold_call'", -40, "Cold calls rarely convert")
    add_rule(api, "budget >= 100000 and province == 'guangdong'", 25)
    r = api.post("/objects/lead/records/bulk", {"records": [
        {"name": "Li Na", "company_size": 1000, "industry": "finance", "budget": "250000", "province": "guangdong"},
        {"name": "Wang Fang", "industry": "it", "source": "cold_call"},
        {"name": "Chen Jie", "company_size": 499, "industry": "education"},
    ]})
    assert r.status_code == 201, r.get_json()
    assert [x["score"] for x in r.get_json()["records"]] == [60, -25, 0]
    assert [x["grade"] for x in r.get_json()["records"]] == ["B", "D", "D"]
    why = api.get(f"/objects/lead/records/{r.get_json()['records'][1]['id']}/score").get_json()
    assert {x["label"]: x["points"] for x in why["rules"]} == {
        "industry in ['it', 'finance']": 15, "Cold calls rarely convert": -40}


def test_an_update_rescores_only_when_a_field_a_rule_reads_changed(api, runtime, no_rules):
    add_rule(api, "company_size >= 500", 20)
    rid = lead(api, company_size=10)["id"]
    # an event row written behind scoring's back: only a rescore would count it
    with runtime.db.write() as conn:
        conn.execute(score_events.insert().values(lead_id=rid, type="website_enquiry", points=30,
                                                  occurred_at=dt.datetime.now(UTC), created_at=dt.datetime.now(UTC)))
    assert api.patch(f"/objects/lead/records/{rid}", {"description": "called twice"}).status_code == 200
    assert stored(api, rid)["score"] == 0                          # nothing a rule reads changed
    assert api.patch(f"/objects/lead/records/{rid}", {"company_size": 600}).status_code == 200
    assert stored(api, rid)["score"] == 50                         # 20 for the size, 30 for the event


def test_rules_on_system_fields_score_alike_on_insert_and_rescore(api, no_rules):
    add_rule(api, "days_between(created_at, today()) < 7 and not isblank(owner)", 5)
    rid = lead(api)["id"]
    assert stored(api, rid)["score"] == 5
    api.post("/meta/scoring-rules/rescore")
    assert stored(api, rid)["score"] == 5


def test_score_fields_are_read_only_to_users(api):
    rid = lead(api)["id"]
    for name, value in (("score", 99), ("grade", "A"), ("mql", True)):
        r = api.patch(f"/objects/lead/records/{rid}", {name: value})
        assert r.status_code == 422 and name in r.get_json()["error"]["fields"]
    assert stored(api, rid)["score"] == 0


def test_a_field_a_rule_reads_cannot_be_deleted(api, no_rules):
    add_rule(api, "company_size >= 500", 20)
    r = api.delete("/meta/objects/lead/fields/company_size")
    assert r.status_code == 409 and "scoring rule 'rule_1' (condition)" in r.get_json()["error"]["message"]
    r = api.post("/meta/scoring-rules", {"label": "x", "condition": "revenue > 5", "points": 1})
    assert r.status_code == 400 and r.get_json()["error"]["fields"] == {"condition": "No field 'revenue' on lead."}


def test_a_rule_whose_field_was_deleted_is_reported_and_skipped(api, runtime, admin, no_rules):
    """Rules from before references were checked may still read a deleted field."""
    add_rule(api, "company_size >= 500", 20)
    add_rule(api, "industry == 'it'", 10)
    with runtime.db.write() as conn:     # as such a rule was stored: the field's row is gone, the rule kept
        conn.exec_driver_sql("UPDATE lh_fields SET deleted_at = CURRENT_TIMESTAMP WHERE api_name = 'company_size'")
        conn.exec_driver_sql("UPDATE lh_meta_version SET version = version + 1")
    rec = lead(api, industry="it")
    assert rec["score"] == 10
    why = api.get(f"/objects/lead/records/{rec['id']}/score").get_json()
    assert [b["label"] for b in why["broken_rules"]] == ["company_size >= 500"]
    assert "company_size" in why["broken_rules"][0]["error"]
    listed = {r["condition"]: r["error"] for r in api.get("/meta/scoring-rules").get_json()["items"]}
    assert listed["industry == 'it'"] is None and "company_size" in listed["company_size >= 500"]


# --- conditions and other bad input --------------------------------------------------------

@pytest.mark.parametrize("condition, message", [
    ("company_size >= ", "line 1, column"),
    ("revenue > 5", "No field 'revenue' on lead."),          # a reference that does not resolve
    ("(industry == 'it' and\n  foo(1))", "Unknown function 'foo'. (line 2, column 3)"),
    ("__import__('os')", "line 1, column 1"),
    ("", "between 1 and 4000"),
])
def test_a_bad_condition_is_a_400_naming_condition_with_line_and_column(api, runtime, condition, message):
    before = count_rows(runtime, "lh_meta_items", "kind = 'scoring_rule'")
    fields = error_fields(api.post("/meta/scoring-rules", {"label": "x", "condition": condition, "points": 5}))
    assert set(fields) == {"condition"} and message in fields["condition"], fields
    assert count_rows(runtime, "lh_meta_items", "kind = 'scoring_rule'") == before
    rule_id = api.get("/meta/scoring-rules").get_json()["items"][0]["id"]
    fields = error_fields(api.patch(f"/meta/scoring-rules/{rule_id}", {"condition": condition}))
    assert message in fields["condition"]
    assert api.get(f"/meta/scoring-rules/{rule_id}").get_json()["condition"] == "company_size >= 500"


@pytest.mark.parametrize("path, method, payload, field", [
    ("/meta/scoring-rules", "post", {"condition": "company_size > 1", "points": 1}, "label"),
    ("/meta/scoring-rules", "post", {"label": "x", "condition": "company_size > 1", "points": "20"}, "points"),
    ("/meta/scoring-rules", "post", {"label": "x", "condition": "company_size > 1", "points": True}, "points"),
    ("/meta/scoring-rules", "post", {"label": "x", "condition": "company_size > 1", "points": 1.5}, "points"),
    ("/meta/scoring-rules", "post", {"label": "x", "condition": "company_size > 1", "points": 10**9}, "points"),
    ("/meta/scoring-rules", "post", {"label": "x", "condition": 42, "points": 1}, "condition"),
    ("/meta/scoring-rules", "post", {"label": "x", "condition": "company_size > 1", "points": 1,
                                     "object": "customer"}, "object"),
    ("/meta/scoring-rules", "post", {"label": "x", "condition": "company_size > 1", "points": 1, "when": 1}, "when"),
    ("/meta/scoring-rules", "post", {"label": "x" * 201, "condition": "company_size > 1", "points": 1}, "label"),
    ("/meta/score-events", "post", {"key": "Bad Key", "label": "x", "points": 1, "strength": "weak"}, "key"),
    ("/meta/score-events", "post", {"key": "demo", "label": "x", "points": 1, "strength": "huge"}, "strength"),
    ("/meta/score-events", "post", {"key": "demo", "label": {"fr": "x"}, "points": 1, "strength": "weak"}, "label"),
    ("/meta/score-events", "post", {"key": "demo", "label": "x", "strength": "weak"}, "points"),
    ("/meta/score-events/website_enquiry", "patch", {"key": "other"}, "key"),
    ("/meta/score-events/website_enquiry", "patch", {"points": "lots"}, "points"),
    ("/meta/scoring-settings", "put", {"half_life_days": -1}, "half_life_days"),
    ("/meta/scoring-settings", "put", {"half_life_days": "30"}, "half_life_days"),
    ("/meta/scoring-settings", "put", {"grades": {"A": 50, "B": 50, "C": 20}}, "grades"),
    ("/meta/scoring-settings", "put", {"grades": {"A": 80, "B": 50}}, "grades"),
    ("/meta/scoring-settings", "put", {"grades": {"A": 80, "B": 50, "C": 20, "E": 1}}, "grades"),
    ("/meta/scoring-settings", "put", {"mql_threshold": "60"}, "mql_threshold"),
    ("/meta/scoring-settings", "put", {"decay": 1}, "decay"),
])
def test_bad_payloads_are_400_naming_the_field_and_change_nothing(api, runtime, path, method, payload, field):
    before = {t: count_rows(runtime, t) for t in ("lh_meta_items", "lh_meta_history", "lh_score_jobs")}
    settings = api.get("/meta/scoring-settings").get_json()
    fields = error_fields(getattr(api, method)(path, payload))
    assert any(k == field or k.startswith(field + ".") for k in fields), fields
    assert {t: count_rows(runtime, t) for t in before} == before
    assert api.get("/meta/scoring-settings").get_json() == settings
    assert api.get("/meta/score-events/website_enquiry").get_json()["points"] == 30


def test_malformed_bodies_and_missing_things(api):
    for path in ("/meta/scoring-rules", "/meta/score-events"):
        r = api.post(path, data="{nope", headers={"Content-Type": "application/json"})
        assert error_fields(r) == {"body": "Malformed JSON."}
        assert error_fields(api.post(path, json=[1])) == {"body": "Must be a JSON object."}
    assert api.get("/meta/scoring-rules/999").status_code == 404
    assert api.patch("/meta/scoring-rules/999", {"points": 1}).status_code == 404
    assert api.delete("/meta/scoring-rules/999").status_code == 404
    assert api.get("/meta/score-events/nope").status_code == 404
    assert api.get("/meta/scoring-rules/rescore/999").status_code == 404
    assert api.get("/objects/lead/records/999/score").status_code == 404
    assert api.post("/objects/lead/records/999/events", {"type": "website_enquiry"}).status_code == 404
    assert error_fields(api.post("/meta/score-events", {"key": "website_enquiry", "label": "x", "points": 1,
                                                        "strength": "weak"}), 409) == {"key": "Already taken."}


def test_bad_events_are_refused_and_nothing_is_recorded(api, runtime):
    rid = lead(api)["id"]
    cases = [({}, "type"), ({"type": "nope"}, "type"), ({"type": 5}, "type"),
             ({"type": "website_enquiry", "occurred_at": "yesterday"}, "occurred_at"),
             ({"type": "website_enquiry", "occurred_at": 12}, "occurred_at"),
             ({"type": "website_enquiry", "occurred_at": ago(-1)}, "occurred_at"),
             ({"type": "website_enquiry", "note": "x" * 2001}, "note"),
             ({"type": "website_enquiry", "data": [1]}, "data"),
             ({"type": "website_enquiry", "points": 100}, "points")]
    for payload, field in cases:
        assert field in error_fields(api.post(f"/objects/lead/records/{rid}/events", payload)), payload
    api.patch("/meta/score-events/replied_email", {"active": False})
    assert "type" in error_fields(api.post(f"/objects/lead/records/{rid}/events", {"type": "replied_email"}))
    assert count_rows(runtime, "lh_score_events") == 0
    assert stored(api, rid)["score"] == 0


# --- behaviour events and decay ------------------------------------------------------------------

def test_events_decay_with_the_half_life(api, runtime, no_rules):
    assert api.put("/meta/scoring-settings", {"half_life_days": 10}).status_code == 200
    rid = lead(api)["id"]
    r = api.post(f"/objects/lead/records/{rid}/events", {"type": "website_enquiry", "occurred_at": ago(10),
                                                        "note": "asked for a quote", "data": {"page": "/pricing"}})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["event"]["points"] == 30 and r.get_json()["lead"]["score"] == 15     # one half-life
    api.post(f"/objects/lead/records/{rid}/events", {"type": "attended_event", "occurred_at": ago(20)})
    assert stored(api, rid)["score"] == 20 and stored(api, rid)["score_behaviour"] == 20      # 15 + 20/4
    why = api.get(f"/objects/lead/records/{rid}/score", headers={"Accept-Language": "en"}).get_json()
    assert [(e["type"], e["points"], e["decayed_points"]) for e in why["events"]] == [
        ("website_enquiry", 30, 15.0), ("attended_event", 20, 5.0)]
    assert why["events"][0]["note"] == "asked for a quote" and why["events"][0]["label"] == "Website enquiry"
    # ten days on, the periodic sweep halves the stored behaviour score again
    result = scoring_runs.decay_sweep(runtime, now=dt.datetime.now(UTC) + dt.timedelta(days=10))
    assert result["status"] == "finished" and (result["total"], result["done"], result["changed"]) == (1, 1, 1)
    assert (stored(api, rid)["score"], stored(api, rid)["grade"]) == (10, "D")
    # no half-life: points keep their full value, and the change rescores at once
    r = api.put("/meta/scoring-settings", {"half_life_days": 0})
    assert api.get(f"/meta/scoring-rules/rescore/{r.get_json()['rescore_job']}").get_json()["status"] == "finished"
    assert stored(api, rid)["score"] == 50
    assert scoring_runs.decay_sweep(runtime) is None


def test_decay_arithmetic():
    now = dt.datetime(2026, 1, 31, tzinfo=UTC)
    assert scoring.decayed(40, now - dt.timedelta(days=30), now, 30) == 20
    assert scoring.decayed(40, now - dt.timedelta(days=60), now, 30) == 10
    assert scoring.decayed(-50, now - dt.timedelta(days=15), now, 30) == pytest.approx(-50 / 2 ** 0.5)
    assert scoring.decayed(40, now + dt.timedelta(days=1), now, 30) == 40          # never grows
    assert scoring.decayed(40, now - dt.timedelta(days=999), now, 0) == 40
    assert [scoring._round(x) for x in (2.5, 3.5, -2.5, 0.49)] == [3, 4, -3, 0]


def test_events_from_another_plugin_through_the_python_api(runtime, admin, api):
    rid = lead(api)["id"]
    out = scoring.record_event(runtime, admin, rid, "replied_email",
                               occurred_at=dt.datetime.now(UTC), data={"campaign": 7})
    assert out["lead"]["score"] == 10 and out["event"]["data"] == {"campaign": 7}
    with pytest.raises(Exception) as exc:
        scoring.record_event(runtime, admin, rid, "nope")
    assert exc.value.fields == {"type": "Unknown or inactive event type."}


def test_concurrent_events_on_one_lead_all_count(api, runtime, admin, no_rules):
    api.put("/meta/scoring-settings", {"half_life_days": 0, "mql_threshold": None})
    rid = lead(api)["id"]
    errors = []

    def post():
        try:
            for _ in range(3):
                scoring.record_event(runtime, admin, rid, "replied_email")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count_rows(runtime, "lh_score_events") == 12
    assert stored(api, rid)["score"] == 120


# --- grades and MQL ----------------------------------------------------------------------------------

def test_grade_bands_follow_the_thresholds_and_a_change_regrades_stored_leads(api, no_rules):
    api.put("/meta/scoring-settings", {"half_life_days": 0, "mql_threshold": None})
    ids = {}
    for points in (0, 10, 20, 30, 50, 80, 95):
        rid = lead(api)["id"]
        api.patch(f"/meta/score-events/replied_email", {"points": points})
        if points:
            api.post(f"/objects/lead/records/{rid}/events", {"type": "replied_email"})
        ids[points] = rid
    grades = {p: stored(api, rid)["grade"] for p, rid in ids.items()}
    assert grades == {0: "D", 10: "D", 20: "C", 30: "C", 50: "B", 80: "A", 95: "A"}
    r = api.put("/meta/scoring-settings", {"grades": {"A": 90, "B": 25, "C": 5}})
    assert r.status_code == 200 and r.get_json()["grades"] == {"A": 90, "B": 25, "C": 5}
    grades = {p: stored(api, rid)["grade"] for p, rid in ids.items()}
    assert grades == {0: "D", 10: "C", 20: "C", 30: "B", 50: "B", 80: "B", 95: "A"}
    # recorded events keep what their type was worth when they happened
    assert stored(api, ids[50])["score"] == 50


def test_crossing_the_mql_threshold_marks_the_lead_and_raises_the_event_once(api, runtime):
    seen = []
    runtime.events.subscribe(scoring.MQL_EVENT, lambda ev: seen.append((ev.record_id, ev.values["score"])),
                             object="lead")
    rid = lead(api, company_size=800, industry="it")["id"]                   # 35
    assert stored(api, rid)["mql"] is False and seen == []
    api.post(f"/objects/lead/records/{rid}/events", {"type": "website_enquiry"})   # 65 >= 60
    first = stored(api, rid)
    assert first["mql"] is True and first["mql_at"] and seen == [(rid, 65)]
    api.post(f"/objects/lead/records/{rid}/events", {"type": "attended_event"})    # 85: still one event
    api.post(f"/objects/lead/records/{rid}/events", {"type": "reported_spam"})     # 35: the milestone stays
    now = stored(api, rid)
    assert (now["score"], now["mql"], now["mql_at"]) == (35, True, first["mql_at"])
    assert seen == [(rid, 65)]
    # a lead created above the threshold qualifies (and announces) on insert
    api.put("/meta/scoring-settings", {"mql_threshold": 30})
    new = lead(api, company_size=900, industry="finance")
    assert new["mql"] is True and seen[-1] == (new["id"], 35)


def test_an_mql_handler_failing_refuses_the_write(api, runtime):
    def refuse(ev):
        from leadhub.platform.errors import ValidationFailed
        raise ValidationFailed({"owner": "No one to assign this MQL to."})
    runtime.events.subscribe(scoring.MQL_EVENT, refuse, object="lead")
    rid = lead(api, company_size=800, industry="it")["id"]
    r = api.post(f"/objects/lead/records/{rid}/events", {"type": "website_enquiry"})
    assert r.status_code == 422 and "owner" in r.get_json()["error"]["fields"]
    assert count_rows(runtime, "lh_score_events") == 0 and stored(api, rid)["mql"] is False


# --- rights ---------------------------------------------------------------------------------------------

@pytest.fixture
def people(api, app, runtime):
    users = {}
    for login, roles in (("rep_a", ["sales_rep"]), ("rep_b", ["sales_rep"]), ("marketer", ["marketing"])):
        r = api.post("/users", {"login": login, "name": login, "password": PW, "roles": roles})
        assert r.status_code == 201, r.get_json()
        users[login] = Api(app.test_client(), auth.create_token(runtime.db, login))
    return users


def test_a_rep_cannot_touch_leads_outside_his_scope(people):
    rep_a, rep_b = people["rep_a"], people["rep_b"]
    mine = lead(rep_a, company_size=800)["id"]
    theirs = lead(rep_b)["id"]
    assert rep_a.post(f"/objects/lead/records/{mine}/events", {"type": "replied_email"}).status_code == 201
    assert rep_a.get(f"/objects/lead/records/{mine}/score").get_json()["score"] == 30
    assert rep_a.post(f"/objects/lead/records/{theirs}/events", {"type": "replied_email"}).status_code == 404
    assert rep_a.get(f"/objects/lead/records/{theirs}/score").status_code == 404
    assert stored(rep_b, theirs)["score"] == 0
    # marketing reads every lead but has no edit right
    assert people["marketer"].get(f"/objects/lead/records/{theirs}/score").status_code == 200
    assert people["marketer"].post(f"/objects/lead/records/{theirs}/events", {"type": "replied_email"}).status_code == 403


def test_only_admins_change_scoring(api, people, runtime):
    rep = people["rep_a"]
    rule_id = api.get("/meta/scoring-rules").get_json()["items"][0]["id"]
    assert rep.get("/meta/scoring-rules").status_code == 200
    assert rep.get("/meta/score-events").status_code == 200
    assert rep.get("/meta/scoring-settings").status_code == 200
    for method, path, payload in [
            ("post", "/meta/scoring-rules", {"label": "x", "condition": "company_size > 1", "points": 1}),
            ("patch", f"/meta/scoring-rules/{rule_id}", {"points": 100}),
            ("delete", f"/meta/scoring-rules/{rule_id}", None),
            ("post", "/meta/scoring-rules/rescore", None),
            ("post", "/meta/score-events", {"key": "x", "label": "x", "points": 1, "strength": "weak"}),
            ("patch", "/meta/score-events/website_enquiry", {"points": 100}),
            ("delete", "/meta/score-events/website_enquiry", None),
            ("put", "/meta/scoring-settings", {"mql_threshold": 1})]:
        assert getattr(rep, method)(path, payload).status_code == 403, path
    assert api.get(f"/meta/scoring-rules/{rule_id}").get_json()["points"] == 20
    assert count_rows(runtime, "lh_score_jobs") == 0


# --- rescoring jobs ---------------------------------------------------------------------------------------

def test_a_rule_change_rescores_stored_leads_in_a_job(api, runtime, no_rules):
    ids = [lead(api, company_size=size)["id"] for size in (10, 600, 900)]
    api.delete(f"/objects/lead/records/{ids[0]}")
    r = api.post("/meta/scoring-rules", {"label": "big", "condition": "company_size >= 500", "points": 20})
    job = api.get(f"/meta/scoring-rules/rescore/{r.get_json()['rescore_job']}").get_json()
    assert (job["status"], job["kind"], job["total"], job["done"], job["changed"]) == ("finished", "rescore", 2, 2, 2)
    assert job["started_at"] and job["finished_at"] and job["error"] is None
    assert [stored(api, i)["score"] for i in ids[1:]] == [20, 20]
    rule_id = r.get_json()["id"]
    r = api.patch(f"/meta/scoring-rules/{rule_id}", {"condition": "company_size >= 800", "points": 25})
    assert api.get(f"/meta/scoring-rules/rescore/{r.get_json()['rescore_job']}").get_json()["changed"] == 2
    assert [stored(api, i)["score"] for i in ids[1:]] == [0, 25]
    assert api.patch(f"/meta/scoring-rules/{rule_id}", {"label": "renamed"}).get_json()["rescore_job"] is None
    assert api.delete(f"/meta/scoring-rules/{rule_id}").get_json()["rescore_job"]
    assert [stored(api, i)["score"] for i in ids[1:]] == [0, 0]
    r = api.post("/meta/scoring-rules/rescore")
    assert r.status_code == 202 and api.get(f"/meta/scoring-rules/rescore/{r.get_json()['id']}").get_json()["changed"] == 0


def test_rescoring_walks_leads_in_batches(api, runtime, admin, no_rules, monkeypatch):
    monkeypatch.setattr(scoring_runs, "BATCH", 7)
    runtime.records.bulk_create(admin, "lead", [{"name": f"Lead {i}", "company_size": i * 100} for i in range(30)])
    job_id = add_rule(api, "company_size >= 1000", 10)["rescore_job"]
    job = api.get(f"/meta/scoring-rules/rescore/{job_id}").get_json()
    assert (job["total"], job["done"], job["changed"]) == (30, 30, 20)
    table = runtime.cache.current().table("lead")
    with runtime.db.read() as conn:
        assert conn.execute(sa.select(sa.func.sum(table.c.score))).scalar_one() == 200


def test_a_waiting_job_absorbs_later_changes(api, runtime, admin, monkeypatch):
    """Without a worker the job waits; a second change reuses it (with no
    lead at all there is nothing to rescore and no job)."""
    lead(api)
    queued = []
    monkeypatch.setattr(runtime.jobs, "enqueue", lambda fn, *args: queued.append(args))
    first = api.post("/meta/scoring-rules", {"label": "a", "condition": "company_size > 1", "points": 1})
    second = api.put("/meta/scoring-settings", {"mql_threshold": 70})
    assert first.get_json()["rescore_job"] == second.get_json()["rescore_job"]
    assert queued == [(first.get_json()["rescore_job"],)]
    assert scoring_runs.rescore(runtime, queued[0][0])["status"] == "finished"
    assert scoring_runs.rescore(runtime, queued[0][0])["status"] == "finished"    # a second run does nothing
    with runtime.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(score_jobs)).scalar_one() == 1


@needs_redis
def test_rescoring_runs_on_rq(api, runtime, no_rules, monkeypatch):
    from leadhub.platform import jobs
    rid = lead(api, company_size=700)["id"]
    queue_jobs = Jobs(runtime, REDIS_URL, queue_name=f"test-scoring-{uuid.uuid4().hex[:8]}")
    monkeypatch.setattr(runtime, "jobs", queue_jobs)
    job_id = add_rule(api, "company_size >= 500", 20)["rescore_job"]
    assert api.get(f"/meta/scoring-rules/rescore/{job_id}").get_json()["status"] == "queued"
    assert stored(api, rid)["score"] == 0                    # queued, not run
    queue = queue_jobs.queue()
    jobs.bind(runtime)
    try:
        queue_jobs.worker(forking=False).work(burst=True)
    finally:
        jobs._bound.remove(runtime)
        queue.delete(delete_jobs=True)
    job = api.get(f"/meta/scoring-rules/rescore/{job_id}").get_json()
    assert (job["status"], job["done"], job["changed"]) == ("finished", 1, 1)
    assert stored(api, rid)["score"] == 20


def test_scoring_settings_read_and_written(api):
    got = api.get("/meta/scoring-settings").get_json()
    assert (got["half_life_days"], got["grades"], got["mql_threshold"]) == (30.0, {"A": 80, "B": 50, "C": 20}, 60)
    r = api.put("/meta/scoring-settings", {"half_life_days": 7.5, "mql_threshold": None})
    assert r.status_code == 200, r.get_json()
    got = api.get("/meta/scoring-settings").get_json()
    assert (got["half_life_days"], got["mql_threshold"]) == (7.5, None)
    types = api.get("/meta/score-events", headers={"Accept-Language": "zh-CN"}).get_json()["items"]
    assert {t["key"]: (t["label"]["zh_CN"], t["points"], t["strength"]) for t in types}["reported_spam"] == \
        ("举报垃圾信息", -50, "strong")
    r = api.post("/meta/score-events", {"key": "demo_request", "label": {"en": "Demo request", "zh_CN": "预约演示"},
                                        "points": 25, "strength": "strong"})
    assert r.status_code == 201 and r.get_json()["label"]["zh_CN"] == "预约演示"
    assert api.delete("/meta/score-events/demo_request").status_code == 204


def test_the_decay_sweep_is_a_scheduled_task(api, runtime):
    assert runtime.scheduler.tasks["lead.score_decay"].fn is scoring_runs.decay_sweep
    rid = lead(api)["id"]
    api.post(f"/objects/lead/records/{rid}/events", {"type": "website_enquiry"})
    assert "lead.score_decay" in runtime.scheduler.tick()
    with runtime.db.read() as conn:
        jobs_run = conn.execute(sa.select(score_jobs.c.kind, score_jobs.c.status, score_jobs.c.done)).all()
    assert ("decay", "finished", 1) in [tuple(j) for j in jobs_run]
    assert "lead.score_decay" not in runtime.scheduler.tick()          # not due again for a day


def test_the_whole_intake_pipeline_scores_after_cleaning(api, no_rules):
    """Cleaning writes the mobile's region back before scoring reads it."""
    add_rule(api, "not isblank(mobile_province)", 7, "Mobile with a known region")
    rec = lead(api, name="Zhao Lei", mobile="138 0013 8000", company_size=800)
    assert rec["mobile"] == "+8613800138000" and rec["mobile_province"]
    assert rec["score"] == 7


def test_scoring_rule_hook_functions_add_points_and_explain_them(api, no_rules):
    """An admin's function of kind hook named scoring_rule scores what a
    one-line condition cannot; a failing one scores nothing."""
    r = api.post("/meta/functions", {"api_name": "ceo_bonus", "label": {"en": "CEO bonus", "zh_CN": "高管加分"},
                                     "kind": "hook", "hook": "scoring_rule",
                                     "code": "t = (record['title'] or '').upper()\n"
                                             "return 25 if 'CEO' in t or '总经理' in t else None"})
    assert r.status_code == 201, r.get_json()
    assert api.post("/meta/functions", {"api_name": "broken_rule", "label": "Broken", "kind": "hook",
                                        "hook": "scoring_rule", "code": "return 1 / 0"}).status_code == 201
    boss = lead(api, title="总经理")
    clerk = lead(api, title="clerk")
    assert stored(api, boss["id"])["score"] == 25 and stored(api, clerk["id"])["score"] == 0
    why = api.get(f"/objects/lead/records/{boss['id']}/score").get_json()
    assert [(x.get("function"), x["points"]) for x in why["rules"]] == [("ceo_bonus", 25)]
    runs = api.get('/meta/function-runs?filter={"field":"function","op":"eq","value":"broken_rule"}').get_json()
    assert runs["runs"] and runs["runs"][0]["outcome"] == "error"


def test_the_lead_page_timeline_shows_the_score_and_its_reasons(api, runtime, admin, no_rules):
    from leadhub.plugins.lead import scoring
    from leadhub.platform.permissions import Actor
    add_rule(api, "company_size >= 500", 20, label="大公司")
    rid = lead(api, company_size=800)["id"]
    assert api.post(f"/objects/lead/records/{rid}/events", {"type": "website_enquiry"}).status_code == 201
    zh = Actor(user_id=admin.user_id, login="admin", is_admin=True, language="zh_CN")
    items = scoring.timeline(runtime, zh, "lead", rid)
    assert items[0]["kind"] == "score" and items[0]["title"].startswith("评分 ")
    assert "大公司 +20" in items[0]["body"]
    assert any(i["kind"] == "score_event" and "+30" in i["title"] for i in items)
