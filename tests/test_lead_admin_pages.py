"""The lead plugin's admin pages (/admin/leads/) through the Flask test
client with a real browser session: admins only, every change through the
plugin's services (their messages beside the inputs, nothing saved on bad
input), the draft duplicate check, scans, the web form's snippet escaped,
CSRF on every form, zh_CN and en."""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from leadhub.data.query import QuerySpec
from leadhub.platform import auth
from leadhub.platform.permissions import Actor
from tests.conftest import count_rows
from tests.test_pages import PW, XSS, Browser

FENYANG = "北京纷扬科技有限公司"
PAGES = ("/admin/leads/", "/admin/leads/duplicate-rules", "/admin/leads/duplicate-rules/new",
         "/admin/leads/blacklists", "/admin/leads/scoring", "/admin/leads/scoring/rules/new",
         "/admin/leads/scoring/events/new", "/admin/leads/web-forms", "/admin/leads/web-forms/new",
         "/admin/leads/follow-up", "/admin/leads/follow-up/stats")

pytestmark = pytest.mark.plugins("lead")   # each test starts with the plugin installed


def speaking(app, login, language="en"):
    """A browser of `login` that chose `language` in the switcher."""
    b = Browser(app, login)
    assert b.post("/language", {"language": language, "back": "/"}).status_code == 302
    return b


@pytest.fixture
def site(api, app, runtime):
    admin_id = auth.user_id(runtime.db, "admin")
    runtime.org.update_user(auth.actor_for(runtime.db, runtime.cache, admin_id), admin_id, {"password": PW})
    r = api.post("/users", {"login": "rep", "name": "rep", "password": PW, "roles": ["sales_rep"]})
    assert r.status_code == 201, r.get_json()
    return {"admin": speaking(app, "admin"), "zh": speaking(app, "admin", "zh_CN"), "rep": Browser(app, "rep"),
            "runtime": runtime}


def lead(api, **values):
    r = api.post("/objects/lead/records", {"name": "张伟", **values})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


COMBINED = {"name": "company_city", "label": "Company and city", "active": "on", "action": "mark",
            "match_objects": "lead", "window_months": "24",
            "cond-0-field": "company", "cond-0-normaliser": "company_name", "cond-0-threshold": "85",
            "cond-1-field": "city", "cond-1-normaliser": "exact", "cond-1-threshold": ""}


def test_admins_only(site):
    rep = site["rep"]
    for url in PAGES:
        assert rep.get(url).status_code == 403, url
    assert rep.post("/admin/leads/duplicate-rules/new", COMBINED).status_code == 403
    assert rep.post("/admin/leads/blacklists", {"type": "keyword", "value": "spam"}).status_code == 403
    assert count_rows(site["runtime"], "lh_meta_items", "kind = 'duplicate_rule'") == 0
    assert count_rows(site["runtime"], "lh_meta_items", "kind = 'blacklist'") == 0
    for url in PAGES:
        assert site["admin"].get(url).status_code == 200, url
    # the designer's nav links here once the plugin is installed
    html = site["admin"].get("/admin/").text
    assert 'href="/admin/leads/"' in html and "Leads settings" in html


@pytest.mark.plugins("base")
def test_nav_has_no_link_before_the_plugin_is_installed(app, runtime):
    admin_id = auth.user_id(runtime.db, "admin")
    runtime.org.update_user(auth.actor_for(runtime.db, runtime.cache, admin_id), admin_id, {"password": PW})
    admin = speaking(app, "admin")
    assert "/admin/leads/" not in admin.get("/admin/").text
    assert admin.get("/admin/leads/").status_code == 404


