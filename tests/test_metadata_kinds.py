"""Metadata kinds: every kind stored, versioned, audited, referenced and
served the same way (issue 12). Driven over HTTP like an admin's client."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from leadhub.platform import auth
from leadhub.runtime import Runtime
from tests.conftest import Api, count_rows

MOBILE = [{"field": "mobile", "normaliser": "e164", "threshold": None}]

pytestmark = pytest.mark.plugins("lead")   # each test starts with the plugin installed


@pytest.fixture
def lead(runtime):
    return runtime


@pytest.fixture
def rep(lead, api, app, runtime):
    r = api.post("/users", {"login": "rep_a", "name": "rep_a", "password": "s3cret-pass", "roles": ["sales_rep"]})
    assert r.status_code == 201, r.get_json()
    return Api(app.test_client(), auth.create_token(runtime.db, "rep_a"))


def audit_actions(runtime, kind: str, key: str) -> list[str]:
    with runtime.db.read() as conn:
        return [r.action for r in conn.execute(sa.text(
            "SELECT action FROM lh_audit WHERE object = :k AND target = :t ORDER BY id"), {"k": kind, "t": key})]


def test_the_kinds_are_listed_with_their_urls_and_keys(lead, api):
    kinds = {k["name"]: k for k in api.get("/meta/kinds", headers={"Accept-Language": "zh-CN"}).get_json()["kinds"]}
    assert {"duplicate_rule", "scoring_rule", "score_event_type", "scoring_settings", "follow_up_rule"} <= set(kinds)
    assert kinds["duplicate_rule"]["url"] == "duplicate-rules" and kinds["duplicate_rule"]["key"] == "name"
    assert kinds["duplicate_rule"]["label"] == "查重规则"
    assert kinds["scoring_settings"]["singleton"] is True and kinds["scoring_settings"]["key"] is None
    assert "conditions" in kinds["duplicate_rule"]["properties"]


@pytest.mark.plugins("base")
def test_a_kind_of_an_uninstalled_plugin_does_not_exist(api):
    r = api.get("/meta/duplicate-rules")
    assert r.status_code == 404 and r.get_json()["error"]["fields"] == {"kind": "Unknown kind."}


def test_versions_diff_and_rollback_keep_every_state(lead, api, runtime):
    r = api.post("/meta/duplicate-rules", {"name": "by_mobile", "label": "手机号", "conditions": MOBILE})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["version"] == 1 and r.get_json()["key"] == "by_mobile"
    r = api.patch("/meta/duplicate-rules/by_mobile", {"window_months": 6, "action": "tag_only",
                                                     "version_note": "six months is enough"})
    assert r.status_code == 200 and r.get_json()["version"] == 2 and r.get_json()["window_months"] == 6
    versions = api.get("/meta/duplicate-rules/by_mobile/versions").get_json()["versions"]
    assert [(v["version"], v["action"], v["current"]) for v in versions] == [
        (2, "updated", True), (1, "created", False)]
    assert versions[0]["note"] == "six months is enough"
    diff = api.get("/meta/duplicate-rules/by_mobile/diff?from=1&to=2").get_json()
    assert diff["changed"] == {"window_months": {"from": None, "to": 6}, "action": {"from": "mark", "to": "tag_only"}}
    r = api.post("/meta/duplicate-rules/by_mobile/rollback", {"version": 1})
    assert r.status_code == 200 and r.get_json()["version"] == 3
    assert (r.get_json()["window_months"], r.get_json()["action"]) == (None, "mark")
    assert api.get("/meta/duplicate-rules/by_mobile/versions").get_json()["versions"][0]["note"] == \
        "rolled back to version 1"
    assert audit_actions(runtime, "duplicate_rule", "by_mobile") == ["meta_created", "meta_updated", "meta_updated"]
    # saving the same definition again is no new version
    assert api.patch("/meta/duplicate-rules/by_mobile", {"action": "mark"}).get_json()["version"] == 3


def test_a_deleted_item_keeps_its_history_and_a_rollback_brings_it_back(lead, api, runtime):
    api.post("/meta/duplicate-rules", {"name": "by_mobile", "conditions": MOBILE, "window_months": 3})
    assert api.delete("/meta/duplicate-rules/by_mobile").status_code == 204
    assert api.get("/meta/duplicate-rules/by_mobile").status_code == 404
    versions = api.get("/meta/duplicate-rules/by_mobile/versions").get_json()["versions"]
    assert [(v["version"], v["action"]) for v in versions] == [(2, "deleted"), (1, "created")]
    r = api.post("/meta/duplicate-rules/by_mobile/rollback", {"version": 1})
    assert r.status_code == 200 and r.get_json()["window_months"] == 3
    assert audit_actions(runtime, "duplicate_rule", "by_mobile") == ["meta_created", "meta_deleted", "meta_created"]


def test_a_field_in_use_by_a_rule_cannot_be_deleted_and_a_broken_rollback_is_refused(lead, api, make_object):
    api.post("/meta/objects/lead/fields", {"api_name": "qq", "label": "QQ", "type": "text", "indexed": True})
    r = api.post("/meta/duplicate-rules", {"name": "by_qq", "conditions": [{"field": "qq", "normaliser": "exact"}]})
    assert r.status_code == 201, r.get_json()
    r = api.delete("/meta/objects/lead/fields/qq")
    assert r.status_code == 409 and "duplicate rule 'by_qq' (conditions.0.field)" in r.get_json()["error"]["message"]
    # moved to the mobile: now qq may go, and version 1 (on qq) can no longer come back
    assert api.patch("/meta/duplicate-rules/by_qq", {"conditions": MOBILE}).status_code == 200
    assert api.delete("/meta/objects/lead/fields/qq").status_code == 204
    r = api.post("/meta/duplicate-rules/by_qq/rollback", {"version": 1})
    assert r.status_code == 400 and r.get_json()["error"]["fields"] == {"conditions.0.field": "No field 'qq' on lead."}
    assert api.get("/meta/duplicate-rules/by_qq").get_json()["conditions"][0]["field"] == "mobile"


def test_bad_input_is_a_400_naming_the_property_and_writes_nothing(lead, api, runtime):
    before = {t: count_rows(runtime, t) for t in ("lh_meta_items", "lh_meta_history")}
    before["audit"] = count_rows(runtime, "lh_audit", "action IN ('meta_created', 'meta_updated', 'meta_deleted')")
    cases = [
        ({"name": "x1", "conditions": [{"field": "mobile", "normaliser": "soundex"}]}, "conditions.0.normaliser"),
        ({"name": "x1", "conditions": [{"field": "nope", "normaliser": "exact"}]}, "conditions.0.field"),
        ({"name": "x1", "conditions": MOBILE, "colour": "red"}, "colour"),
        ({"name": "X 1", "conditions": MOBILE}, "name"),
        ({"name": "x1", "conditions": MOBILE, "version_note": "y" * 201}, "version_note"),
    ]
    for payload, field in cases:
        r = api.post("/meta/duplicate-rules", payload)
        assert r.status_code == 400 and field in r.get_json()["error"]["fields"], (payload, r.get_json())
    assert api.post("/meta/duplicate-rules", data="{", headers={"Content-Type": "application/json"}).status_code == 400
    assert api.post("/meta/duplicate-rules/x1/rollback", {"version": "1"}).status_code == 400
    assert api.get("/meta/duplicate-rules/x1/diff?from=a&to=2").status_code == 400
    assert api.get("/meta/no-such-kind").status_code == 404
    assert {t: count_rows(runtime, t) for t in ("lh_meta_items", "lh_meta_history")} | {
        "audit": count_rows(runtime, "lh_audit", "action IN ('meta_created', 'meta_updated', 'meta_deleted')")} == before
    api.post("/meta/duplicate-rules", {"name": "x1", "conditions": MOBILE})
    r = api.post("/meta/duplicate-rules", {"name": "x1", "conditions": MOBILE})
    assert r.status_code == 409 and r.get_json()["error"]["fields"] == {"name": "Already taken."}
    r = api.patch("/meta/duplicate-rules/x1", {"name": "x2"})
    assert r.status_code == 400 and r.get_json()["error"]["fields"] == {"name": "Cannot change."}
    assert api.get("/meta/duplicate-rules/x1/diff?from=1&to=9").status_code == 404


def test_reps_read_but_only_admins_write(rep, api):
    api.post("/meta/duplicate-rules", {"name": "x1", "conditions": MOBILE})
    assert rep.get("/meta/duplicate-rules").status_code == 200
    assert rep.post("/meta/duplicate-rules", {"name": "x2", "conditions": MOBILE}).status_code == 403
    assert rep.patch("/meta/duplicate-rules/x1", {"active": False}).status_code == 403
    assert rep.delete("/meta/duplicate-rules/x1").status_code == 403
    assert rep.post("/meta/duplicate-rules/x1/rollback", {"version": 1}).status_code == 403
    assert rep.get("/meta/duplicate-rules/x1/versions").status_code == 403
    assert api.get("/meta/duplicate-rules/x1").get_json()["active"] is True


def test_a_singleton_is_changed_not_created_or_deleted(lead, api):
    assert api.post("/meta/scoring-settings", {"mql_threshold": 1}).status_code == 400
    assert api.delete("/meta/scoring-settings/default").status_code == 409
    r = api.patch("/meta/scoring-settings", {"mql_threshold": 75})
    assert r.status_code == 200 and r.get_json()["mql_threshold"] == 75
    versions = api.get("/meta/scoring-settings/default/versions").get_json()["versions"]
    assert [v["action"] for v in versions] == ["updated", "created"]


@pytest.mark.plugins("base")
def test_objects_and_fields_have_history_diff_and_audit(api, runtime, make_object):
    make_object("visit", [{"api_name": "subject", "label": "Subject", "type": "text", "max_length": 80}])
    assert api.patch("/meta/objects/visit/fields/subject", {"max_length": 120, "label": "主题"}).status_code == 200
    assert api.patch("/meta/objects/visit", {"description": "拜访记录"}).status_code == 200
    versions = api.get("/meta/history/field/visit.subject").get_json()["versions"]
    assert [(v["version"], v["action"]) for v in versions] == [(2, "updated"), (1, "created")]
    diff = api.get("/meta/history/field/visit.subject/diff?from=1&to=2").get_json()["changed"]
    assert diff["max_length"] == {"from": 80, "to": 120} and diff["label.zh_CN"] == {"from": "Subject", "to": "主题"}
    assert [v["action"] for v in api.get("/meta/history/object/visit").get_json()["versions"]] == ["updated", "created"]
    assert api.delete("/meta/objects/visit/fields/subject").status_code == 204
    assert audit_actions(runtime, "field", "visit.subject") == ["meta_created", "meta_updated", "meta_deleted"]
    assert api.get("/meta/history/object/nothing").status_code == 404


def test_reading_items_costs_no_query_while_the_version_stands(lead, runtime):
    runtime.kinds.create(auth_admin(runtime), "duplicate_rule", {"name": "x1", "conditions": MOBILE})
    reg = runtime.cache.current()
    statements = []
    listener = lambda *args: statements.append(args[2])   # noqa: E731
    sa.event.listen(runtime.db.engine, "before_cursor_execute", listener)
    try:
        assert runtime.cache.current() is reg                      # one version check, nothing reloaded
        assert list(runtime.kinds.items("duplicate_rule", reg)) == ["x1"]
        assert runtime.kinds.find("duplicate_rule", "x1", reg).data["conditions"] == MOBILE
    finally:
        sa.event.remove(runtime.db.engine, "before_cursor_execute", listener)
    queries = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(queries) == 1 and "FROM lh_meta_version" in queries[0]


def test_another_process_sees_a_change_on_its_next_read(lead, api, config):
    other = Runtime(config)
    try:
        other.plugins.activate_installed()
        assert "x1" not in other.kinds.items("duplicate_rule")
        api.post("/meta/duplicate-rules", {"name": "x1", "conditions": MOBILE})
        assert other.kinds.items("duplicate_rule")["x1"].data["conditions"] == MOBILE
    finally:
        other.close()


def test_a_plugin_upgrade_keeps_admins_changes_and_deletions(lead, api, runtime):
    assert api.patch("/meta/score-events/website_enquiry", {"points": 45}).status_code == 200
    assert api.delete("/meta/scoring-rules/large_company").status_code == 200
    report = runtime.plugins.install("lead")
    assert report.created_items == []
    assert api.get("/meta/score-events/website_enquiry").get_json()["points"] == 45
    assert api.get("/meta/scoring-rules/large_company").status_code == 404


def auth_admin(runtime):
    from leadhub.platform.permissions import Actor
    return Actor(user_id=auth.user_id(runtime.db, "admin"), login="admin", is_admin=True)


@pytest.mark.plugins("base")
def test_the_migration_moves_existing_rules_into_items(tmp_path):
    """An instance from before kinds keeps its rules, event types, settings and
    follow-up rules, as items of their kinds with a first version."""
    from leadhub.platform import migrate
    from leadhub.platform.db import Database
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(db, "0008")
    now = "2026-01-01 00:00:00"
    with db.write() as conn:
        for sql in (
            f"INSERT INTO lh_plugins VALUES ('lead', '0.2.0', '{now}', '{now}')",
            "INSERT INTO lh_duplicate_rules (name, label, active, object, match_objects, conditions, window_months,"
            f" action, created_at, updated_at) VALUES ('by_mobile', '手机', 1, 'lead', '[\"lead\"]', "
            f"'[{{\"field\": \"mobile\", \"normaliser\": \"e164\", \"threshold\": null}}]', 6, 'mark', '{now}', '{now}')",
            f"UPDATE lh_score_settings SET mql_threshold = 77",
            f"INSERT INTO lh_follow_up_rules (status, hours, remind_before_hours, active, created_at, updated_at)"
            f" VALUES ('new', 48, 8, 1, '{now}', '{now}')",
            f"INSERT INTO lh_lead_blacklist (type, value, note, created_at, updated_at)"
            f" VALUES ('phone', '+8613800138000', '骚扰', '{now}', '{now}')",
            "INSERT INTO lh_users (id, login, name, is_admin, active, language, created_at)"
            f" VALUES (7, 'ops', 'Ops', 0, 1, 'zh_CN', '{now}')",
            "INSERT INTO lh_functions (id, api_name, labels, kind, definition, active, run_as, owner, version,"
            " next_run_at, created_at, updated_at) VALUES (1, 'nightly', '{\"en\": \"Nightly\", \"zh_CN\": \"夜间\"}',"
            " 'scheduled', '{\"code\": \"return 2\", \"schedule\": \"0 2 * * *\"}', 1, 7, 7, 2,"
            f" '2026-01-02 02:00:00', '{now}', '{now}')",
            "INSERT INTO lh_function_versions (function_id, version, snapshot, saved_by, saved_at, note) VALUES"
            f" (1, 1, '{{\"api_name\": \"nightly\", \"code\": \"return 1\", \"run_as\": 7}}', 7, '{now}', NULL),"
            f" (1, 2, '{{\"api_name\": \"nightly\", \"code\": \"return 2\", \"run_as\": 7}}', 7, '{now}', 'fix')"):
            conn.exec_driver_sql(sql)
    migrate.upgrade(db)
    with db.read() as conn:
        items = {(r.kind, r.key): r for r in conn.execute(sa.text("SELECT kind, key, data, plugin FROM lh_meta_items"))}
        history = conn.execute(sa.text("SELECT count(*) FROM lh_meta_history WHERE version = 1")).scalar_one()
        fn_history = conn.execute(sa.text("SELECT version, data, note FROM lh_meta_history WHERE kind = 'function'"
                                          " ORDER BY version")).all()
        schedule = conn.execute(sa.text("SELECT function, next_run_at FROM lh_function_schedules")).all()
        tables = set(sa.inspect(conn).get_table_names())
    db.dispose()

    def data(key):
        value = items[key].data
        return json.loads(value) if isinstance(value, str) else value
    assert data(("duplicate_rule", "by_mobile"))["window_months"] == 6
    assert data(("scoring_settings", "default"))["mql_threshold"] == 77
    assert data(("follow_up_rule", "new")) == {"status": "new", "hours": 48, "remind_before_hours": 8, "active": True}
    fn = data(("function", "nightly"))
    assert (fn["run_as"], fn["code"], fn["schedule"], fn["label"]["zh_CN"]) == ("ops", "return 2", "0 2 * * *", "夜间")
    assert [(v, json.loads(d)["code"] if isinstance(d, str) else d["code"], n) for v, d, n in fn_history] == [
        (1, "return 1", None), (2, "return 2", "fix")]
    assert [name for name, _ in schedule] == ["nightly"]
    assert data(("blacklist", "phone:+8613800138000")) == {"type": "phone", "value": "+8613800138000", "note": "骚扰"}
    assert {k for k, _ in items} == {"duplicate_rule", "scoring_rule", "score_event_type", "scoring_settings",
                                     "follow_up_rule", "blacklist", "function"}
    assert all(r.plugin == "lead" for k, r in items.items() if k[0] != "function") and history == len(items)
    assert not tables & {"lh_duplicate_rules", "lh_scoring_rules", "lh_score_event_types", "lh_score_settings",
                         "lh_follow_up_rules", "lh_lead_blacklist", "lh_functions", "lh_function_versions"}


def test_a_plugin_upgrade_merges_its_items_with_the_admins(lead, api, runtime, tmp_path):
    """The lead plugin's next version changes two event types' points; the
    admin had changed one of them: his stays, the other takes the new points."""
    import dataclasses
    import shutil
    from leadhub.plugins.lead import plugin
    assert api.patch("/meta/score-events/website_enquiry", {"points": 45}).status_code == 200
    shutil.copytree(plugin.metadata_dir, tmp_path / "lead")
    scoring_file = tmp_path / "lead" / "4_scoring.yaml"
    text = scoring_file.read_text(encoding="utf-8")
    text = text.replace("points: 30, strength: strong", "points: 35, strength: strong")     # website_enquiry
    text = text.replace("points: 10, strength: weak", "points: 12, strength: weak")         # replied_email
    scoring_file.write_text(text, encoding="utf-8")
    runtime.plugins.add(dataclasses.replace(plugin, version="0.3.0", metadata_dir=tmp_path / "lead"))
    report = runtime.plugins.upgrade("lead")
    assert report.updated == ["score_event_type/replied_email"] and report.kept == ["score_event_type/website_enquiry"]
    assert api.get("/meta/score-events/replied_email").get_json()["points"] == 12
    assert api.get("/meta/score-events/website_enquiry").get_json()["points"] == 45
    versions = api.get("/meta/score-events/replied_email/versions").get_json()["versions"]
    assert versions[0]["note"] == "lead 0.3.0"


def test_a_save_from_a_stale_read_is_refused(lead, api):
    """Two admins open the same rule; the second to save gets a 409 instead of
    silently undoing the first one's change."""
    first = api.post("/meta/duplicate-rules", {"name": "x1", "conditions": MOBILE}).get_json()
    a, b = dict(first), dict(first)
    assert api.patch("/meta/duplicate-rules/x1", {**a, "window_months": 6}).status_code == 200
    r = api.patch("/meta/duplicate-rules/x1", {**b, "action": "tag_only"})
    assert r.status_code == 409 and r.get_json()["error"]["fields"] == {"version": "Stale: the current version is 2."}
    assert api.get("/meta/duplicate-rules/x1").get_json()["window_months"] == 6
    assert api.patch("/meta/duplicate-rules/x1", {"action": "tag_only"}).status_code == 200   # no version: last wins


