"""Build the example industry templates the way a consultant would: define
the metadata in a scratch instance (here through the services; in the
browser or over REST it is the same calls), then export it with the bundle
export. Writes one folder per bundle version next to this script:

    python3 bundles/make_examples.py

edu_training 1.0.0 and 1.1.0 are the fixtures of the upgrade tests (1.1.0
changes what a consultant's next release typically changes: an option, a
length, a new field, a rule's window and points)."""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from leadhub.metadata import bundles  # noqa: E402
from leadhub.platform import auth  # noqa: E402
from leadhub.platform.config import Config  # noqa: E402
from leadhub.platform.permissions import Actor  # noqa: E402
from leadhub.runtime import Runtime  # noqa: E402

ADMIN = Actor.system()


def L(en: str, zh: str) -> dict:
    return {"en": en, "zh_CN": zh}


def options(*pairs: tuple[str, str, str]) -> list[dict]:
    return [{"value": v, "label": L(en, zh)} for v, en, zh in pairs]


EDU = {"name": "edu_training", "label": L("Education and training", "教育培训行业模板"), "publisher": "leadhub examples",
       "description": "Course-intent pipeline for training schools: intents with their layout and a shared "
                      "call-back view, trial lessons, a duplicate rule, a scoring rule on the lead's grade and a "
                      "validation rule."}
MFG = {"name": "b2b_manufacturing", "label": L("B2B manufacturing", "B2B 制造业模板"), "publisher": "leadhub examples",
       "description": "Products and sample requests for manufacturers selling to businesses, with a company "
                      "duplicate rule and capacity scoring."}


