"""Lead cleaning: phone and e-mail normalisation, blacklists, junk names,
quarantine (never a refusal), reps never seeing it, and release."""
import pytest

from leadhub.platform import auth
from leadhub.plugins.lead import cleaning
from tests.conftest import Api, count_rows

PW = "s3cret-pass"

pytestmark = pytest.mark.plugins("lead")   # each test starts with the plugin installed


@pytest.fixture
def lead(runtime):
    return runtime


@pytest.fixture
def users(lead, api, app, runtime):
    """Two reps (own scope) and a marketer (scope all, no edit), as API clients."""
    out = {}
    for login, role in (("rep_a", "sales_rep"), ("rep_b", "sales_rep"), ("marketer", "marketing")):
        r = api.post("/users", {"login": login, "name": login, "password": PW, "roles": [role]})
        assert r.status_code == 201, r.get_json()
        out[login] = (r.get_json()["id"], Api(app.test_client(), auth.create_token(runtime.db, login)))
    return out


def create(client, **values):
    r = client.post("/objects/lead/records", {"name": "张伟", **values})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def blacklist(api, kind, value, note=None):
    r = api.post("/meta/blacklists", {"type": kind, "value": value, **({"note": note} if note else {})})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_chinese_mobile_becomes_e164_with_its_region(lead, api):
    got = create(api, mobile="13800138000", phone="010-6234 5678")
    assert got["status"] == "new" and got["invalid_reason"] is None
    assert got["mobile"] == "+8613800138000"
    assert (got["mobile_province"], got["mobile_city"]) == ("北京", "北京")
    assert got["phone"] == "+861062345678"
    other = create(api, mobile="+86 139-1234-5678")
    assert (other["mobile"], other["mobile_province"], other["mobile_city"]) == ("+8613912345678", "江苏", "常州")
    stored = api.get(f"/objects/lead/records/{got['id']}").get_json()
    assert stored["mobile"] == "+8613800138000" and stored["mobile_city"] == "北京"


def test_foreign_mobile_is_kept_without_chinese_region(lead, api):
    got = create(api, mobile="+1 415 555 2671")
    assert got["mobile"] == "+14155552671" and got["status"] == "new"
    assert got["mobile_province"] is None and got["mobile_city"] is None


def test_email_is_lower_cased(lead, api):
    assert create(api, email="Zhang.Wei@Fenyang.CN")["email"] == "zhang.wei@fenyang.cn"


@pytest.mark.parametrize("values, field, words", [
    ({"mobile": "12345"}, "mobile", "not a valid phone number (12345)"),
    ({"mobile": "+86 100 0000 0000"}, "mobile", "not a valid phone number"),
    ({"phone": "99999"}, "phone", "not a valid phone number"),
    ({"email": "a@fenyang.test"}, "email", "reserved"),
    ({"email": "a@example.com"}, "email", "reserved"),
    ({"email": "a@-bad-.com"}, "email", "not a valid host name"),
    ({"email": "a@fenyang.c0m"}, "email", "top-level domain"),
    ({"name": "12345"}, "name", "no letters"),
    ({"name": "...!!"}, "name", "no letters"),
    ({"name": "aaaa"}, "name", "repeated"),
    ({"name": "啊啊啊"}, "name", "repeated"),
    ({"name": "asdfgh"}, "name", "keyboard mash"),
    ({"name": "Test 01"}, "name", "test or placeholder"),
    ({"name": "测试"}, "name", "test or placeholder"),
    ({"name": "未知"}, "name", "test or placeholder"),
])
def test_each_failure_lands_in_quarantine_with_its_reason(lead, api, runtime, values, field, words):
    got = create(api, **values)
    assert got["status"] == "invalid", got
    assert got["invalid_reason"].startswith(f"{field}: ") and words in got["invalid_reason"]
    assert got["owner"] is None and got["quarantined_at"] is not None
    assert count_rows(runtime, "o_lead") == 1   # kept, never refused


@pytest.mark.parametrize("name", ["张伟", "丽丽", "Anna", "O'Brien", "欧阳 娜娜", "Li Hua"])
def test_real_names_pass(lead, api, name):
    assert create(api, name=name)["status"] == "new"


