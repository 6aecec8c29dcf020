"""The generated pages through the Flask test client, signed in with a real
browser session: rights exactly as the API's, escaping, CSRF, language,
validation messages beside the field, the list's filter and pages from the
query string, bulk actions and the designer."""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from leadhub.platform import auth
from tests.conftest import prepared

PW = "pages-pass-1"
XSS = "<script>alert(1)</script>"


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


class Browser:
    """A test client with a signed-in session and the page's CSRF token."""

    def __init__(self, app, login, headers=None):
        self.client = app.test_client()
        self.headers = headers or {}
        page = self.client.get("/login", headers=self.headers)
        r = self.client.post("/login", data={"login": login, "password": PW, "csrf_token": csrf_of(page.text),
                                             "next": "/"}, headers=self.headers)
        assert r.status_code == 302, r.text
        self.csrf = csrf_of(self.client.get("/", headers=self.headers).text)

    def get(self, url, **kw):
        return self.client.get(url, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def post(self, url, data=None, csrf=True, **kw):
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.csrf)
        return self.client.post(url, data=data, headers=self.headers, **kw)


@prepared()
def pages_crm(api, app, runtime, make_object):
    """A deal object with every widget-relevant type, an account it looks up,
    a note child; a rep role that cannot see `secret` and may only read
    `stage`; an admin and two reps with records of their own."""
    make_object("account", [{"api_name": "name", "label": {"en": "Name", "zh_CN": "名称"}, "type": "text"}],
                name_field="name")
    make_object("deal", [
        {"api_name": "title", "label": {"en": "Title", "zh_CN": "标题"}, "type": "text", "required": True},
        {"api_name": "email", "label": {"en": "Email", "zh_CN": "邮箱"}, "type": "email"},
        {"api_name": "amount", "label": "Amount", "type": "currency", "precision": 12, "scale": 2},
        {"api_name": "stage", "label": {"en": "Stage", "zh_CN": "阶段"}, "type": "picklist",
         "options": [{"value": "open", "label": {"en": "Open", "zh_CN": "进行中"}}, "won", "lost"]},
        {"api_name": "province", "label": "Province", "type": "picklist", "options": ["guangdong", "zhejiang"]},
        {"api_name": "city", "label": "City", "type": "dependent_picklist", "controlling_field": "province",
         "options": ["shenzhen", "hangzhou"], "dependency": {"guangdong": ["shenzhen"], "zhejiang": ["hangzhou"]}},
        {"api_name": "tags", "label": "Tags", "type": "multi_picklist", "options": ["vip", "hot"]},
        {"api_name": "won", "label": "Won", "type": "boolean"},
        {"api_name": "close_date", "label": "Close", "type": "date"},
        {"api_name": "met_at", "label": "Met", "type": "datetime"},
        {"api_name": "account", "label": "Account", "type": "lookup", "reference_to": "account"},
        {"api_name": "deal_no", "label": "No.", "type": "auto_number", "pattern": "D-{0000}"},
        {"api_name": "doubled", "label": "Doubled", "type": "formula", "return_type": "currency",
         "expression": "amount * 2"},
        {"api_name": "secret", "label": {"en": "Secret", "zh_CN": "机密"}, "type": "text", "track_history": True},
    ], name_field="title")
    make_object("note", [{"api_name": "body", "label": "Body", "type": "text"},
                         {"api_name": "deal", "label": "Deal", "type": "lookup", "reference_to": "deal"}],
                name_field="body")
    assert api.post("/roles", {"api_name": "rep", "label": "Rep", "objects": {
        "*": {"create": True, "read": True, "edit": True, "scope": "own", "fields": {"owner": "read"}},
        "account": {"read": True, "scope": "all"},
        "deal": {"create": True, "read": True, "edit": True, "delete": True, "export": True, "scope": "own",
                 "fields": {"owner": "read", "secret": "hidden", "stage": "read"}}}}).status_code == 201
    admin_id = auth.user_id(runtime.db, "admin")
    runtime.org.update_user(auth.actor_for(runtime.db, runtime.cache, admin_id), admin_id, {"password": PW})
    for login, lang in (("rep_a", "zh_CN"), ("rep_b", "en")):
        assert api.post("/users", {"login": login, "name": login, "password": PW, "roles": ["rep"],
                                   "language": lang}).status_code == 201
    acc = api.post("/objects/account/records", {"name": XSS}).get_json()["id"]
    deal = api.post("/objects/deal/records", {"title": XSS, "secret": "TOPSECRET", "stage": "open",
                                              "account": acc, "amount": "12.5"}).get_json()["id"]
    api.post("/objects/note/records", {"body": "first note", "deal": deal})
    a = Browser(app, "rep_a")
    b = Browser(app, "rep_b")
    rec_a = [a.post("/o/deal/new", {"title": f"A{i:02d}", "amount": f"{i}.5", "province": "guangdong"})
             for i in range(30)]
    assert all(r.status_code == 302 for r in rec_a), rec_a[0].text
    rid_b = int(b.post("/o/deal/new", {"title": "B-only"}).headers["Location"].rsplit("/", 1)[1])
    return {"deal": deal, "account": acc, "rid_b": rid_b}