def test_combined_rule_from_the_form_matches_a_shortened_company_name(site, api):
    admin = site["admin"]
    r = admin.post("/admin/leads/duplicate-rules/new", COMBINED)
    assert r.status_code == 302, r.text
    assert r.headers["Location"].endswith("/admin/leads/duplicate-rules/company_city")
    saved = api.get("/meta/duplicate-rules/company_city").get_json()
    assert saved["conditions"] == [{"field": "company", "normaliser": "company_name", "threshold": 85},
                                   {"field": "city", "normaliser": "exact", "threshold": None}]
    assert (saved["window_months"], saved["action"], saved["active"]) == (24, "mark", True)
    listing = admin.get("/admin/leads/duplicate-rules").text
    assert "company_city" in listing and "similarity ≥ 85" in listing
    original = lead(api, name="王总", company=FENYANG, province="beijing", city="beijing")
    page = admin.get("/admin/leads/duplicate-rules", query_string={
        "check": "1", "company": "纷扬科技", "province": "beijing", "city": "beijing"}).text
    result = page.split('id="check-result"')[1]
    assert "1 possible duplicates found." in result
    assert f'href="/o/lead/{original["id"]}"' in result and "王总" in result and FENYANG in result
    assert "company_city" in result and "Mark as duplicate" in result
    assert 'value="纷扬科技"' in page                      # the draft stays in the box
    page = admin.get("/admin/leads/duplicate-rules", query_string={
        "check": "1", "company": "纷扬科技", "province": "guangdong", "city": "shenzhen"}).text
    assert "No duplicates found." in page                    # another city: no match
    # a value the field refuses is named beside its input
    r = admin.get("/admin/leads/duplicate-rules", query_string={"check": "1", "mobile": "abc"})
    assert r.status_code == 400 and 'class="field has-error"' in r.text and "field-error" in r.text
    # editing keeps the name and changes the rest
    r = admin.post("/admin/leads/duplicate-rules/company_city", {**COMBINED, "action": "tag_only", "active": ""})
    assert r.status_code == 302
    saved = api.get("/meta/duplicate-rules/company_city").get_json()
    assert (saved["action"], saved["active"]) == ("tag_only", False)
    r = admin.post("/admin/leads/duplicate-rules/company_city/delete")
    assert r.status_code == 302 and api.get("/meta/duplicate-rules/company_city").status_code == 404


def test_bad_rule_input_is_shown_beside_the_field_and_nothing_is_saved(site):
    admin, rt = site["admin"], site["runtime"]
    r = admin.post("/admin/leads/duplicate-rules/new", {**COMBINED, "cond-0-threshold": "150"})
    assert r.status_code == 400
    row = r.text.split('id="c0-field"')[0].rsplit('<div class="cond-row', 1)[1] + r.text.split('id="c0-field"')[1]
    row = row.split('<div class="cond-row')[0]
    assert "has-error" in row and 'value="150"' in row
    assert "Must be greater than or equal to 50 and less than or equal to 100." in row
    assert count_rows(rt, "lh_meta_items", "kind = 'duplicate_rule'") == 0
    # no condition at all
    empty = {k: v for k, v in COMBINED.items() if not k.startswith("cond-")}
    r = admin.post("/admin/leads/duplicate-rules/new", empty)
    assert r.status_code == 400 and "Length must be between 1 and 5." in r.text.split("</legend>", 1)[1]
    # a similarity threshold without a field, a bad name, a company normaliser on a phone
    r = admin.post("/admin/leads/duplicate-rules/new", {
        **COMBINED, "name": "X!", "cond-0-field": "", "cond-1-field": "mobile", "cond-1-normaliser": "company_name"})
    assert r.status_code == 400
    assert "Use 2-40 lower-case letters" in r.text and 'value="X!"' in r.text
    # what was typed is quoted in messages as text
    r = admin.post("/admin/leads/duplicate-rules/new", {**COMBINED, "cond-0-field": XSS})
    assert r.status_code == 400 and XSS not in r.text and "No field &#39;&lt;script&gt;" in r.text
    assert count_rows(rt, "lh_meta_items", "kind = 'duplicate_rule'") == 0
    # zh_CN: the same page in Chinese with the marshmallow message translated
    r = site["zh"].post("/admin/leads/duplicate-rules/new", {**COMBINED, "cond-0-threshold": "150"})
    assert r.status_code == 400 and "相似度" in r.text and "必须大于或等于 50 且小于或等于 100。" in r.text


def test_scan_shows_duplicate_groups_with_links(site, api):
    admin = site["admin"]
    assert admin.post("/admin/leads/duplicate-rules/new", COMBINED).status_code == 302
    # duplicates made before the rule existed (tag_only: nothing is flagged on insert)
    assert api.patch("/meta/duplicate-rules/company_city", {"active": False}).status_code == 200
    ids = [lead(api, name=n, company=c, province="beijing", city="beijing")["id"]
           for n, c in (("甲", FENYANG), ("乙", "纷扬科技"), ("丙", "北京纷扬"), ("丁", "星空传媒"))]
    page = admin.get("/admin/leads/duplicate-rules/company_city").text
    assert "Start a scan" in page and "Last scan" not in page
    r = admin.post("/admin/leads/duplicate-rules/company_city/scan")
    assert r.status_code == 302 and r.headers["Location"].endswith("#scan")
    page = admin.get("/admin/leads/duplicate-rules/company_city").text
    scan = page.split('id="scan"')[1]
    assert "Done" in scan and "4 records read" in scan and "1 groups" in scan
    for rid in ids[:3]:
        assert f'href="/o/lead/{rid}"' in scan
    assert f'href="/o/lead/{ids[3]}"' not in scan