def test_blacklists_quarantine_and_every_reason_is_named(lead, api):
    blacklist(api, "phone", "139 1234 5678", note="complained")
    blacklist(api, "email", "Spam@QQ.com")
    blacklist(api, "email_domain", "@junkmail.cn")
    blacklist(api, "company", "黑名单科技有限公司")
    blacklist(api, "keyword", "代开发票")
    blacklist(api, "sensitive", "赌博")
    cases = [
        ({"mobile": "13912345678"}, "mobile: number is blacklisted"),
        ({"email": "spam@qq.com"}, "email: address is blacklisted"),
        ({"email": "x@mail.junkmail.cn"}, "email: domain junkmail.cn is blacklisted"),
        ({"company": "深圳市黑名单科技有限公司"}, "company: company is blacklisted"),
        ({"description": "长期代开发票"}, "description: contains blacklisted keyword “代开发票”"),
        ({"company": "赌博娱乐"}, "company: contains sensitive word “赌博”"),
    ]
    for values, reason in cases:
        got = create(api, **values)
        assert got["status"] == "invalid" and reason in got["invalid_reason"], (values, got["invalid_reason"])
    everything = create(api, name="test", mobile="13912345678", email="x@junkmail.cn", title="赌博")
    reason = everything["invalid_reason"]
    for part in ("email: domain junkmail.cn is blacklisted", "mobile: number is blacklisted",
                 "name: name is a test or placeholder name", "title: contains sensitive word “赌博”"):
        assert part in reason
    assert create(api, mobile="13800138000", email="ok@qq.com", company="纷扬科技")["status"] == "new"


def test_blacklist_api_validates_and_is_for_admins(lead, api, users):
    rep = users["rep_a"][1]
    assert rep.post("/meta/blacklists", {"type": "keyword", "value": "x"}).status_code == 403
    for body, field in [({"type": "word", "value": "x"}, "type"), ({"type": "phone", "value": "abc"}, "value"),
                        ({"type": "keyword", "value": ""}, "value"), ({"type": "keyword"}, "value"),
                        ({"type": "email_domain", "value": "no spaces.com"}, "value"),
                        ({"type": "keyword", "value": "x", "colour": "red"}, "colour"),
                        ({"type": "keyword", "value": "x", "note": 5}, "note")]:
        r = api.post("/meta/blacklists", body)
        assert r.status_code == 400 and field in r.get_json()["error"]["fields"], (body, r.get_json())
    entry = blacklist(api, "phone", "13800138000")
    assert entry["value"] == "+8613800138000"
    assert api.post("/meta/blacklists", {"type": "phone", "value": "+86 138 0013 8000"}).status_code == 409
    assert rep.get("/meta/blacklists").status_code == 200
    r = api.patch(f"/meta/blacklists/{entry['id']}", {"note": "asked not to be called"})
    assert r.status_code == 200 and r.get_json()["note"] == "asked not to be called"
    assert rep.patch(f"/meta/blacklists/{entry['id']}", {"note": "x"}).status_code == 403
    assert rep.delete(f"/meta/blacklists/{entry['id']}").status_code == 403
    assert api.get("/meta/blacklists?type=phone").get_json()["items"][0]["id"] == entry["id"]
    assert api.get("/meta/blacklists?type=nope").status_code == 400
    assert api.delete(f"/meta/blacklists/{entry['id']}").status_code == 204
    assert api.get(f"/meta/blacklists/{entry['id']}").status_code == 404
    assert create(api, mobile="13800138000")["status"] == "new"