@pytest.fixture
def crm(pages_crm, app, runtime):
    return {"admin": Browser(app, "admin"), "a": Browser(app, "rep_a"), "b": Browser(app, "rep_b"),
            **pages_crm, "runtime": runtime}


def test_pages_need_a_session(app):
    client = app.test_client()
    for url in ("/", "/o/deal", "/admin/", "/search?q=x"):
        r = client.get(url)
        assert r.status_code == 302 and r.headers["Location"].startswith("/login"), url


def test_hidden_field_is_absent_everywhere_for_the_rep(crm, api):
    a, admin = crm["a"], crm["admin"]
    rid = int(re.search(r'class="open" href="/o/deal/(\d+)"', a.get("/o/deal?sort=title").text).group(1))
    a.post(f"/o/deal/{rid}/edit", {"title": "A00"})
    api.patch(f"/objects/deal/records/{rid}", {"secret": "hush-hush"})
    for url in ("/o/deal", f"/o/deal/{rid}", f"/o/deal/{rid}/edit", "/o/deal/new"):
        html = a.get(url).text
        assert "机密" not in html and 'data-field="secret"' not in html and "hush-hush" not in html, url
    assert "secret" not in a.get("/o/deal").text.split('id="field-catalog"')[1]
    # the admin sees it
    assert "hush-hush" in admin.get(f"/o/deal/{rid}").text
    # naming it in the address is refused, not silently shown
    assert a.get("/o/deal?columns=title,secret").status_code == 200
    assert "hush-hush" not in a.get("/o/deal?columns=title,secret").text
    r = a.get("/o/deal?filter=" + quote(json.dumps({"field": "secret", "op": "eq", "value": "hush-hush"})))
    assert r.status_code == 403


def test_read_only_field_is_shown_not_editable(crm, api):
    a = crm["a"]
    rid = int(a.post("/o/deal/new", {"title": "ro"}).headers["Location"].rsplit("/", 1)[1])
    api.patch(f"/objects/deal/records/{rid}", {"stage": "won"})
    html = a.get(f"/o/deal/{rid}/edit").text
    stage = html.split('data-field="stage"')[1].split("</div>")[0]
    assert "<output" in stage and "won" in stage and "<select" not in stage
    # a forged post of the read-only field changes nothing
    r = a.post(f"/o/deal/{rid}/edit", {"title": "ro", "stage": "lost"})
    assert r.status_code == 302
    assert api.get(f"/objects/deal/records/{rid}").get_json()["stage"] == "won"
    # computed fields are shown read-only too
    assert 'data-field="deal_no" data-widget="readonly"' in html
    assert 'data-field="doubled" data-widget="readonly"' in html


def test_out_of_scope_record_is_404(crm):
    a, rid_b = crm["a"], crm["rid_b"]
    for url in (f"/o/deal/{rid_b}", f"/o/deal/{rid_b}/edit"):
        assert a.get(url).status_code == 404
    assert a.post(f"/o/deal/{rid_b}/edit", {"title": "mine"}).status_code == 404
    assert a.post(f"/o/deal/{rid_b}/delete").status_code == 404
    assert crm["b"].get(f"/o/deal/{rid_b}").status_code == 200
    assert "B-only" not in a.get("/o/deal").text
    assert a.get("/o/nosuchobject").status_code == 404


def test_non_admin_gets_403_in_the_designer(crm):
    a = crm["a"]
    for url in ("/admin/", "/admin/objects/deal", "/admin/objects/deal/layouts", "/admin/objects/deal/views"):
        r = a.get(url)
        assert r.status_code == 403 and "只有管理员可以执行此操作。" in r.text, url    # in her language
    assert a.post("/admin/objects", {"api_name": "x", "label_en": "X"}).status_code == 403
    assert crm["admin"].get("/admin/").status_code == 200


