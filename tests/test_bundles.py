"""Bundles (industry templates): a consultant builds metadata in one
instance, exports it as one file, installs it into a fresh instance with one
command, and upgrades it there without losing the customer's changes."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from leadhub.metadata import bundles
from leadhub.platform import auth
from leadhub.platform.config import Config
from leadhub.platform.permissions import Actor
from leadhub.runtime import Runtime
from tests.conftest import count_rows, fresh_database

ADMIN = Actor.system()

INTENT_FIELDS = [
    {"api_name": "student", "label": {"en": "Student", "zh_CN": "学员姓名"}, "type": "text", "required": True,
     "max_length": 60},
    {"api_name": "mobile", "label": {"en": "Mobile", "zh_CN": "手机"}, "type": "phone", "indexed": True},
    {"api_name": "course", "label": {"en": "Course", "zh_CN": "意向课程"}, "type": "picklist",
     "options": [{"value": "ielts", "label": {"en": "IELTS", "zh_CN": "雅思"}},
                 {"value": "toefl", "label": {"en": "TOEFL", "zh_CN": "托福"}}]},
]


@pytest.fixture
def consultant(runtime, api):
    """The consultant's instance: an education template built over the API."""
    runtime.plugins.install("lead")
    r = api.post("/meta/objects", {"api_name": "course_intent", "label": {"en": "Course intent", "zh_CN": "学员意向"},
                                   "fields": INTENT_FIELDS, "name_field": "student"})
    assert r.status_code == 201, r.get_json()
    r = api.post("/meta/objects", {"api_name": "trial_lesson", "label": {"en": "Trial lesson", "zh_CN": "试听课"},
                                   "fields": [{"api_name": "intent", "label": "Intent", "type": "lookup",
                                               "reference_to": "course_intent"},
                                              {"api_name": "held_on", "label": "Held on", "type": "date"}]})
    assert r.status_code == 201, r.get_json()
    r = api.post("/meta/objects/lead/fields", {"api_name": "grade_level", "label": {"en": "Grade", "zh_CN": "年级"},
                                               "type": "text", "indexed": True})
    assert r.status_code == 201, r.get_json()
    r = api.post("/meta/duplicate-rules", {"name": "by_grade_mobile", "label": "同年级同手机",
                                           "conditions": [{"field": "mobile", "normaliser": "e164"},
                                                          {"field": "grade_level", "normaliser": "exact"}],
                                           "window_months": 6})
    assert r.status_code == 201, r.get_json()
    return runtime


@pytest.fixture
def customer(tmp_path, migrated_template):
    """A second, fresh instance (its own database) with the lead plugin."""
    with fresh_database(tmp_path, migrated_template, "customer.db") as url:
        rt = Runtime(Config(instance_path=tmp_path / "customer", database_url=url, redis_url=None,
                            secret_key="customer-secret"))
        rt.upgrade_db()
        rt.plugins.install("lead")
        auth.create_user(rt.db, "admin", "Admin", is_admin=True)
        yield rt
        rt.close()


def export_v(runtime, version: str, **extra) -> bytes:
    made, _ = bundles.export(runtime, ADMIN, bundles.Selection(objects=["trial_lesson"],
                                                               items=["duplicate_rule/by_grade_mobile"]),
                             name="edu_training", version=version, label={"en": "Education", "zh_CN": "教育培训"},
                             publisher="Consultant Co.", **extra)
    return bundles.write(made)


def test_export_pulls_in_what_the_choice_needs(consultant):
    made, pulled = bundles.export(consultant, ADMIN, bundles.Selection(
        objects=["trial_lesson"], items=["duplicate_rule/by_grade_mobile"]), name="edu_training", version="1.0.0")
    # the lookup's target object and its fields, and the lead field the rule reads, come along
    assert "object/course_intent" in pulled and "field/course_intent.student" in pulled
    assert "field/lead.grade_level" in pulled
    # the lead itself, its mobile and the duplicate-rule kind come from the lead plugin: a requirement
    assert made.requires == {"lead": ">=0.2.0"}
    assert not any(e in made.entries for e in ("object/lead", "field/lead.mobile"))
    order = list(made.entries)
    assert order.index("object/course_intent") < order.index("field/trial_lesson.intent")
    assert order.index("field/lead.grade_level") < order.index("duplicate_rule/by_grade_mobile")
    raw = bundles.write(made)
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        manifest = yaml.safe_load(zf.read("manifest.yaml"))
        assert manifest["format"] == 1 and manifest["contents"] == order
        field = yaml.safe_load(zf.read("fields/course_intent.course.yaml").decode())
        assert field["options"][0]["label"]["zh_CN"] == "雅思"
        assert "学员姓名" in zf.read("fields/course_intent.student.yaml").decode()   # readable, not escaped