def test_blacklists_by_kind_add_delete_and_the_quarantine_link(site, api):
    admin, rt = site["admin"], site["runtime"]
    r = admin.post("/admin/leads/blacklists", {"type": "phone", "value": "138 0013 8000", "note": "spam"})
    assert r.status_code == 302 and r.headers["Location"].endswith("?type=phone")
    assert admin.post("/admin/leads/blacklists", {"type": "sensitive", "value": "赌博"}).status_code == 302
    phones = admin.get("/admin/leads/blacklists?type=phone").text
    assert "+8613800138000" in phones and "赌博" not in phones
    everything = admin.get("/admin/leads/blacklists").text
    assert "+8613800138000" in everything and "赌博" in everything
    # bad values: message beside the input, what was typed kept, nothing saved
    r = admin.post("/admin/leads/blacklists", {"type": "phone", "value": "12"})
    assert r.status_code == 400 and "Not a valid phone number." in r.text and 'value="12"' in r.text
    r = admin.post("/admin/leads/blacklists", {"type": "phone", "value": "13800138000"})
    assert r.status_code == 409 and "Already taken." in r.text
    assert count_rows(rt, "lh_meta_items", "kind = 'blacklist'") == 2
    # the quarantine is the shared list view of invalid leads
    link = re.search(r'href="([^"]+)" id="quarantine-link"', everything).group(1).replace("&amp;", "&")
    quarantined = lead(api, name="李四", mobile="13800138000")
    assert quarantined["status"] == "invalid"
    assert f'/o/lead/{quarantined["id"]}' in admin.get(link).text
    entry = api.get("/meta/blacklists?type=sensitive").get_json()["items"][0]
    assert admin.post(f"/admin/leads/blacklists/{entry['id']}/delete").status_code == 302
    assert count_rows(rt, "lh_meta_items", "kind = 'blacklist'") == 1


def test_scoring_rules_events_settings_and_rescore(site, api):
    admin, rt = site["admin"], site["runtime"]
    big = lead(api, company_size=800)
    before = api.get(f"/objects/lead/records/{big['id']}").get_json()["score"]
    shipped = count_rows(rt, "lh_meta_items", "kind = 'scoring_rule'")       # the plugin's own examples
    r = admin.post("/admin/leads/scoring/rules/new", {"label": "Big", "condition": "company_size >= ", "points": "20",
                                                      "active": "on"})
    assert r.status_code == 400 and "company_size &gt;= " in r.text
    assert re.search(r'id="r-cond".*?</textarea>\s*<p class="field-error"[^>]*>[^<]*line', r.text, re.S | re.I)
    assert count_rows(rt, "lh_meta_items", "kind = 'scoring_rule'") == shipped
    r = admin.post("/admin/leads/scoring/rules/new", {"label": "Big", "condition": "company_size >= 500",
                                                      "points": "20", "active": "on"})
    assert r.status_code == 302
    page = admin.get("/admin/leads/scoring").text
    assert "Every lead is being rescored" in page and "company_size &gt;= 500" in page and "+20" in page
    assert api.get(f"/objects/lead/records/{big['id']}").get_json()["score"] == before + 20  # jobs run inline
    r = admin.post("/admin/leads/scoring/events/new", {"key": "webinar", "label_en": "Attended a webinar",
                                                       "label_zh": "参加网络研讨会", "points": "30", "strength": "strong",
                                                       "active": "on"})
    assert r.status_code == 302
    r = admin.post("/admin/leads/scoring/events/new", {"key": "Bad Key", "label_en": "x", "points": "x",
                                                       "strength": "strong"})
    assert r.status_code == 400 and "Not a valid integer." in r.text and 'value="Bad Key"' in r.text
    page = admin.get("/admin/leads/scoring").text
    assert 'href="/admin/leads/scoring/events/webinar"' in page and "Attended a webinar" in page
    # settings: bands must descend; the message sits by the grades
    r = admin.post("/admin/leads/scoring/settings", {"half_life_days": "30", "grade_A": "10", "grade_B": "50",
                                                     "grade_C": "5", "mql_threshold": ""})
    assert r.status_code == 400 and "Must descend: A &gt; B &gt; C." in r.text and 'value="50"' in r.text
    r = admin.post("/admin/leads/scoring/settings", {"half_life_days": "14", "grade_A": "80", "grade_B": "50",
                                                     "grade_C": "20", "mql_threshold": "60"})
    assert r.status_code == 302
    assert api.get("/meta/scoring-settings").get_json()["grades"] == {"A": 80, "B": 50, "C": 20}
    r = admin.post("/admin/leads/scoring/rescore")
    assert r.status_code == 302
    page = admin.get("/admin/leads/scoring").text
    job = re.search(r'data-url="/api/v1/meta/scoring-rules/rescore/(\d+)"', page).group(1)
    assert api.get(f"/meta/scoring-rules/rescore/{job}").get_json()["status"] == "finished"
    assert "<progress" in page and "lead_admin.js" in page and "Done" in page.split('id="rescore-progress"')[1]