def test_names_stay_text(crm):
    admin, deal = crm["admin"], crm["deal"]
    for url in (f"/o/deal/{deal}", "/o/deal", f"/o/account/{crm['account']}", f"/o/deal/{deal}/edit",
                "/search?q=script"):
        html = admin.get(url).text
        assert XSS not in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url
    # inside JSON embedded in the page too
    r = admin.get("/o/deal?filter=" + quote(json.dumps({"field": "title", "op": "eq", "value": XSS})))
    assert r.status_code == 200 and XSS not in r.text and "\\u003cscript\\u003e" in r.text


def test_forms_without_the_csrf_token_are_refused(crm, api):
    a = crm["a"]
    before = api.get("/objects/deal/records?count=true").get_json()["total"]
    r = a.post("/o/deal/new", {"title": "forged"}, csrf=False)
    assert r.status_code == 400 and "表单已过期，请刷新页面后重试。" in r.text     # a page, in the reader's language
    r = a.post("/o/deal/new", {"title": "forged", "csrf_token": "wrong"}, csrf=False)
    assert r.status_code == 400
    assert api.get("/objects/deal/records?count=true").get_json()["total"] == before
    assert crm["admin"].post("/admin/objects", {"api_name": "forged", "label_en": "F"}, csrf=False).status_code == 400
    # every form on a page carries the token
    html = crm["admin"].get(f"/o/deal/{crm['deal']}").text
    assert html.count("<form") == html.count('name="csrf_token"') + html.count('method="get"')


def test_language_follows_choice_then_user_then_browser(crm, app):
    a, b = crm["a"], crm["b"]
    assert "新建" in a.get("/o/deal").text                 # rep_a's setting: zh_CN
    assert ">New<" in b.get("/o/deal").text                # rep_b's setting: en
    assert "阶段" in a.get("/o/deal/new").text and "Stage" in b.get("/o/deal/new").text
    anon = app.test_client()
    assert "Sign in to leadhub" in anon.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"}).text
    assert "登录 leadhub" in anon.get("/login", headers={"Accept-Language": "zh-CN"}).text
    assert "登录 leadhub" in app.test_client().get("/login").text    # nothing said: zh_CN
    # the switcher wins for this browser
    assert a.post("/language", {"language": "en", "back": "/o/deal"}).status_code == 302
    assert ">New<" in a.get("/o/deal").text
    rt = crm["runtime"]
    assert rt.org.get_user(auth.user_id(rt.db, "rep_a"))["language"] == "en"   # kept as his setting
    assert a.post("/language", {"language": "xx"}).status_code == 400
    assert a.post("/language", {"language": "en"}, csrf=False).status_code == 400


def test_catalog_covers_every_marked_string():
    root = Path(__file__).resolve().parent.parent / "leadhub" / "web"
    pattern = re.compile(r'''_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')''')
    marked = set()
    for path in list(root.glob("templates/**/*.html")) + list(root.glob("pages/*.py")):
        for m in pattern.finditer(path.read_text(encoding="utf-8")):
            marked.add(m.group(1) if m.group(1) is not None else m.group(2))
    from leadhub.web.pages import admin, bundles, kinds, records
    marked |= set(records.OPERATOR_LABELS.values()) | set(admin.TYPE_LABELS.values()) | set(admin.SETTING_LABELS.values())
    marked |= set(kinds.ACTION_LABELS.values()) | set(bundles.ACTION_LABELS.values())
    from leadhub.web.pages.i18n import catalog as load_catalog
    catalog = load_catalog("zh_CN")
    assert len(marked) > 200
    assert sorted(marked - set(catalog)) == []
    for source, text in catalog.items():   # placeholders survive translation
        assert sorted(re.findall(r"%\((\w+)\)s", source)) == sorted(re.findall(r"%\((\w+)\)s", text)), source


def test_validation_errors_show_beside_the_field(crm, api):
    a = crm["a"]
    r = a.post("/o/deal/new", {"title": "", "email": "not-an-email", "province": "zhejiang", "city": "shenzhen",
                               "amount": "1.234"})
    assert r.status_code == 422
    html = r.text
    def error_of(field):
        block = html.split(f'data-field="{field}"')[1].split('<div class="field')[0]
        m = re.search(r'class="field-error"[^>]*>([^<]+)<', block)
        return m.group(1) if m else None
    assert error_of("title") == "此字段为必填项。"
    assert error_of("email") == "不是有效的邮箱地址。"
    assert error_of("city") and "shenzhen" in error_of("city")
    assert error_of("amount") and "2" in error_of("amount")
    assert 'value="not-an-email"' in html            # what was typed is kept
    # layout-required fields are checked by the page too
    svc = api.post("/meta/objects/deal/layouts", {"name": "strict", "default": True, "sections": [
        {"key": "main", "fields": [{"field": "title", "required": True}, {"field": "email", "required": True}]}]})
    assert svc.status_code == 201, svc.get_json()
    r = a.post("/o/deal/new", {"title": "x"})
    assert r.status_code == 422 and "此字段为必填项" in r.text.split('data-field="email"')[1]