@pytest.mark.plugins("base")
def test_objects_and_fields_roll_back_through_their_own_service(api, make_object, runtime):
    """A field goes back to an earlier definition (a new version, DDL
    included); a deleted one is restored first; a rollback that would lose
    data is refused as the edit would be; an object's own properties too."""
    make_object("visit", [{"api_name": "subject", "label": {"en": "Subject", "zh_CN": "主题"}, "type": "text",
                           "max_length": 100}], name_field="subject")
    assert api.patch("/meta/objects/visit/fields/subject",
                     {"label": {"en": "Topic", "zh_CN": "话题"}, "max_length": 200}).status_code == 200
    versions = api.get("/meta/history/field/visit.subject").get_json()["versions"]
    assert [v["version"] for v in versions] == [2, 1]
    r = api.post("/meta/history/field/visit.subject/rollback", {"version": 1})
    assert r.status_code == 200, r.get_json()
    fd = runtime.cache.current().objects["visit"].fields["subject"]
    assert fd.labels["zh_CN"] == "主题" and fd.settings["max_length"] == 100
    assert [v["version"] for v in api.get("/meta/history/field/visit.subject").get_json()["versions"]] == [3, 2, 1]
    # a value longer than the old length stops the rollback, naming why; nothing changes
    assert api.patch("/meta/objects/visit/fields/subject", {"max_length": 300}).status_code == 200
    assert api.post("/objects/visit/records", {"subject": "x" * 250}).status_code == 201
    r = api.post("/meta/history/field/visit.subject/rollback", {"version": 1})
    assert r.status_code == 409 and "would truncate" in r.get_json()["error"]["fields"]["subject"]
    assert runtime.cache.current().objects["visit"].fields["subject"].settings["max_length"] == 300
    # a deleted field comes back with the version's definition
    api.post("/meta/objects/visit/fields", {"api_name": "notes", "label": "Notes", "type": "long_text"})
    assert api.delete("/meta/objects/visit/fields/notes").status_code == 204
    assert api.post("/meta/history/field/visit.notes/rollback", {"version": 1}).status_code == 200
    assert "notes" in runtime.cache.current().objects["visit"].fields
    # the object's own label
    assert api.patch("/meta/objects/visit", {"label": {"en": "Call", "zh_CN": "电话"}}).status_code == 200
    r = api.post("/meta/history/object/visit/rollback", {"version": 1})
    assert r.status_code == 200 and r.get_json()["labels"]["en"] == "Visit"
    assert runtime.cache.current().objects["visit"].labels["en"] == "Visit"
    assert api.post("/meta/history/object/visit/rollback", {"version": 99}).status_code == 404
    assert api.post("/meta/history/field/visit.subject/rollback", {"version": "1"}).status_code == 400