def test_web_form_with_its_snippet_escaped_and_a_live_preview(site, api, app):
    admin, rt = site["admin"], site["runtime"]
    r = admin.post("/admin/leads/web-forms/new", {"name": "官网咨询", "source": "website", "language": "zh_CN",
                                                  "active": "on", "field-name": "on", "field-mobile": "on",
                                                  "required-mobile": "on"})
    assert r.status_code == 302, r.text
    form_id = int(r.headers["Location"].rsplit("/", 1)[1])
    form = api.get(f"/meta/web-forms/{form_id}").get_json()
    assert [(f["field"], f["required"]) for f in form["fields"]] == [("name", True), ("mobile", True)]
    assert form["source"] == "website" and form["active"] is True
    # a label with markup (set over the API) stays text in the snippet and on the page
    fields = [{"field": "name", "required": True, "label": {"en": XSS, "zh_CN": XSS}}, {"field": "mobile"}]
    assert api.patch(f"/meta/web-forms/{form_id}", {"fields": fields}).status_code == 200
    page = admin.get(f"/admin/leads/web-forms/{form_id}").text
    snippet = page.split('id="snippet"')[1].split("</textarea>")[0]
    assert "&lt;form id=&#34;lh-form-" in snippet and "<form" not in snippet and "<script" not in snippet
    assert "&amp;lt;script&amp;gt;" in snippet                  # escaped in the snippet, then on the page
    assert XSS not in page and 'data-copy="snippet"' in page
    preview = re.search(r'href="([^"]+)" target="_blank" rel="noopener" id="preview-link"', page).group(1)
    assert preview.endswith(f"/forms/{form['public_key']}")
    hosted = app.test_client().get(preview.split("localhost", 1)[-1])
    assert hosted.status_code == 200 and "lh_website" in hosted.text
    # editing keeps the labels set elsewhere; a form without fields is refused beside the fields
    r = admin.post(f"/admin/leads/web-forms/{form_id}", {"name": "官网咨询", "source": "website", "language": "en",
                                                         "active": "on", "field-name": "on", "field-mobile": "on"})
    assert r.status_code == 302
    form = api.get(f"/meta/web-forms/{form_id}").get_json()
    assert form["language"] == "en" and form["fields"][0]["label"] == {"en": XSS, "zh_CN": XSS}
    r = admin.post(f"/admin/leads/web-forms/{form_id}", {"name": "", "source": "nope", "language": "en"})
    assert r.status_code == 400
    assert "1-100 characters." in r.text and "Must be one of lead.source" in r.text
    assert "A non-empty list of {field, required, label}." in r.text
    assert api.get(f"/meta/web-forms/{form_id}").get_json()["name"] == "官网咨询"
    assert "官网咨询" in admin.get("/admin/leads/web-forms").text
    assert admin.post(f"/admin/leads/web-forms/{form_id}/delete").status_code == 302
    assert count_rows(rt, "lh_meta_items", "kind = 'web_form'") == 0 and count_rows(rt, "lh_web_form_keys") == 0