def test_a_form_saved_after_someone_else_changed_the_record_says_who_and_keeps_theirs(crm, api):
    a = crm["a"]
    rid = int(a.post("/o/deal/new", {"title": "first"}).headers["Location"].rsplit("/", 1)[1])
    form = a.get(f"/o/deal/{rid}/edit").text
    version = re.search(r'name="_version" value="(\d+)"', form).group(1)
    assert version == "1"
    assert api.patch(f"/objects/deal/records/{rid}", {"title": "theirs"}).status_code == 200   # meanwhile
    r = a.post(f"/o/deal/{rid}/edit", {"title": "mine", "_version": version})
    assert r.status_code == 409
    assert "Admin 在 " in r.text and "修改了这条记录（在您打开此表单之后）" in r.text
    assert 'value="mine"' in r.text                                     # what was typed is still there
    assert api.get(f"/objects/deal/records/{rid}").get_json()["title"] == "theirs"
    fresh = re.search(r'name="_version" value="(\d+)"', a.get(f"/o/deal/{rid}/edit").text).group(1)
    assert a.post(f"/o/deal/{rid}/edit", {"title": "mine", "_version": fresh}).status_code == 302
    assert api.get(f"/objects/deal/records/{rid}").get_json()["title"] == "mine"


def test_widgets_round_trip_through_the_form(crm, api):
    a = crm["a"]
    r = a.post("/o/deal/new", {"title": "widgets", "amount": "1,234.5".replace(",", ""), "province": "guangdong",
                               "city": "shenzhen", "tags": ["vip", "hot"], "won": "on", "close_date": "2026-12-01",
                               "met_at": "2026-12-01T09:30", "account": str(crm["account"]),
                               "email": "A@Example.COM"})
    assert r.status_code == 302, r.text
    rid = int(r.headers["Location"].rsplit("/", 1)[1])
    rec = api.get(f"/objects/deal/records/{rid}").get_json()
    assert rec["amount"] == "1234.50" and rec["tags"] == ["vip", "hot"] and rec["won"] is True
    assert rec["met_at"] == "2026-12-01T01:30:00Z"            # entered in Asia/Shanghai
    assert rec["city"] == "shenzhen" and rec["account"] == crm["account"] and rec["email"] == "A@example.com"
    assert rec["doubled"] == "2469.00" and rec["deal_no"].startswith("D-")
    html = a.get(f"/o/deal/{rid}").text
    assert "CNY 1,234.50" in html and "2026-12-01 09:30" in html and "vip, hot" in html
    edit = a.get(f"/o/deal/{rid}/edit").text
    assert 'value="2026-12-01T09:30"' in edit and 'data-controller="province"' in edit
    assert 'data-target="account"' in edit and "&lt;script&gt;" in edit   # the lookup shows its name
    # unticking a checkbox and emptying a value clears them
    a.post(f"/o/deal/{rid}/edit", {"title": "widgets", "province": "guangdong", "city": "shenzhen"})
    rec = api.get(f"/objects/deal/records/{rid}").get_json()
    assert rec["won"] is False and rec["tags"] is None and rec["amount"] is None


def test_list_filter_sort_and_pages_from_the_query_string(crm):
    a = crm["a"]
    tree = {"and": [{"field": "title", "op": "starts_with", "value": "A"},
                    {"field": "amount", "op": "gte", "value": 10}]}
    url = "/o/deal?sort=-amount&page_size=7&filter=" + quote(json.dumps(tree))
    page1 = a.get(url).text
    titles = re.findall(r'class="open" href="/o/deal/\d+">([^<]+)<', page1)
    assert titles == [f"A{i:02d}" for i in range(29, 22, -1)]
    assert "第 1 页" in page1 and "共 {total} 条记录 · 第 1 / {pages} 页" in page1
    count_url = re.search(r'data-count-url="([^"]+)"', page1).group(1).replace("&amp;", "&")
    assert a.get(count_url).get_json()["total"] == 20      # the total the page's script fills in
    nxt = re.search(r'rel="next" href="([^"]+)"', page1).group(1).replace("&amp;", "&")
    assert "page=2" in nxt and "filter=" in nxt
    page2 = a.get(nxt).text
    assert re.findall(r'class="open" href="/o/deal/\d+">([^<]+)<', page2) == [f"A{i:02d}" for i in range(22, 15, -1)]
    page3 = a.get(nxt.replace("page=2", "page=3")).text
    assert len(re.findall(r'class="open"', page3)) == 6 and 'rel="next"' not in page3
    # the filter builder gets the tree back
    assert json.loads(page1.split('id="current-filter">')[1].split("</script>")[0]) == tree
    bad = a.get("/o/deal?filter=" + quote("{not json"))
    assert bad.status_code == 400 and "JSON" in bad.text
    assert a.get("/o/deal?filter=" + quote(json.dumps({"field": "nope", "op": "eq", "value": 1}))).status_code == 400
    assert a.get("/o/deal?page=abc").status_code == 400