def test_install_into_a_fresh_instance_then_upgrade_keeping_the_customers_changes(consultant, api, customer):
    v1 = export_v(consultant, "1.0.0")
    plan = bundles.install(customer, ADMIN, bundles.read(v1), dry_run=True)
    assert plan["counts"] == {"create": len(bundles.read(v1).entries)}
    assert "course_intent" not in customer.cache.current().objects          # a dry run changes nothing
    done = bundles.install(customer, ADMIN, bundles.read(v1))
    reg = customer.cache.current()
    assert reg.objects["course_intent"].name_field == "student"
    assert reg.objects["trial_lesson"].fields["intent"].settings["reference_to"] == "course_intent"
    assert reg.items["duplicate_rule"]["by_grade_mobile"].data["window_months"] == 6
    assert done["applied"] == len(bundles.read(v1).entries)
    rec = customer.records.create(ADMIN, "course_intent", {"student": "王小明", "course": "ielts"})
    assert rec["student"] == "王小明"

    # the customer renames a field and tightens the rule's window; adds a rule of his own
    customer.metadata.update_field(ADMIN, "course_intent", "student", {"label": {"en": "Learner", "zh_CN": "学员"}})
    customer.kinds.update(ADMIN, "duplicate_rule", "by_grade_mobile", {"window_months": 3})
    customer.kinds.create(ADMIN, "duplicate_rule", {"name": "mine", "conditions": [
        {"field": "mobile", "normaliser": "e164"}]})
    # the consultant lengthens the same field, changes the rule's window and label, adds a field
    assert api.patch("/meta/objects/course_intent/fields/student", {"max_length": 100}).status_code == 200
    assert api.patch("/meta/duplicate-rules/by_grade_mobile", {"window_months": 12, "label": "同年级"}).status_code == 200
    assert api.post("/meta/objects/course_intent/fields", {"api_name": "budget", "label": "预算", "type": "currency"}
                    ).status_code == 201
    v2 = bundles.read(export_v(consultant, "1.1.0"))

    plan = bundles.install(customer, ADMIN, v2, dry_run=True, default="local")
    steps = {s["entry"]: s for s in plan["steps"]}
    assert steps["field/course_intent.student"]["action"] == "update"
    assert steps["field/course_intent.student"]["changes"] == {"max_length": {"local": 60, "new": 100}}
    assert steps["field/course_intent.budget"]["action"] == "create"
    rule = steps["duplicate_rule/by_grade_mobile"]
    assert rule["action"] == "conflict" and rule["conflicts"] == {
        "window_months": {"base": 6, "local": 3, "new": 12}}
    assert rule["changes"] == {"label": {"local": "同年级同手机", "new": "同年级"}}

    with pytest.raises(Exception) as refused:                   # a conflict stops it, nothing applied
        bundles.install(customer, ADMIN, v2)
    assert refused.value.status == 409 and "conflicts.duplicate_rule/by_grade_mobile" in refused.value.fields
    assert "budget" not in customer.cache.current().objects["course_intent"].fields

    bundles.install(customer, ADMIN, v2, resolve={"duplicate_rule/by_grade_mobile": "local"})
    reg = customer.cache.current()
    student = reg.objects["course_intent"].fields["student"]
    assert (student.labels["zh_CN"], student.settings["max_length"]) == ("学员", 100)   # his label, their length
    rule = reg.items["duplicate_rule"]["by_grade_mobile"].data
    assert (rule["window_months"], rule["label"]) == (3, "同年级")                        # his window, their label
    assert "budget" in reg.objects["course_intent"].fields and "mine" in reg.items["duplicate_rule"]
    assert bundles.installed_bundles(customer)[0]["version"] == "1.1.0"

    # the same file again: nothing to do; taking new settles the next conflict the other way
    again = bundles.install(customer, ADMIN, v2, dry_run=True)
    assert set(again["counts"]) <= {"unchanged", "keep_local"}, again