def build_edu(rt: Runtime, version: str) -> bundles.Bundle:
    md, kinds = rt.metadata, rt.kinds
    md.add_field(ADMIN, "lead", {"api_name": "grade_level", "label": L("Grade", "年级"), "type": "text",
                                 "max_length": 20, "indexed": True})
    md.create_object(ADMIN, {"api_name": "course_intent", "label": L("Course intent", "学员意向"), "fields": [
        {"api_name": "student", "label": L("Student", "学员姓名"), "type": "text", "required": True,
         "max_length": 80 if version >= "1.1" else 60},
        {"api_name": "mobile", "label": L("Mobile", "手机"), "type": "phone", "indexed": True},
        {"api_name": "parent_name", "label": L("Parent", "家长姓名"), "type": "text", "max_length": 60},
        {"api_name": "grade", "label": L("Grade", "年级"), "type": "picklist", "options": options(
            ("primary", "Primary school", "小学"), ("junior", "Junior high", "初中"),
            ("senior", "Senior high", "高中"), ("college", "College", "大学"), ("adult", "Adult", "成人"))},
        {"api_name": "course", "label": L("Course", "意向课程"), "type": "picklist", "options": options(
            ("ielts", "IELTS", "雅思"), ("toefl", "TOEFL", "托福"), ("kids_english", "Kids' English", "少儿英语"),
            ("coding", "Coding", "少儿编程"), *([("japanese", "Japanese", "日语")] if version >= "1.1" else []))},
        {"api_name": "budget", "label": L("Budget", "预算"), "type": "currency"},
        {"api_name": "source_lead", "label": L("Source lead", "源线索"), "type": "lookup", "reference_to": "lead"},
        {"api_name": "consultant", "label": L("Course consultant", "课程顾问"), "type": "user"},
        {"api_name": "stage", "label": L("Stage", "意向阶段"), "type": "picklist", "options": options(
            ("new", "New", "新意向"), ("invited", "Invited", "已邀约"), ("trialled", "Trial taken", "已试听"),
            ("enrolled", "Enrolled", "已报名"), ("lost", "Lost", "已流失"))},
        {"api_name": "next_visit", "label": L("Next call", "下次回访"), "type": "date"},
    ], "name_field": "student"})
    md.create_object(ADMIN, {"api_name": "trial_lesson", "label": L("Trial lesson", "试听课"), "fields": [
        {"api_name": "intent", "label": L("Course intent", "学员意向"), "type": "lookup",
         "reference_to": "course_intent", "required": True},
        {"api_name": "lesson_at", "label": L("Lesson time", "试听时间"), "type": "datetime"},
        {"api_name": "teacher", "label": L("Teacher", "试听老师"), "type": "text", "max_length": 60},
        {"api_name": "attended", "label": L("Attended", "是否到场"), "type": "boolean"},
        {"api_name": "rating", "label": L("Satisfaction (1-5)", "满意度（1-5）"), "type": "integer"},
        {"api_name": "feedback", "label": L("Feedback", "试听反馈"), "type": "long_text"},
        *([{"api_name": "classroom", "label": L("Classroom", "教室"), "type": "text", "max_length": 40}]
          if version >= "1.1" else []),
    ]})
    kinds.create(ADMIN, "duplicate_rule", {
        "name": "edu_mobile_grade", "label": "同手机同年级", "window_months": 12 if version >= "1.1" else 6,
        "conditions": [{"field": "mobile", "normaliser": "e164"}, {"field": "grade_level", "normaliser": "exact"}]})
    kinds.create(ADMIN, "scoring_rule", {"name": "edu_exam_years", "label": "升学年级（初三、高三）",
                                         "condition": "grade_level in ['初三', '高三']",
                                         "points": 20 if version >= "1.1" else 15})
    admin = _admin(rt)
    rt.layouts.create_layout(ADMIN, "course_intent", {"name": "课程顾问布局", "default": True, "sections": [
        {"key": "student", "title": L("Student", "学员信息"), "columns": 2,
         "fields": ["student", "mobile", "parent_name", "grade"]},
        {"key": "intent", "title": L("Intent", "意向"), "columns": 2,
         "fields": ["course", "stage", "budget", "consultant", "next_visit", "source_lead"]}],
        "related_lists": [{"object": "trial_lesson", "field": "intent", "title": L("Trial lessons", "试听课"),
                           "columns": ["lesson_at", "teacher", "attended", "rating",
                                       *(["classroom"] if version >= "1.1" else [])], "sort": ["-lesson_at"]}]})
    rt.layouts.assign(ADMIN, "course_intent", {"sales_rep": rt.layouts.list_layouts("course_intent")[0]["id"]})
    rt.layouts.create_list_view(admin, "course_intent", {
        "name": L("To call back this week", "本周待回访"), "shared": True, "position": 1,
        "columns": ["student", "mobile", "course", "stage", "next_visit", "consultant"],
        "filter": {"field": "next_visit", "op": "this_week"}, "sort": ["next_visit"]})
    rt.functions.create(ADMIN, {"api_name": "edu_need_contact", "label": L("A way to reach the family", "需要联系方式"),
                                "kind": "validation", "object": "course_intent", "error_field": "mobile",
                                "condition": "mobile is None and parent_name is None",
                                "message": "请填写学员手机或家长姓名"})
    # sample records, so the template shows what it is for where it is installed with them
    meimei = rt.records.create(ADMIN, "course_intent", {
        "student": "韩梅梅", "mobile": "13800138001", "grade": "senior", "course": "ielts", "stage": "invited",
        "budget": "28000.00", "next_visit": "2026-03-10"})
    rt.records.create(ADMIN, "course_intent", {"student": "李雷", "parent_name": "李爸爸", "grade": "junior",
                                               "course": "kids_english", "stage": "new"})
    rt.records.create(ADMIN, "trial_lesson", {"intent": meimei["id"], "lesson_at": "2026-03-07T10:00:00+08:00",
                                              "teacher": "王老师", "attended": True, "rating": 5,
                                              "feedback": "口语基础好，建议报雅思 6.5 冲刺班"})
    made, _ = bundles.export(rt, ADMIN, bundles.Selection(objects=["course_intent", "trial_lesson"], items=[
        "duplicate_rule/edu_mobile_grade", "scoring_rule/edu_exam_years", "function/edu_need_contact"],
        samples=["course_intent", "trial_lesson"]), version=version, **EDU)
    return made