def test_the_list_saves_its_own_filter_as_a_view(crm, api):
    """The save-view form carries the list's filter as it is in the page: a
    filter holding quotes used to be cut at the first one (400)."""
    import html as html_lib
    a = crm["a"]
    wanted = {"field": "title", "op": "contains", "value": "A0"}
    page = a.get("/o/deal", query_string={"filter": json.dumps(wanted)}).text
    form = page.split('class="save-view"')[1].split("</form>")[0]
    carried = html_lib.unescape(re.search(r'name="filter" value="([^"]*)"', form).group(1))
    assert json.loads(carried) == wanted
    r = a.post("/o/deal/views", {"name": "A0s", "columns": "title", "filter": carried, "sort": "title"})
    assert r.status_code == 302, r.text
    view_id = int(re.search(r"view=(\d+)", r.headers["Location"]).group(1))
    listed = a.get(f"/o/deal?view={view_id}").text
    assert re.findall(r'class="open" href="/o/deal/\d+">([^<]+)<', listed) == [f"A0{i}" for i in range(10)]


def test_saved_views_bulk_actions_and_export(crm, api, runtime):
    a, b = crm["a"], crm["b"]
    r = a.post("/o/deal/views", {"name": "Big ones", "columns": "title,amount",
                                 "filter": json.dumps({"field": "amount", "op": "gte", "value": 25}),
                                 "sort": "-amount"})
    assert r.status_code == 302
    view_id = int(re.search(r"view=(\d+)", r.headers["Location"]).group(1))
    html = a.get(f"/o/deal?view={view_id}").text
    assert re.findall(r'class="open" href="/o/deal/\d+">([^<]+)<', html) == ["A29", "A28", "A27", "A26", "A25"]
    assert b.get(f"/o/deal?view={view_id}").status_code == 404       # personal view of rep_a
    assert b.post(f"/o/deal/views/{view_id}/delete").status_code == 404
    assert "删除视图" in html
    ids = [int(i) for i in re.findall(r'name="ids" value="(\d+)"', html)]
    # export links carry the list's filter and sort to the API
    link = re.search(r'href="(/api/v1/objects/deal/export\?[^"]*format=csv[^"]*)"', html).group(1).replace("&amp;", "&")
    csv_text = a.get(link).get_data(as_text=True)
    assert csv_text.splitlines()[0].lstrip("\ufeff").startswith("id,title,amount") and "A25" in csv_text
    assert "A24" not in csv_text and "B-only" not in csv_text and "secret" not in csv_text
    xlsx = a.get(link.replace("format=csv", "format=xlsx"))
    assert xlsx.status_code == 200 and xlsx.data[:2] == b"PK"          # a real workbook
    assert a.post(f"/o/deal/views/{view_id}/delete").status_code == 302
    assert a.get(f"/o/deal?view={view_id}").status_code == 404
    # bulk edit: all rows or none
    r = a.post("/o/deal/bulk", {"action": "edit", "field": "email", "value": "bulk@example.com", "ids": ids})
    assert r.status_code == 302
    assert {api.get(f"/objects/deal/records/{i}").get_json()["email"] for i in ids} == {"bulk@example.com"}
    r = a.post("/o/deal/bulk", {"action": "edit", "field": "email", "value": "broken", "ids": ids},
               follow_redirects=True)
    assert "不是有效的邮箱地址" in r.text
    assert {api.get(f"/objects/deal/records/{i}").get_json()["email"] for i in ids} == {"bulk@example.com"}
    # a hidden or read-only field cannot be bulk edited
    for field in ("secret", "stage"):
        r = a.post("/o/deal/bulk", {"action": "edit", "field": field, "value": "won", "ids": ids}, follow_redirects=True)
        assert "请选择您可以编辑的字段" in r.text
    # out-of-scope ids make the whole delete fail
    r = a.post("/o/deal/bulk", {"action": "delete", "ids": ids + [crm["rid_b"]]}, follow_redirects=True)
    assert api.get(f"/objects/deal/records/{ids[0]}").status_code == 200
    assert a.post("/o/deal/bulk", {"action": "delete", "ids": ids}).status_code == 302
    assert all(api.get(f"/objects/deal/records/{i}").status_code == 404 for i in ids)
    # owner transfer by the admin
    admin = crm["admin"]
    rid = crm["deal"]
    uid_b = auth.user_id(runtime.db, "rep_b")
    assert admin.post("/o/deal/bulk", {"action": "owner", "owner": str(uid_b), "ids": [rid]}).status_code == 302
    assert b.get(f"/o/deal/{rid}").status_code == 200