def test_follow_up_rules_per_status_and_the_timeliness_table(site, api, runtime):
    admin = site["admin"]
    r = admin.post("/admin/leads/follow-up/rules", {"status": "new", "hours": "24", "remind_before_hours": "2",
                                                    "active": "on"})
    assert r.status_code == 302
    rules = api.get("/meta/follow-up-rules").get_json()["items"]
    assert [(x["status"], x["hours"], x["remind_before_hours"], x["active"]) for x in rules] == [("new", 24, 2, True)]
    r = admin.post("/admin/leads/follow-up/rules", {"status": "new", "rule_id": str(rules[0]["id"]), "hours": "4",
                                                    "remind_before_hours": "6", "active": "on"})
    assert r.status_code == 400
    row = r.text.split('id="status-new"')[1].split("</tr>")[0]
    assert "Must be less than hours." in row and 'value="6"' in row
    assert api.get("/meta/follow-up-rules").get_json()["items"][0]["hours"] == 24
    r = admin.post("/admin/leads/follow-up/rules", {"status": "following", "hours": "abc"})
    assert r.status_code == 400 and "Not a valid integer." in r.text.split('id="status-following"')[1].split("</tr>")[0]
    # the stats: a lead owned by the admin, due tomorrow, not yet followed up
    lead(api, name="赵六")
    today = dt.date.today()
    page = admin.get(f"/admin/leads/follow-up/stats?from={today - dt.timedelta(days=1)}"
                     f"&to={today + dt.timedelta(days=3)}").text
    table = page.split('id="timeliness"')[1]
    assert "Admin" in table and "<td data-label=\"Leads due\">1</td>" in table
    assert admin.get("/admin/leads/follow-up/stats?from=2030-01-02&to=2030-01-01").status_code == 400
    assert admin.post(f"/admin/leads/follow-up/rules/{rules[0]['id']}/delete").status_code == 302
    assert api.get("/meta/follow-up-rules").get_json()["items"] == []


def test_pages_in_chinese(site):
    zh = site["zh"]
    assert "线索设置" in zh.get("/admin/").text
    index = zh.get("/admin/leads/").text
    assert "线索设置" in index and "查重规则" in index and "黑名单与敏感词" in index and "网页表单" in index
    assert "新建查重规则" in zh.get("/admin/leads/duplicate-rules").text
    assert "评分" in zh.get("/admin/leads/scoring").text
    assert "跟进时限" in zh.get("/admin/leads/follow-up").text


def test_forms_need_the_csrf_token(site):
    admin, rt = site["admin"], site["runtime"]
    tables = ("lh_meta_items", "lh_meta_history", "lh_web_form_keys", "lh_score_jobs")
    before = {table: count_rows(rt, table) for table in tables}
    for url, data in (("/admin/leads/duplicate-rules/new", COMBINED),
                      ("/admin/leads/blacklists", {"type": "keyword", "value": "spam"}),
                      ("/admin/leads/scoring/rules/new", {"label": "x", "condition": "true", "points": "1"}),
                      ("/admin/leads/web-forms/new", {"name": "x", "source": "website", "field-name": "on"}),
                      ("/admin/leads/follow-up/rules", {"status": "new", "hours": "24"}),
                      ("/admin/leads/scoring/rescore", {})):
        assert admin.post(url, data, csrf=False).status_code == 400, url
        assert admin.post(url, {**data, "csrf_token": "forged"}, csrf=False).status_code == 400, url
    assert {table: count_rows(rt, table) for table in tables} == before
    # every form on the pages carries the token
    for url in PAGES:
        html = admin.get(url).text
        assert html.count("<form") == html.count('name="csrf_token"') + html.count('method="get"'), url


@pytest.mark.plugins("base")
def test_catalog_covers_the_lead_pages():
    root = Path(__file__).resolve().parent.parent / "leadhub"
    pattern = re.compile(r'''_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')''')
    lead_dir = root / "plugins" / "lead" / "web"
    marked = set()
    for path in list((lead_dir / "templates").glob("**/*.html")) + [lead_dir / "admin_pages.py",
                                                                    lead_dir / "record_panels.py"]:
        for m in pattern.finditer(path.read_text(encoding="utf-8")):
            marked.add(m.group(1) if m.group(1) is not None else m.group(2))
    from leadhub.plugins.lead.web import admin_pages as ap
    for labels in (ap.ACTION_LABELS, ap.NORMALISER_LABELS, ap.BLACKLIST_LABELS, ap.STRENGTH_LABELS,
                   ap.JOB_STATUS_LABELS):
        marked |= set(labels.values())
    from leadhub.plugins.lead.web import record_panels
    marked |= {ap.NAV_LABEL, record_panels.TITLE}
    from leadhub.web.pages.i18n import catalog as load_catalog
    catalog = load_catalog("zh_CN")
    assert len(marked) > 100
    assert sorted(marked - set(catalog)) == []


def test_search_names_where_it_matched_as_people_do(site, api):
    lead(api, company=FENYANG)
    html = site["zh"].get("/search?q=纷扬").text
    hit = html.split('class="hits"')[1].split("</ul>")[0]
    assert "公司" in hit and "company" not in hit and "标准化" not in hit     # not the derived key fields
