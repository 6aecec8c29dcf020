"""Web-to-lead: form metadata and its snippet, the public endpoint (form
posts and JSON), honeypot, rate limit, bad input, inactive forms."""
from __future__ import annotations

import re

import pytest

from leadhub.data.query import QuerySpec
from leadhub.platform import auth
from leadhub.plugins.lead import webforms
from tests.conftest import Api

FIELDS = [{"field": "name", "required": True, "label": {"en": "Your name", "zh_CN": "您的姓名"}},
          {"field": "mobile", "required": True},
          {"field": "company"},
          {"field": "industry"},
          {"field": "description"}]

pytestmark = pytest.mark.plugins("lead")   # each test starts with the plugin installed


@pytest.fixture
def lead(runtime):
    return runtime


@pytest.fixture
def campaign(lead, admin):
    return lead.records.create(admin, "campaign", {"name": "2026 春季展会"})["id"]


@pytest.fixture
def form(api, lead, campaign):
    r = api.post("/meta/web-forms", {"name": "官网咨询", "fields": FIELDS, "campaign": campaign,
                                     "success_message": "谢谢！"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


@pytest.fixture
def public(app):
    return app.test_client()


def leads(runtime, admin):
    return runtime.records.query(admin, "lead", QuerySpec(page_size=500))["records"]


GOOD = {"name": "王小明", "mobile": "13800138000", "company": "北京纷扬科技有限公司", "industry": "it",
        "utm_source": "baidu", "utm_medium": "cpc", "utm_campaign": "spring", "utm_term": "crm", "utm_content": "ad1"}


# ---------------------------------------------------------------- metadata and snippet

def test_form_definition_and_snippet(api, form, public, admin):
    assert form["source"] == "web_form" and form["active"] is True and form["owner"] == admin.user_id
    assert len(form["public_key"]) >= 32
    snippet = form["snippet"]
    assert f'action="http://localhost/forms/{form["public_key"]}"' in snippet
    assert 'name="lh_website"' in snippet and "left:-10000px" in snippet      # honeypot, hidden by CSS
    assert 'type="hidden"' not in snippet.split('name="lh_website"')[0].rsplit("<input", 1)[1]
    for utm in ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"):
        assert f'<input type="hidden" name="{utm}">' in snippet
    assert "URLSearchParams(window.location.search)" in snippet
    assert "您的姓名" in snippet and 'name="mobile" required' in snippet and 'type="tel"' in snippet
    assert '<option value="it">IT/软件</option>' in snippet
    got = api.get(f"/meta/web-forms/{form['id']}").get_json()
    assert got["snippet"] == snippet
    assert [f["name"] for f in api.get("/meta/web-forms").get_json()["items"]] == ["官网咨询"]
    # the hosted page carries the same form
    page = public.get(f"/forms/{form['public_key']}")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert 'name="lh_website"' in page.get_data(as_text=True) and "官网咨询" in page.get_data(as_text=True)


def test_names_are_escaped_in_the_snippet(api, lead):
    r = api.post("/meta/web-forms", {"name": "<script>x</script>", "fields": [
        {"field": "name", "label": '"><img src=x onerror=alert(1)>'}]})
    assert r.status_code == 201
    snippet = r.get_json()["snippet"]
    assert "<img" not in snippet and "&lt;img" in snippet


@pytest.mark.parametrize("payload,field", [
    ({"fields": FIELDS}, "name"),
    ({"name": "x"}, "fields"),
    ({"name": "x", "fields": []}, "fields"),
    ({"name": "x", "fields": [{"field": "nope"}]}, "fields.0"),
    ({"name": "x", "fields": [{"field": "score"}]}, "fields.0"),          # read-only
    ({"name": "x", "fields": [{"field": "utm_source"}]}, "fields.0"),     # set from the page, not a visitor
    ({"name": "x", "fields": [{"field": "mobile"}]}, "fields"),            # leads need a name
    ({"name": "x", "fields": ["name", "name"]}, "fields.1"),
    ({"name": "x", "fields": [{"field": "name", "required": "yes"}]}, "fields.0.required"),
    ({"name": "x", "fields": ["name"], "source": "carrier_pigeon"}, "source"),
    ({"name": "x", "fields": ["name"], "campaign": 999}, "campaign"),
    ({"name": "x", "fields": ["name"], "redirect_url": "javascript:alert(1)"}, "redirect_url"),
    ({"name": "x", "fields": ["name"], "active": "yes"}, "active"),
    ({"name": "x", "fields": ["name"], "language": "fr"}, "language"),
    ({"name": "x", "fields": ["name"], "public_key": "mine"}, "public_key"),
])
def test_bad_definitions_name_the_property(api, lead, payload, field):
    r = api.post("/meta/web-forms", payload)
    assert r.status_code == 400, r.get_json()
    assert field in r.get_json()["error"]["fields"]
    assert api.get("/meta/web-forms").get_json()["items"] == []


def test_only_admins_write_forms(app, api, lead, runtime, form):
    r = api.post("/users", {"login": "rep", "name": "rep", "password": "leadhub-test-1", "roles": ["sales_rep"]})
    assert r.status_code == 201, r.get_json()
    rep = Api(app.test_client(), auth.create_token(runtime.db, "rep"))
    assert rep.get(f"/meta/web-forms/{form['id']}").status_code == 200
    assert rep.post("/meta/web-forms", {"name": "x", "fields": ["name"]}).status_code == 403
    assert rep.patch(f"/meta/web-forms/{form['id']}", {"active": False}).status_code == 403
    assert rep.delete(f"/meta/web-forms/{form['id']}").status_code == 403
    assert app.test_client().get("/api/v1/meta/web-forms").status_code == 401


# ---------------------------------------------------------------- submissions

def test_form_post_lands_with_source_campaign_and_utm(form, public, lead, admin, campaign):
    r = public.post(f"/forms/{form['public_key']}", data=GOOD)
    assert r.status_code == 200 and "谢谢！" in r.get_data(as_text=True)
    [got] = leads(lead, admin)
    assert got["name"] == "王小明" and got["company"] == "北京纷扬科技有限公司" and got["industry"] == "it"
    assert got["source"] == "web_form" and got["campaign"] == campaign
    assert (got["utm_source"], got["utm_medium"], got["utm_campaign"], got["utm_term"], got["utm_content"]) == \
        ("baidu", "cpc", "spring", "crm", "ad1")
    assert got["owner"] == admin.user_id                    # the form's owner
    assert got["mobile"].endswith("13800138000")


def test_json_post_and_cors(form, public, lead, admin):
    pre = public.options(f"/forms/{form['public_key']}")
    assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == "*"
    r = public.post(f"/forms/{form['public_key']}", json={**GOOD, "name": "李雷", "mobile": "13800138001"})
    assert r.status_code == 201, r.get_json()
    assert r.get_json() == {"ok": True, "message": "谢谢！"}
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert [x["name"] for x in leads(lead, admin)] == ["李雷"]


def test_redirect_after_a_form_post(api, form, public):
    api.patch(f"/meta/web-forms/{form['id']}", {"redirect_url": "https://example.org/thanks"})
    r = public.post(f"/forms/{form['public_key']}", data=GOOD)
    assert r.status_code == 303 and r.headers["Location"] == "https://example.org/thanks"


def test_honeypot_pretends_success_and_stores_nothing(form, public, lead, admin, caplog):
    r = public.post(f"/forms/{form['public_key']}", data={**GOOD, "lh_website": "http://spam.example"})
    assert r.status_code == 200 and "谢谢！" in r.get_data(as_text=True)
    r = public.post(f"/forms/{form['public_key']}", json={**GOOD, "lh_website": "x"})
    assert r.status_code == 201 and r.get_json()["ok"] is True
    assert leads(lead, admin) == []
    assert "honeypot" in caplog.text


def test_flood_from_one_address_gets_429(form, public, lead, admin, runtime):
    key = form["public_key"]
    codes = [public.post(f"/forms/{key}", json={**GOOD, "mobile": f"1380013{i:04d}"},
                         environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code for i in range(12)]
    assert codes == [201] * 10 + [429, 429]
    r = public.post(f"/forms/{key}", json=GOOD, environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 61
    assert r.get_json()["error"]["code"] == "too_many_requests"
    # another address is not limited; nor is the same address a minute later
    assert public.post(f"/forms/{key}", json={**GOOD, "mobile": "13900000000"},
                       environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 201
    forms = webforms.WebForms(runtime)
    import time
    forms.throttle(form["api_name"], "10.0.0.1", now=time.time() + 61)   # counts in the next minute: allowed
    assert len(leads(lead, admin)) == 11


def test_bad_submissions_name_the_field(form, public, lead, admin):
    key = form["public_key"]
    r = public.post(f"/forms/{key}", json={"mobile": "13800138000"})
    assert r.status_code == 422 and "name" in r.get_json()["error"]["fields"]
    r = public.post(f"/forms/{key}", json={"name": "韩梅梅", "mobile": "not a phone"})
    assert r.status_code == 422 and "mobile" in r.get_json()["error"]["fields"]
    r = public.post(f"/forms/{key}", json={"name": "韩梅梅", "mobile": "13800138000", "industry": "mining"})
    assert r.status_code == 422 and "industry" in r.get_json()["error"]["fields"]
    r = public.post(f"/forms/{key}", data="{not json", content_type="application/json")
    assert r.status_code == 400 and "body" in r.get_json()["error"]["fields"]
    # a form post gets a plain page naming the field
    r = public.post(f"/forms/{key}", data={"name": "", "mobile": "13800138000"})
    assert r.status_code == 422 and r.mimetype == "text/html"
    assert re.search(r"<li>name: This field is required.</li>", r.get_data(as_text=True))
    # fields not on the form are ignored, never written
    r = public.post(f"/forms/{key}", json={**GOOD, "owner": 999, "status": "converted", "score": 100})
    assert r.status_code == 201
    [got] = leads(lead, admin)
    assert got["status"] != "converted" and got["owner"] == admin.user_id
    huge = public.post(f"/forms/{key}", data={"name": "x" * 100_000, "mobile": "13800138000"})
    assert huge.status_code == 413
    assert len(leads(lead, admin)) == 1


def test_inactive_or_unknown_form_is_404(api, form, public, lead, admin):
    key = form["public_key"]
    assert api.patch(f"/meta/web-forms/{form['id']}", {"active": False}).get_json()["active"] is False
    assert public.post(f"/forms/{key}", json=GOOD).status_code == 404
    assert public.post(f"/forms/{key}", data=GOOD).status_code == 404
    assert public.get(f"/forms/{key}").status_code == 404
    assert public.post("/forms/no-such-key", json=GOOD).status_code == 404
    api.patch(f"/meta/web-forms/{form['id']}", {"active": True})
    assert public.post(f"/forms/{key}", json=GOOD).status_code == 201
    assert api.delete(f"/meta/web-forms/{form['id']}").status_code == 204
    assert public.post(f"/forms/{key}", json=GOOD).status_code == 404
    assert api.get(f"/meta/web-forms/{form['id']}").status_code == 404
    assert len(leads(lead, admin)) == 1