def test_detail_shows_related_lists_history_and_plugin_timeline(crm, api, runtime):
    import datetime as dt
    admin, deal = crm["admin"], crm["deal"]
    api.patch(f"/objects/deal/records/{deal}", {"secret": "changed"})
    calls = []

    def follow_ups(rt, actor, obj, rid):
        calls.append(actor.login)
        return [{"at": dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc), "title": "Called <b>back</b>",
                 "body": "said yes", "kind": "call", "url": None}]

    def broken(rt, actor, obj, rid):
        raise RuntimeError("plugin bug")

    runtime.slots.add("timeline", follow_ups, object="deal")
    runtime.slots.add("timeline", broken)
    html = admin.get(f"/o/deal/{deal}").text
    assert "Called &lt;b&gt;back&lt;/b&gt;" in html and "said yes" in html and calls == ["admin"]
    assert "2026-11-01 08:00" in html                          # shown in the instance's time zone
    assert 'data-related="note"' in html and "first note" in html
    assert "TOPSECRET" in html and "changed" in html          # history: old and new value
    # a rep never sees the hidden field's history
    rid = int(crm["a"].post("/o/deal/new", {"title": "hist"}).headers["Location"].rsplit("/", 1)[1])
    api.patch(f"/objects/deal/records/{rid}", {"secret": "nope-not-for-you"})
    assert "nope-not-for-you" not in crm["a"].get(f"/o/deal/{rid}").text


def test_plugins_add_panels_to_the_record_page_for_the_readers_they_choose(crm, runtime):
    admin, deal = crm["admin"], crm["deal"]

    def stage_box(rt, actor, obj, record):
        if not actor.is_admin:
            return None                                   # this panel is for admins only
        return {"name": "stage", "title": "Stage <check>", "template": "panels/facts.html",
                "context": {"facts": [["Stage", record.get("stage")], ["Amount", "<b>12.5</b>"]]}}

    def first(rt, actor, obj, record):
        return {"name": "first", "title": "First box", "template": "panels/facts.html",
                "context": {"facts": [], "note": "shown first"}}

    def broken(rt, actor, obj, record):
        raise RuntimeError("plugin bug")

    runtime.slots.add("record_panel", stage_box, object="deal", order=20)
    runtime.slots.add("record_panel", first, object="deal", order=10)
    runtime.slots.add("record_panel", broken, object="deal")
    runtime.slots.add("record_panel", first, object="account")
    html = admin.get(f"/o/deal/{deal}").text
    assert 'data-panel="stage"' in html and "Stage &lt;check&gt;" in html and "&lt;b&gt;12.5&lt;/b&gt;" in html
    assert html.index('data-panel="first"') < html.index('data-panel="stage"') < html.index('id="section-')
    assert html.count('data-panel="first"') == 1                 # the account's panel stays on accounts
    rid = int(crm["a"].post("/o/deal/new", {"title": "mine"}).headers["Location"].rsplit("/", 1)[1])
    mine = crm["a"].get(f"/o/deal/{rid}").text
    assert 'data-panel="first"' in mine and 'data-panel="stage"' not in mine


@pytest.mark.parametrize("target, lands", [
    ("/o/deal?sort=-amount", "/o/deal?sort=-amount"),
    ("/%09/example.invalid/phish", "/"), ("/\t/example.invalid", "/"), ("//example.invalid", "/"),
    ("/\\example.invalid", "/"), ("https://example.invalid/", "/"), ("javascript:alert(1)", "/"), ("", "/"),
])
def test_sign_in_only_goes_on_to_a_page_of_this_site(crm, app, target, lands):
    client = app.test_client()
    page = client.get("/login", query_string={"next": target})
    r = client.post("/login", data={"login": "rep_a", "password": PW, "csrf_token": csrf_of(page.text),
                                    "next": target.replace("%09", "\t")})
    assert r.status_code == 302 and r.headers["Location"] == lands
    assert f'value="{lands}"' in page.text or lands == "/"