def test_reps_never_see_quarantine_and_release_gives_it_back(lead, api, users, runtime):
    rep_id, rep = users["rep_a"]
    good = create(rep, mobile="13800138000")
    junk = create(rep, name="asdf", mobile="12345")        # the create answer itself says what happened
    assert junk["status"] == "invalid" and junk["owner"] is None
    names = [x["id"] for x in rep.get("/objects/lead/records").get_json()["records"]]
    assert names == [good["id"]]
    assert rep.get(f"/objects/lead/records/{junk['id']}").status_code == 404
    assert rep.patch(f"/objects/lead/records/{junk['id']}", {"name": "x"}).status_code == 404
    r = rep.get('/objects/lead/records?filter={"field":"status","op":"eq","value":"invalid"}')
    assert r.get_json()["records"] == []
    # admins (scope all) review it with the kernel's filter
    r = api.get('/objects/lead/records?filter={"field":"status","op":"eq","value":"invalid"}')
    quarantined = r.get_json()["records"]
    assert [x["id"] for x in quarantined] == [junk["id"]] and quarantined[0]["quarantined_owner"] == rep_id
    # the marketer (scope all, no edit) sees it but may not release it
    marketer = users["marketer"][1]
    assert marketer.get(f"/objects/lead/records/{junk['id']}").status_code == 200
    assert marketer.post(f"/objects/lead/records/{junk['id']}/release").status_code == 403
    assert rep.post(f"/objects/lead/records/{junk['id']}/release").status_code == 403
    # still dirty: 409 naming every failing field, nothing changes
    r = api.post(f"/objects/lead/records/{junk['id']}/release")
    assert r.status_code == 409 and set(r.get_json()["error"]["fields"]) == {"name", "mobile"}
    # an admin fixes one field: still quarantined, the remaining reason listed
    half = api.patch(f"/objects/lead/records/{junk['id']}", {"name": "王芳"}).get_json()
    assert half["status"] == "invalid" and half["invalid_reason"] == "mobile: not a valid phone number (12345)"
    fixed = api.patch(f"/objects/lead/records/{junk['id']}", {"mobile": "13700137000"}).get_json()
    assert fixed["status"] == "invalid" and fixed["owner"] is None   # released only on purpose
    released = api.post(f"/objects/lead/records/{junk['id']}/release").get_json()
    assert released["status"] == "new" and released["owner"] == rep_id and released["invalid_reason"] is None
    assert released["quarantined_at"] is None and released["mobile"] == "+8613700137000"
    assert rep.get(f"/objects/lead/records/{junk['id']}").status_code == 200
    assert api.post(f"/objects/lead/records/{junk['id']}/release").status_code == 409   # not in quarantine
    assert api.post("/objects/lead/records/999999/release").status_code == 404


def test_force_release_and_bad_release_bodies(lead, api, users):
    rep_id, rep = users["rep_a"]
    junk = create(rep, name="测试")   # say the person really is called that: the admin forces it
    assert api.post(f"/objects/lead/records/{junk['id']}/release", {"force": "yes"}).status_code == 400
    assert api.post(f"/objects/lead/records/{junk['id']}/release", {"forse": True}).status_code == 400
    r = api.post(f"/objects/lead/records/{junk['id']}/release", {"force": True})
    assert r.status_code == 200 and r.get_json()["status"] == "new" and r.get_json()["owner"] == rep_id


def test_an_update_that_breaks_a_lead_quarantines_it(lead, api, users):
    rep_id, rep = users["rep_a"]
    blacklist(api, "email_domain", "junkmail.cn")
    got = create(rep, email="wang@fenyang.cn")
    r = rep.patch(f"/objects/lead/records/{got['id']}", {"email": "wang@junkmail.cn"})
    assert r.status_code == 200 and r.get_json()["status"] == "invalid"
    assert rep.get(f"/objects/lead/records/{got['id']}").status_code == 404
    stored = api.get(f"/objects/lead/records/{got['id']}").get_json()
    assert stored["quarantined_owner"] == rep_id and "junkmail.cn" in stored["invalid_reason"]
    # other fields' old values are not re-checked on unrelated edits
    ok = create(api, name="李雷")
    assert api.patch(f"/objects/lead/records/{ok['id']}", {"title": "经理"}).get_json()["status"] == "new"


def test_bulk_writes_keep_every_row(lead, api, runtime):
    r = api.post("/objects/lead/records/bulk", {"records": [
        {"name": "王芳", "mobile": "13800138000"}, {"name": "xxx", "mobile": "123"}, {"name": "李雷"}]})
    assert r.status_code == 201
    assert [x["status"] for x in r.get_json()["records"]] == ["new", "invalid", "new"]
    assert count_rows(runtime, "o_lead") == 3


def test_rescue_lands_type_refusals_in_quarantine(lead, api, runtime, admin):
    raw = {"name": "  ", "mobile": "call me", "email": "not-an-address", "company": "纷扬科技"}
    assert api.post("/objects/lead/records", raw).status_code == 422      # what the field types refuse
    got = runtime.records.create(admin, "lead", cleaning.rescue(runtime, raw))
    assert got["status"] == "invalid" and got["company"] == "纷扬科技"
    for part in ("mobile: refused value (call me)", "email: refused value (not-an-address)", "name: "):
        assert part in got["invalid_reason"]
    assert "[refused at intake] mobile: call me" in got["description"]