def test_uninstall_removes_what_the_bundle_made_and_nothing_else(consultant, customer):
    bundles.install(customer, ADMIN, bundles.read(export_v(consultant, "1.0.0")))
    customer.kinds.create(ADMIN, "duplicate_rule", {"name": "mine", "conditions": [
        {"field": "mobile", "normaliser": "e164"}]})
    customer.metadata.add_field(ADMIN, "course_intent", {"api_name": "notes", "label": "备注", "type": "long_text"})
    with pytest.raises(Exception) as refused:
        bundles.uninstall(customer, ADMIN, "edu_training")
    assert refused.value.status == 409 and "field/course_intent.notes" in refused.value.message
    customer.metadata.delete_field(ADMIN, "course_intent", "notes")
    customer.metadata.purge_field(ADMIN, "course_intent", "notes")
    bundles.uninstall(customer, ADMIN, "edu_training")
    reg = customer.cache.current()
    assert "course_intent" not in reg.objects and "course_intent" in reg.deleted_objects   # recycle bin
    assert "grade_level" not in reg.objects["lead"].fields
    assert "by_grade_mobile" not in reg.items["duplicate_rule"] and "mine" in reg.items["duplicate_rule"]
    assert bundles.installed_bundles(customer) == []


def test_bad_bundles_are_refused_with_the_reason_and_install_nothing(consultant, customer):
    good = export_v(consultant, "1.0.0")
    before = count_rows(customer, "lh_objects")

    def refused(raw: bytes) -> dict:
        with pytest.raises(Exception) as exc:
            bundles.install(customer, ADMIN, bundles.read(raw))
        assert exc.value.status in (400, 409), exc.value
        assert count_rows(customer, "lh_objects") == before and bundles.installed_bundles(customer) == []
        return exc.value.fields

    assert refused(b"not a zip at all") == {"file": "Not a readable zip file."}
    assert refused(good[: len(good) // 2])["file"] == "Not a readable zip file."

    def rewrite(raw: bytes, change) -> bytes:
        src = zipfile.ZipFile(io.BytesIO(raw))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            for name in src.namelist():
                data = src.read(name)
                data = change(name, data)
                if data is not None:
                    zf.writestr(name, data)
        return out.getvalue()

    def manifest(**changes):
        def change(name, data):
            if name != "manifest.yaml":
                return data
            m = yaml.safe_load(data)
            m.update(changes)
            return yaml.safe_dump(m)
        return rewrite(good, change)

    assert "manifest.format" in refused(manifest(format=2))
    assert refused(manifest(requires={"lead": ">=9.0"}))["requires.lead"].startswith("Needs lead >=9.0")
    assert "requires.pool" in refused(manifest(requires={"pool": ">=0.1"}))
    assert "manifest.name" in refused(manifest(name="Bad Name"))
    assert refused(rewrite(good, lambda n, d: None if n == "objects/course_intent.yaml" else d))["file"] == \
        "Missing objects/course_intent.yaml."
    broken = rewrite(good, lambda n, d: d.replace(b"grade_level", b"no_such_field")
                     if n == "items/duplicate_rule/by_grade_mobile.yaml" else d)
    fields = refused(broken)
    assert fields == {"conditions.1.field": "No field 'no_such_field' on lead."}, fields
    # an api name that exists here already
    customer.metadata.create_object(ADMIN, {"api_name": "course_intent", "label": "Mine"})
    before = count_rows(customer, "lh_objects")
    fields = refused(good)
    assert fields == {"conflicts.object/course_intent": "Already exists."}


def test_one_command_installs_into_a_fresh_instance(consultant, tmp_path, migrated_template, monkeypatch):
    path = tmp_path / "edu.zip"
    path.write_bytes(export_v(consultant, "1.0.0"))
    from leadhub.cli import main
    with fresh_database(tmp_path, migrated_template, "fresh.db") as url:
        monkeypatch.setenv("LEADHUB_DATABASE_URL", url)
        monkeypatch.setenv("LEADHUB_INSTANCE_PATH", str(tmp_path / "fresh"))
        runner = CliRunner()
        result = runner.invoke(main, ["bundle", "install", str(path)])
        assert result.exit_code == 0, result.output
        assert "edu_training 1.0.0" in result.output and "create" in result.output
        rt = Runtime(Config.from_env())
        try:
            rt.plugins.activate_installed()
            assert "lead" in rt.plugins.installed()                    # the requirement came with it
            assert "course_intent" in rt.cache.current().objects
        finally:
            rt.close()
        again = runner.invoke(main, ["bundle", "install", str(path)])
        assert again.exit_code != 0 and "use `leadhub bundle upgrade`" in again.output
        listed = runner.invoke(main, ["bundle", "list"])
        assert "edu_training" in listed.output and "1.0.0" in listed.output


def test_merge_rules():
    base, local, new = {"a": 1, "b": 1, "c": 1}, {"a": 2, "b": 1, "c": 5}, {"a": 1, "b": 3, "c": 6}
    step = bundles.merge(base, local, new, "x/y")
    assert step.action == "conflict" and step.conflicts == {"c": {"base": 1, "local": 5, "new": 6}}
    assert step.values == {"a": 2, "b": 3, "c": 5}
    assert bundles.merge(None, None, {"a": 1}, "x/y").action == "create"
    assert bundles.merge({"a": 1}, None, {"a": 1}, "x/y").action == "keep_local"
    assert bundles.merge({"a": 1}, {"a": 1}, None, "x/y").action == "delete"
    assert bundles.merge({"a": 1}, {"a": 2}, None, "x/y").action == "conflict"
    assert bundles.satisfies("0.2.0", ">=0.2") and not bundles.satisfies("0.1.9", ">=0.2")
    assert bundles.satisfies("1.0", "==1.0.0") and not bundles.satisfies("1.0.0", ">1.0")


def test_only_admins_export_and_install(consultant, customer):
    rep = Actor(user_id=99, login="rep", is_admin=False)
    with pytest.raises(Exception) as exc:
        bundles.export(consultant, rep, bundles.Selection(objects=["trial_lesson"]), name="x1", version="1.0.0")
    assert exc.value.status == 403
    raw = export_v(consultant, "1.0.0")
    with pytest.raises(Exception) as exc:
        bundles.install(customer, rep, bundles.read(raw))
    assert exc.value.status == 403 and bundles.installed_bundles(customer) == []


# --- the example templates shipped in bundles/ ---------------------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "bundles"


def test_the_shipped_examples_are_what_the_export_makes(tmp_path, monkeypatch):
    """bundles/make_examples.py builds each template in a scratch instance and
    exports it; the folders in the repository are exactly its output."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    for build, name, version in make.EXAMPLES:
        made = make.scratch(build, version)
        bundles.write_dir(made, tmp_path / name / version)
        shipped = bundles.read_path(EXAMPLES / name / version)
        assert bundles.read_path(tmp_path / name / version).entries == shipped.entries, f"{name} {version}"
        assert shipped.manifest() == made.manifest()


def test_the_examples_install_beside_each_other_and_upgrade_over_a_customers_changes(customer, monkeypatch):
    edu_v1 = bundles.read_path(EXAMPLES / "edu_training" / "1.0.0")
    bundles.install(customer, ADMIN, edu_v1)
    bundles.install(customer, ADMIN, bundles.read_path(EXAMPLES / "b2b_manufacturing" / "1.0.0"))
    reg = customer.cache.current()
    assert {"course_intent", "trial_lesson", "product", "sample_request"} <= set(reg.objects)
    assert {"grade_level", "annual_capacity", "purchase_cycle"} <= set(reg.objects["lead"].fields)
    # its layout, given to sales reps, and its shared view came along
    layout = customer.kinds.items("layout")["course_intent.课程顾问布局"].data
    assert layout["roles"] == ["sales_rep"] and layout["sections"][0]["fields"][0]["field"] == "student"
    assert customer.kinds.items("list_view")["course_intent.to_call_back_this_week"].data["name"]["en"] == \
        "To call back this week"
    # the template's validation rule refuses an intent nobody can be reached by, naming the field
    with pytest.raises(Exception) as refused:
        customer.records.create(ADMIN, "course_intent", {"student": "韩梅梅"})
    assert refused.value.status == 422 and refused.value.fields == {"mobile": "请填写学员手机或家长姓名"}
    assert customer.records.create(ADMIN, "course_intent", {"student": "韩梅梅", "parent_name": "韩爸爸"})["id"]
    # the template's rules work on leads
    lead = customer.records.create(ADMIN, "lead", {"name": "李雷", "mobile": "13800138000", "grade_level": "高三"})
    assert lead["score"] >= 15
    twin = customer.records.create(ADMIN, "lead", {"name": "李雷家长", "mobile": "13800138000", "grade_level": "高三"})
    assert twin["is_duplicate"] and twin["duplicate_of"] == lead["id"]
    # the school renames the course picklist, lowers the rule's points, drops the rating field
    customer.metadata.update_field(ADMIN, "course_intent", "course", {"label": {"en": "Programme", "zh_CN": "报读项目"}})
    customer.kinds.update(ADMIN, "scoring_rule", "edu_exam_years", {"points": 5})
    customer.metadata.delete_field(ADMIN, "trial_lesson", "rating")
    # the layout still shows the rating column's place; saving it drops the deleted column
    customer.kinds.update(ADMIN, "layout", "course_intent.课程顾问布局", {"roles": ["sales_rep", "sales_manager"]})
    assert "rating" not in customer.kinds.items("layout")["course_intent.课程顾问布局"].data["related_lists"][0]["columns"]
    edu_v2 = bundles.read_path(EXAMPLES / "edu_training" / "1.1.0")
    plan = {s["entry"]: s for s in bundles.install(customer, ADMIN, edu_v2, dry_run=True, default="local")["steps"]}
    assert plan["field/course_intent.course"]["action"] == "update"          # the new 日语 option comes in
    assert set(plan["field/course_intent.course"]["changes"]) == {"options"}
    assert plan["scoring_rule/edu_exam_years"]["conflicts"] == {"points": {"base": 15, "local": 5, "new": 20}}
    assert plan["field/trial_lesson.rating"]["action"] == "keep_local"       # deleted here, unchanged there
    layout_step = plan["layout/course_intent.课程顾问布局"]    # their new column; here the rating column is gone
    assert layout_step["action"] == "conflict" and set(layout_step["conflicts"]) == {"related_lists"}
    assert set(layout_step["changes"]) == set()                             # the roles changed here only
    # taking theirs would show the deleted rating field: refused, naming it, and nothing of the upgrade applied
    with pytest.raises(Exception) as refused:
        bundles.install(customer, ADMIN, edu_v2, default="new")
    assert refused.value.status == 422 and "related_lists.0.columns.3" in refused.value.fields
    assert customer.kinds.items("scoring_rule")["edu_exam_years"].data["points"] == 5
    assert "classroom" not in customer.cache.current().objects["trial_lesson"].fields
    from leadhub.cli import main
    monkeypatch.setenv("LEADHUB_DATABASE_URL", customer.config.database_url)
    monkeypatch.setenv("LEADHUB_INSTANCE_PATH", str(customer.config.instance_path))
    result = CliRunner().invoke(main, ["bundle", "upgrade", str(EXAMPLES / "edu_training" / "1.1.0")])
    assert result.exit_code != 0 and "scoring_rule/edu_exam_years" in result.output and "points" in result.output
    result = CliRunner().invoke(main, ["bundle", "upgrade", str(EXAMPLES / "edu_training" / "1.1.0"),
                                       "--resolve", "scoring_rule/edu_exam_years=local", "--keep-local"])
    assert result.exit_code == 0, result.output
    customer.cache.invalidate()
    reg = customer.cache.current()
    course = reg.objects["course_intent"].fields["course"]
    assert course.labels["zh_CN"] == "报读项目" and "japanese" in [o["value"] for o in course.settings["options"]]
    assert reg.items["scoring_rule"]["edu_exam_years"].data["points"] == 5
    assert reg.items["duplicate_rule"]["edu_mobile_grade"].data["window_months"] == 12
    assert "classroom" in reg.objects["trial_lesson"].fields and "rating" not in reg.objects["trial_lesson"].fields
    layout = customer.kinds.items("layout")["course_intent.课程顾问布局"].data
    assert layout["roles"] == ["sales_manager", "sales_rep"]                  # the school's layout kept
    assert "classroom" not in layout["related_lists"][0]["columns"]


def test_picklist_options_merge_option_by_option():
    def opt(value, zh):
        return {"value": value, "label": {"en": value, "zh_CN": zh}, "active": True}
    base = {"options": [opt("ielts", "雅思"), opt("toefl", "托福")]}
    local = {"options": [opt("ielts", "雅思"), opt("toefl", "托福"), opt("sat", "SAT")]}          # the school adds SAT
    new = {"options": [opt("ielts", "雅思考试"), opt("toefl", "托福"), opt("japanese", "日语")]}  # theirs: a label, 日语
    step = bundles.merge(base, local, new, "field/course_intent.course")
    assert step.action == "update"
    assert [(o["value"], o["label"]["zh_CN"]) for o in step.values["options"]] == [
        ("ielts", "雅思考试"), ("toefl", "托福"), ("sat", "SAT"), ("japanese", "日语")]
    clash = {"options": [opt("ielts", "雅思（本校）"), opt("toefl", "托福")]}                  # both relabel ielts
    assert bundles.merge(base, clash, new, "field/course_intent.course").action == "conflict"


def test_sample_records_travel_by_name_and_are_added_only_when_asked(consultant, customer, api):
    """Sample records go out with lookups as names; a fresh instance gets them
    only with with_samples, pointing at the right records there; a sample the
    record service refuses stops the whole install, naming the file and row."""
    rt = consultant
    intent = rt.records.create(ADMIN, "course_intent", {"student": "韩梅梅", "mobile": "13800138000",
                                                         "course": "ielts"})
    rt.records.create(ADMIN, "trial_lesson", {"intent": intent["id"]})
    made, _pulled = bundles.export(rt, ADMIN, bundles.Selection(objects=["course_intent", "trial_lesson"],
                                                                samples=["trial_lesson", "course_intent"]),
                                   name="edu_samples", version="1.0.0")
    again = bundles.read(bundles.write(made))
    assert again.samples["trial_lesson"] == [{"intent": "韩梅梅"}]        # the lookup by the intent's name
    assert again.samples["course_intent"][0]["course"] == "ielts"
    assert bundles.plan(customer, again)["sample_records"] == {"trial_lesson": 1, "course_intent": 1}

    plain = bundles.install(customer, ADMIN, again)
    assert plain["samples"] == 0 and customer.records.query(ADMIN, "course_intent", {})["records"] == []
    bundles.uninstall(customer, ADMIN, "edu_samples")
    customer.metadata.purge_object(ADMIN, "trial_lesson")
    customer.metadata.purge_object(ADMIN, "course_intent")

    done = bundles.install(customer, ADMIN, again, with_samples=True)
    assert done["samples"] == 2
    made_here = customer.records.query(ADMIN, "course_intent", {"fields": ["id", "student"]})["records"]
    lessons = customer.records.query(ADMIN, "trial_lesson", {"fields": ["intent"]})["records"]
    assert [r["student"] for r in made_here] == ["韩梅梅"] and lessons[0]["intent"] == made_here[0]["id"]


def test_a_refused_sample_record_installs_nothing(consultant, customer):
    made, _ = bundles.export(consultant, ADMIN, bundles.Selection(objects=["course_intent"]),
                             name="edu_bad", version="1.0.0")
    made.samples = {"course_intent": [{"student": "李雷", "course": "no_such_course"}]}
    bad = bundles.read(bundles.write(made))
    with pytest.raises(Exception) as refused:
        bundles.install(customer, ADMIN, bad, with_samples=True)
    assert refused.value.status == 400 and "samples/course_intent.yaml.1.course" in refused.value.fields
    assert "course_intent" not in customer.cache.current().objects
    assert bundles.installed_bundles(customer) == []
    made.samples = {"course_intent": [{"nope": 1}]}
    with pytest.raises(Exception) as refused:
        bundles.install(customer, ADMIN, bundles.read(bundles.write(made)), with_samples=True)
    assert "samples/course_intent.yaml.1.nope" in refused.value.fields