def test_search_and_home(crm):
    a = crm["a"]
    html = a.get("/search?q=A1").text
    assert len(re.findall(r'href="/o/deal/\d+">A1\d<', html)) == 10
    assert "B-only</a>" not in a.get("/search?q=B-only").text
    assert "B-only</a>" in crm["b"].get("/search?q=B-only").text
    home = a.get("/").text
    assert 'href="/o/deal"' in home and 'href="/o/deal/new"' in home


def test_designer_creates_objects_fields_and_dependency_matrix(crm, runtime):
    admin = crm["admin"]
    r = admin.post("/admin/objects", {"api_name": "visit", "label_en": "Visit", "label_zh": "拜访",
                                      "name_field_api": "subject"})
    assert r.status_code == 302
    r = admin.post("/admin/objects/visit/fields", {"api_name": "level", "label_en": "Level", "type": "picklist",
                                                   "s.picklist.options": "a | A | 甲\nb | B | 乙"})
    assert r.status_code == 302
    r = admin.post("/admin/objects/visit/fields", {"api_name": "sub", "label_en": "Sub", "type": "dependent_picklist",
                                                   "s.dependent_picklist.controlling_field": "level",
                                                   "s.dependent_picklist.options": "x\ny",
                                                   "s.dependent_picklist.dependency": "a: x"})
    assert r.status_code == 302, r.text
    page = admin.get("/admin/objects/visit/fields/sub").text
    assert 'name="dep::a::x"' in page and 'name="dep::b::y"' in page
    r = admin.post("/admin/objects/visit/fields/sub", {"label_en": "Sub", "dep_matrix": "1", "dep::a::x": "on",
                                                       "dep::b::y": "on", "s.dependent_picklist.options": "x\ny"})
    assert r.status_code == 302
    assert runtime.cache.current().get("visit").fields["sub"].settings["dependency"] == {"a": ["x"], "b": ["y"]}
    # a bad setting is named beside its input, nothing is created
    r = admin.post("/admin/objects/visit/fields", {"api_name": "bad", "label_en": "Bad", "type": "currency",
                                                   "s.currency.currency": "yuan"})
    assert r.status_code == 422 and "ISO 4217" in r.text
    assert "bad" not in runtime.cache.current().get("visit").fields
    assert admin.get("/o/visit/new").status_code == 200


def test_a_message_repeating_the_input_is_escaped(crm, runtime):
    """Server messages beside a field may quote what was typed: shown as text, never as markup."""
    admin = crm["admin"]
    r = admin.post("/admin/objects/deal/fields", {"api_name": "ticket_no", "label_en": "No", "type": "auto_number",
                                                  "s.auto_number.pattern": "D-{<b>x</b>}-{000}"})
    assert r.status_code == 422
    assert "Unknown token {&lt;b&gt;x&lt;/b&gt;}" in r.text and "<b>x</b>" not in r.text
    assert "ticket_no" not in runtime.cache.current().get("deal").fields


def test_detail_buttons_follow_the_layout(crm, api, runtime):
    admin, a, deal = crm["admin"], crm["a"], crm["deal"]
    html = admin.get(f"/o/deal/{deal}").text
    assert ">编辑<" in html and "转移负责人" in html and ">复制<" not in html
    r = api.post("/meta/objects/deal/layouts", {"name": "with clone", "default": True,
                                                "sections": [{"key": "main", "fields": ["title", "stage", "won"]}],
                                                "buttons": ["edit", "clone"]})
    assert r.status_code == 201, r.get_json()
    api.patch(f"/objects/deal/records/{deal}", {"won": False})
    html = admin.get(f"/o/deal/{deal}").text
    assert "转移负责人" not in html and ">删除<" not in html
    clone = re.search(r'href="(/o/deal/new\?[^"]+)"', html).group(1).replace("&amp;", "&")
    assert "stage=open" in clone and "won" not in clone
    form = admin.get(clone).text
    assert 'value="open" selected' in form and "&lt;script&gt;" in form
    # a rep's edit button appears only with his edit right on the record's object
    rid = int(a.post("/o/deal/new", {"title": "mine"}).headers["Location"].rsplit("/", 1)[1])
    assert ">编辑<" in a.get(f"/o/deal/{rid}").text