def build_mfg(rt: Runtime, version: str) -> bundles.Bundle:
    md, kinds = rt.metadata, rt.kinds
    md.add_field(ADMIN, "lead", {"api_name": "annual_capacity", "label": L("Annual capacity (units)", "年产能（件）"),
                                 "type": "integer"})
    md.add_field(ADMIN, "lead", {"api_name": "purchase_cycle", "label": L("Purchase cycle", "采购周期"),
                                 "type": "picklist", "options": options(
                                     ("monthly", "Monthly", "每月"), ("quarterly", "Quarterly", "每季度"),
                                     ("yearly", "Yearly", "每年"), ("project", "Per project", "按项目"))})
    md.create_object(ADMIN, {"api_name": "product", "label": L("Product", "产品"), "fields": [
        {"api_name": "product_name", "label": L("Product name", "产品名称"), "type": "text", "required": True,
         "max_length": 120},
        {"api_name": "model", "label": L("Model", "型号"), "type": "text", "max_length": 60, "unique": True},
        {"api_name": "category", "label": L("Category", "产品类别"), "type": "picklist", "options": options(
            ("machining", "Machining", "机加工件"), ("electronics", "Electronics", "电子元器件"),
            ("plastics", "Plastics", "塑料件"), ("assemblies", "Assemblies", "组件总成"))},
        {"api_name": "unit_price", "label": L("Unit price", "单价"), "type": "currency"},
        {"api_name": "moq", "label": L("Minimum order", "起订量"), "type": "integer"},
    ], "name_field": "product_name"})
    md.create_object(ADMIN, {"api_name": "sample_request", "label": L("Sample request", "样品申请"), "fields": [
        {"api_name": "product", "label": L("Product", "产品"), "type": "lookup", "reference_to": "product",
         "required": True},
        {"api_name": "lead", "label": L("Lead", "线索"), "type": "lookup", "reference_to": "lead"},
        {"api_name": "quantity", "label": L("Quantity", "数量"), "type": "integer"},
        {"api_name": "requested_on", "label": L("Requested on", "申请日期"), "type": "date"},
        {"api_name": "state", "label": L("State", "状态"), "type": "picklist", "options": options(
            ("pending", "Pending review", "待审核"), ("shipped", "Shipped", "已寄出"),
            ("feedback", "Feedback received", "已反馈"))},
        {"api_name": "feedback", "label": L("Customer feedback", "客户反馈"), "type": "long_text"},
    ]})
    kinds.create(ADMIN, "duplicate_rule", {
        "name": "mfg_company_city", "label": "同公司同城市", "window_months": 6,
        "conditions": [{"field": "company", "normaliser": "company_name", "threshold": 85},
                       {"field": "city", "normaliser": "exact"}]})
    kinds.create(ADMIN, "scoring_rule", {"name": "mfg_big_capacity", "label": "年产能十万件以上",
                                         "condition": "annual_capacity >= 100000", "points": 20})
    made, _ = bundles.export(rt, ADMIN, bundles.Selection(objects=["product", "sample_request"], items=[
        "duplicate_rule/mfg_company_city", "scoring_rule/mfg_big_capacity"],
        fields=["lead.purchase_cycle"]), version=version, **MFG)
    return made


def _admin(rt: Runtime) -> Actor:
    """Shared list views belong to a user: the scratch instance's admin."""
    uid = auth.create_user(rt.db, "consultant", "Consultant", is_admin=True)
    return Actor(user_id=uid, login="consultant", is_admin=True)


def scratch(build, version: str) -> bundles.Bundle:
    with tempfile.TemporaryDirectory() as tmp:
        rt = Runtime(Config(instance_path=Path(tmp), database_url=f"sqlite:///{tmp}/scratch.db", redis_url=None,
                            secret_key="scratch"))
        try:
            rt.upgrade_db()
            rt.plugins.install("lead")
            return build(rt, version)
        finally:
            rt.close()


EXAMPLES = [(build_edu, "edu_training", "1.0.0"), (build_edu, "edu_training", "1.1.0"),
            (build_mfg, "b2b_manufacturing", "1.0.0")]


def main() -> None:
    for build, name, version in EXAMPLES:
        folder = HERE / name / version
        shutil.rmtree(folder, ignore_errors=True)
        made = scratch(build, version)
        bundles.write_dir(made, folder)
        print(f"{folder.relative_to(HERE.parent)}: {len(made.entries)} entries, requires {made.requires}")


if __name__ == "__main__":
    main()