def test_bell_counts_unread_and_the_inbox_marks_them_read(crm):
    rt = crm["runtime"]
    uid = auth.user_id(rt.db, "rep_a")
    with rt.db.write():
        rt.notifications.send([uid], "test", "新线索分配给你", body="<b>请跟进</b>", link="/o/deal")
    a = crm["a"]
    page = a.get("/o/deal").text
    assert 'class="bell has-unread"' in page and '<span class="count">1</span>' in page
    inbox = a.get("/notifications").text
    assert "新线索分配给你" in inbox and "&lt;b&gt;请跟进&lt;/b&gt;" in inbox      # text, never markup
    nid = rt.notifications.list(auth.actor_for(rt.db, rt.cache, uid))["notifications"][0]["id"]
    r = a.post(f"/notifications/{nid}/read", {"open": "1"})
    assert r.status_code == 302 and r.headers["Location"].endswith("/o/deal")
    assert 'class="bell has-unread"' not in a.get("/o/deal").text
    assert crm["b"].post(f"/notifications/{nid}/read", {}).status_code == 404      # someone else's
    assert a.post("/notifications/read-all", {}, csrf=False).status_code == 400


def test_function_designer_saves_refuses_with_the_line_and_offers_the_bench(crm):
    admin, rt = crm["admin"], crm["runtime"]
    r = admin.post("/admin/functions/new", {"api_name": "cap", "label_en": "Cap", "kind": "validation",
                                            "object": "deal", "code": "x = 1\ny = x.__class__\nreturn None"})
    assert r.status_code == 400 and "Line 2" in r.text and "cap" in r.text       # kept in the form, nothing saved
    assert "cap" not in rt.functions.all()
    r = admin.post("/admin/functions/new", {"api_name": "cap", "label_en": "Cap", "kind": "validation",
                                            "object": "deal", "active": "on", "error_field": "title",
                                            "code": "if record['title'] == 'no':\n    return 'Not this title'"})
    assert r.status_code == 302
    r = admin.post("/admin/functions/new", {"api_name": "draft_rule", "label_en": "Draft", "kind": "validation",
                                            "object": "deal", "code": "return None"})
    assert r.status_code == 302                                   # saved without ticking Active: said so
    assert "函数已保存，但未启用" in admin.get(r.headers["Location"]).text
    page = admin.get("/admin/functions/cap").text
    assert 'id="bench"' in page and "/api/v1/functions/cap/test" in page and "v1" in page
    r = crm["a"].post("/o/deal/new", {"title": "no"})
    assert r.status_code == 422 and "Not this title" in r.text
    assert crm["a"].get("/admin/functions").status_code == 403
    # an API function names the roles that may run it, ticked in the page
    r = admin.post("/admin/functions/new", {"api_name": "hello", "label_en": "Hello", "kind": "api", "active": "on",
                                            "roles": ["rep"], "code": "return 'hi'"})
    assert r.status_code == 302, r.text
    assert rt.functions.all()["hello"].roles == ["rep"]
    assert 'name="roles" value="rep" checked' in admin.get("/admin/functions/hello").text


def test_import_page_guesses_columns_previews_and_shows_progress(crm):
    import io
    admin = crm["admin"]
    assert "import" in admin.get("/o/deal").text.lower()
    csv_gbk = "标题,金额,无关列\n甲方项目,12.5,x\n乙方项目,abc,y\n".encode("gbk")
    r = admin.post("/o/deal/import", {"file": (io.BytesIO(csv_gbk), "deals.csv")},
                   content_type="multipart/form-data")
    assert r.status_code == 302, r.text
    review = admin.get(r.headers["Location"]).text
    assert "gb18030" in review.lower() and "甲方项目" in review and "无关列" in review
    assert 'value="title" selected' in review                 # 标题 guessed as the title field
    import_url = r.headers["Location"]
    import_id = import_url.rsplit("/", 1)[1]
    r = admin.post(import_url, {"action": "start", "map::0": "title", "map::1": "amount", "map::2": ""})
    assert r.status_code == 302
    done = admin.get(import_url).text
    assert 'id="import-progress"' in done and f"/api/v1/imports/{import_id}/report?format=xlsx" in done
    from leadhub.data.query import QuerySpec
    from leadhub.platform.permissions import Actor
    rows = crm["runtime"].records.query(Actor.system(), "deal", QuerySpec(
        filter={"field": "title", "op": "in", "value": ["甲方项目", "乙方项目"]}, fields=["title"]))["records"]
    assert [x["title"] for x in rows] == ["甲方项目"]            # the bad amount's row is rejected, not written
    r = admin.post("/o/deal/import", {"file": (io.BytesIO(b""), "empty.csv")}, content_type="multipart/form-data")
    assert r.status_code == 400
    assert crm["a"].get("/o/deal/import").status_code == 403         # reps here have no import right
