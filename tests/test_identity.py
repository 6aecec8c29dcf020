"""Identity and access through every path the kernel has: list, query, get,
update, delete, bulk, lookups across objects, shares, tokens, sessions."""
import datetime as dt

import pytest

from leadhub.platform import auth
from tests.conftest import REDIS_URL, Api, needs_redis, prepared

PW = "s3cret-pass"


@prepared()
def identity_org(api, app, runtime, make_object):
    """Sales > South > Shenzhen, Sales > East; a boss, a South manager, two
    reps, a rep managed across departments, a marketer; a prospect object
    with a field reps may not see, and an activity object that looks it up."""
    def post(path, body):
        r = api.post(path, body)
        assert r.status_code == 201, r.get_json()
        return r.get_json()
    sales = post("/departments", {"name": "Sales"})
    south = post("/departments", {"name": "South", "parent": sales["id"]})
    shenzhen = post("/departments", {"name": "Shenzhen", "parent": south["id"]})
    east = post("/departments", {"name": "East", "parent": sales["id"]})
    make_object("prospect", [{"api_name": "title", "label": "T", "type": "text"},
                             {"api_name": "secret", "label": "S", "type": "text", "track_history": True},
                             {"api_name": "score", "label": "Sc", "type": "integer"}])
    make_object("activity", [{"api_name": "prospect", "label": "P", "type": "lookup", "reference_to": "prospect"},
                             {"api_name": "note", "label": "N", "type": "text"}])
    post("/roles", {"api_name": "rep_no_secret", "label": {"en": "Rep", "zh_CN": "代表"}, "objects": {
        "*": {"create": True, "read": True, "edit": True, "scope": "own", "fields": {"owner": "read"}},
        "prospect": {"create": True, "read": True, "edit": True, "scope": "own",
                     "fields": {"owner": "read", "secret": "hidden"}}}})
    users = {}
    for login, dept, manager, roles in [
            ("boss", sales, None, ["sales_manager"]), ("south_mgr", south, "boss", ["sales_manager"]),
            ("rep_a", shenzhen, "south_mgr", ["rep_no_secret"]), ("rep_b", east, "boss", ["rep_no_secret"]),
            ("rep_c", east, "south_mgr", ["sales_rep"]), ("marketer", None, None, ["marketing"])]:
        users[login] = post("/users", {"login": login, "name": login, "password": PW, "roles": roles,
                                       "department": dept["id"] if dept else None,
                                       "manager": users[manager] if manager else None})["id"]
    tokens = {login: auth.create_token(runtime.db, login) for login in users}
    clients = {login: Api(app.test_client(), token) for login, token in tokens.items()}
    records = {}
    for login in ("rep_a", "rep_b", "rep_c"):
        r = clients[login].post("/objects/prospect/records", {"title": f"{login}'s", "score": 1})
        assert r.status_code == 201, r.get_json()
        records[login] = r.get_json()["id"]
        assert api.patch(f"/objects/prospect/records/{records[login]}", {"secret": "s"}).status_code == 200
    records["admin"] = api.post("/objects/prospect/records", {"title": "admin's", "secret": "s"}).get_json()["id"]
    return {"users": users, "tokens": tokens, "rec": records,
            "depts": {"sales": sales["id"], "south": south["id"], "shenzhen": shenzhen["id"], "east": east["id"]}}


@pytest.fixture
def org(identity_org, app):
    return {**identity_org, "as": {login: Api(app.test_client(), token) for login, token in identity_org["tokens"].items()}}


def titles(client, **query):
    r = client.post("/objects/prospect/query", {"fields": ["title"], "sort": ["id"], **query})
    assert r.status_code == 200, r.get_json()
    return [x["title"] for x in r.get_json()["records"]]


@pytest.mark.parametrize("who, sees", [
    ("rep_a", ["rep_a's"]),
    ("rep_b", ["rep_b's"]),
    ("south_mgr", ["rep_a's", "rep_c's"]),           # his tree (Shenzhen) + rep_c who reports to him
    ("boss", ["rep_a's", "rep_b's", "rep_c's"]),     # the Sales tree
    ("marketer", ["rep_a's", "rep_b's", "rep_c's", "admin's"]),
])
def test_scope_decides_what_each_user_reads(org, who, sees):
    client = org["as"][who]
    assert titles(client) == sees
    r = client.get("/objects/prospect/records?count=true").get_json()
    assert r["total"] == len(sees)
    for owner, rid in org["rec"].items():
        status = client.get(f"/objects/prospect/records/{rid}").status_code
        assert status == (200 if f"{owner}'s" in sees else 404), (who, owner)


def test_out_of_scope_writes_are_404_and_change_nothing(org, api):
    rep_a, rid_b = org["as"]["rep_a"], org["rec"]["rep_b"]
    assert rep_a.patch(f"/objects/prospect/records/{rid_b}", {"title": "mine"}).status_code == 404
    r = rep_a.post("/objects/prospect/records/bulk", {"operation": "update", "records": [
        {"id": org["rec"]["rep_a"], "title": "x"}, {"id": rid_b, "title": "x"}]})
    assert r.status_code == 404
    assert api.get(f"/objects/prospect/records/{rid_b}").get_json()["title"] == "rep_b's"
    assert api.get(f"/objects/prospect/records/{org['rec']['rep_a']}").get_json()["title"] == "rep_a's"


def test_object_rights(org):
    assert org["as"]["rep_a"].delete(f"/objects/prospect/records/{org['rec']['rep_a']}").status_code == 403
    r = org["as"]["marketer"].patch(f"/objects/prospect/records/{org['rec']['rep_a']}", {"title": "x"})
    assert r.status_code == 403
    assert org["as"]["south_mgr"].delete(f"/objects/prospect/records/{org['rec']['rep_a']}").status_code == 204


def test_hidden_field_is_absent_and_no_oracle(org, api):
    rep_a, rid = org["as"]["rep_a"], org["rec"]["rep_a"]
    got = rep_a.get(f"/objects/prospect/records/{rid}").get_json()
    assert "secret" not in got and got["title"] == "rep_a's"
    for body in ({"filter": {"field": "secret", "op": "eq", "value": "s"}}, {"sort": ["secret"]},
                 {"fields": ["secret"]}):
        r = rep_a.post("/objects/prospect/query", body)
        assert r.status_code == 403 and "secret" in r.get_json()["error"]["fields"], body
    r = rep_a.patch(f"/objects/prospect/records/{rid}", {"secret": "guess"})
    assert r.status_code == 403
    api.patch(f"/objects/prospect/records/{rid}", {"secret": "new"})
    assert rep_a.get(f"/objects/prospect/records/{rid}/history").get_json()["history"] == []
    assert "secret" not in rep_a.post("/objects/prospect/records", {"title": "t"}).get_json()
    assert "secret" not in rep_a.get("/objects/prospect/records").get_json()["records"][0]
    # the path through a lookup is closed as well
    r = rep_a.post("/objects/activity/query", {"fields": ["prospect.secret"]})
    assert r.status_code == 403


def test_owner_change_needs_the_right_and_is_audited(org, api):
    rep_a, rid = org["as"]["rep_a"], org["rec"]["rep_a"]
    r = rep_a.patch(f"/objects/prospect/records/{rid}", {"owner": org["users"]["rep_b"]})
    assert r.status_code == 403 and "owner" in r.get_json()["error"]["fields"]
    assert org["as"]["south_mgr"].patch(f"/objects/prospect/records/{rid}", {"owner": org["users"]["rep_c"]}).status_code == 200
    entries = api.get("/audit?action=owner_transferred").get_json()["entries"]
    assert entries[0]["details"] == {"from": org["users"]["rep_a"], "to": org["users"]["rep_c"]}


def test_lookups_never_leak_out_of_scope_records(org, api):
    rep_a = org["as"]["rep_a"]
    # referencing someone else's record is reported exactly like a missing one
    r = rep_a.post("/objects/activity/records", {"prospect": org["rec"]["rep_b"], "note": "x"})
    assert r.status_code == 422 and r.get_json()["error"]["fields"]["prospect"].startswith("No prospect")
    # an activity rep_a owns, pointing at a prospect he cannot read: the name stays hidden
    act = api.post("/objects/activity/records", {"prospect": org["rec"]["rep_b"], "note": "n",
                                                  "owner": org["users"]["rep_a"]}).get_json()
    got = rep_a.post("/objects/activity/query", {"fields": ["note", "prospect.title"]}).get_json()["records"]
    assert got == [{"note": "n", "prospect.title": None}]
    assert act["prospect"] == org["rec"]["rep_b"]
    # nor its id: the lookup reads as empty to him, everywhere he reads it
    assert rep_a.get(f"/objects/activity/records/{act['id']}").get_json()["prospect"] is None
    assert rep_a.get("/objects/activity/records").get_json()["records"][0]["prospect"] is None
    assert api.get(f"/objects/activity/records/{act['id']}").get_json()["prospect"] == org["rec"]["rep_b"]
    share = api.post(f"/objects/prospect/records/{org['rec']['rep_b']}/shares",
                     {"with": {"type": "user", "id": org["users"]["rep_a"]}, "access": "read"})
    assert share.status_code == 201
    assert rep_a.get(f"/objects/activity/records/{act['id']}").get_json()["prospect"] == org["rec"]["rep_b"]


@pytest.mark.parametrize("kind", ["user", "group", "department"])
def test_sharing_a_record(org, api, kind):
    rep_a, rep_b = org["as"]["rep_a"], org["as"]["rep_b"]
    rid = org["rec"]["rep_b"]
    target = {"user": org["users"]["rep_a"], "department": org["depts"]["shenzhen"]}.get(kind)
    if kind == "group":
        target = api.post("/groups", {"name": "key accounts", "members": [org["users"]["rep_a"]]}).get_json()["id"]
    r = rep_b.post(f"/objects/prospect/records/{rid}/shares", {"with": {"type": kind, "id": target}, "access": "read"})
    assert r.status_code == 201, r.get_json()
    assert rep_a.get(f"/objects/prospect/records/{rid}").status_code == 200
    assert rep_a.patch(f"/objects/prospect/records/{rid}", {"title": "x"}).status_code == 404   # read only
    rep_b.post(f"/objects/prospect/records/{rid}/shares", {"with": {"type": kind, "id": target}, "access": "edit"})
    assert rep_a.patch(f"/objects/prospect/records/{rid}", {"title": "edited"}).status_code == 200
    # nobody shares what they cannot edit
    r = rep_a.post(f"/objects/prospect/records/{org['rec']['rep_c']}/shares",
                   {"with": {"type": "user", "id": org["users"]["rep_a"]}})
    assert r.status_code == 404


def test_sharing_all_of_a_users_records(org, api):
    r = api.post(f"/users/{org['users']['rep_b']}/shares",
                 {"object": "prospect", "with": {"type": "user", "id": org["users"]["rep_a"]}})
    assert r.status_code == 201
    assert titles(org["as"]["rep_a"]) == ["rep_a's", "rep_b's"]
    assert org["as"]["rep_a"].post(f"/users/{org['users']['rep_b']}/shares", {
        "object": "prospect", "with": {"type": "user", "id": org["users"]["rep_a"]}}).status_code == 403


def test_plugins_widen_a_scope_through_the_scope_slot(org, api, runtime):
    """A plugin's scope contributor (as the pool plugin lets members read a
    pool's leads) grants records by a column's values, read or edit; the
    grant reaches lists, reads, writes and counts through the one check, and
    a change of grants shows after the security version moves."""
    from leadhub.platform.identity import bump_security
    from leadhub.platform.permissions import Grant
    users, rec, rep_a, rep_b = org["users"], org["rec"], org["as"]["rep_a"], org["as"]["rep_b"]
    assert api.patch(f"/objects/prospect/records/{rec['rep_c']}", {"score": 7}).status_code == 200
    assert api.patch(f"/objects/prospect/records/{rec['admin']}", {"score": 8}).status_code == 200
    territories = {users["rep_a"]: Grant("score", frozenset({7})),
                   users["rep_b"]: Grant("score", frozenset({7, 8}), edit=True)}
    calls = []

    def pools(conn, principal):
        calls.append(principal.user_id)
        grant = territories.get(principal.user_id)
        return [("prospect", grant), ("activity", Grant("no_such_column", frozenset({1})))] if grant else []

    runtime.slots.add("scope", pools)
    with runtime.db.write() as conn:
        bump_security(conn)
    assert titles(rep_a) == ["rep_a's", "rep_c's"]
    assert titles(rep_b) == ["rep_b's", "rep_c's", "admin's"]
    assert rep_a.get("/objects/prospect/records?count=true").get_json()["total"] == 2
    assert rep_a.get(f"/objects/prospect/records/{rec['rep_c']}").status_code == 200
    assert rep_a.get(f"/objects/prospect/records/{rec['admin']}").status_code == 404
    assert rep_a.get("/objects/activity/records").status_code == 200       # a grant on a missing column: skipped
    # a read grant does not let him write; an edit grant does
    assert rep_a.patch(f"/objects/prospect/records/{rec['rep_c']}", {"title": "taken"}).status_code == 404
    assert rep_b.patch(f"/objects/prospect/records/{rec['admin']}", {"title": "worked on"}).status_code == 200
    assert api.get(f"/objects/prospect/records/{rec['rep_c']}").get_json()["title"] == "rep_c's"
    # principals are cached per security version: a new grant shows once it moves
    territories[users["rep_a"]] = Grant("score", frozenset({8}))
    assert titles(rep_a) == ["rep_a's", "rep_c's"]
    with runtime.db.write() as conn:
        bump_security(conn)
    assert titles(rep_a) == ["rep_a's", "worked on"]
    assert calls.count(users["rep_a"]) == 2                                   # once per version, not per request


def test_handover_moves_everything_and_is_audited(org, api, runtime):
    rep_a, rep_b = org["users"]["rep_a"], org["users"]["rep_b"]
    org["as"]["rep_a"].post("/objects/prospect/records", {"title": "second"})
    org["as"]["rep_a"].post("/objects/activity/records", {"note": "call"})
    r = api.post(f"/users/{rep_a}/handover", {"to": rep_b})
    assert r.status_code == 200 and r.get_json()["moved"] == {"activity": 1, "prospect": 2}
    assert titles(org["as"]["rep_a"]) == []
    assert titles(org["as"]["rep_b"]) == ["rep_a's", "rep_b's", "second"]
    entry = api.get("/audit?action=handover").get_json()["entries"][0]
    assert entry["details"]["moved"] == {"activity": 1, "prospect": 2} and entry["target"] == str(rep_a)
    # deactivating: the user's tokens stop, the records and history stay
    assert api.delete(f"/users/{rep_a}").status_code == 204
    assert org["as"]["rep_a"].get("/objects/prospect/records").status_code == 401
    assert api.post(f"/users/{rep_b}/handover", {"to": rep_a}).status_code == 422


def test_handover_with_a_filter(org, api):
    rep_a = org["users"]["rep_a"]
    org["as"]["rep_a"].post("/objects/prospect/records", {"title": "hot", "score": 90})
    r = api.post(f"/users/{rep_a}/handover", {"to": org["users"]["rep_b"], "objects": ["prospect"],
                                              "filter": {"field": "score", "op": "gte", "value": 50}})
    assert r.get_json()["moved"] == {"prospect": 1}
    assert titles(org["as"]["rep_a"]) == ["rep_a's"]


def test_tokens_scoped_revoked_expired(org, api, app, runtime):
    rep_a = org["as"]["rep_a"]
    ro = rep_a.post("/tokens", {"name": "ro", "read_only": True}).get_json()["token"]
    ro_api = Api(app.test_client(), ro)
    assert ro_api.get("/objects/prospect/records").status_code == 200
    assert ro_api.post("/objects/prospect/records", {"title": "x"}).status_code == 403
    only = Api(app.test_client(), rep_a.post("/tokens", {"objects": ["activity"]}).get_json()["token"])
    assert only.get("/objects/prospect/records").status_code == 403
    assert only.get("/objects/activity/records").status_code == 200
    mine = rep_a.get("/tokens").get_json()["tokens"]
    assert all(t["user"] == org["users"]["rep_a"] for t in mine) and "token" not in mine[0]
    ro_id = next(t["id"] for t in mine if t["name"] == "ro")
    assert org["as"]["rep_b"].delete(f"/tokens/{ro_id}").status_code == 404   # not his
    assert rep_a.delete(f"/tokens/{ro_id}").status_code == 204
    assert ro_api.get("/objects/prospect/records").status_code == 401        # replaying a revoked token
    past = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)).isoformat()
    expired = rep_a.post("/tokens", {"expires_at": past}).get_json()["token"]
    assert Api(app.test_client(), expired).get("/me").status_code == 401
    assert rep_a.post("/tokens", {"user": "boss"}).status_code == 403          # only admins mint for others
    assert api.post("/tokens", {"user": "boss", "read_only": True}).status_code == 201


def test_a_limited_token_is_limited_on_every_endpoint_and_cannot_mint_a_wider_one(org, api, app):
    rep_a = org["as"]["rep_a"]
    ro = Api(app.test_client(), rep_a.post("/tokens", {"name": "ro", "read_only": True}).get_json()["token"])
    only = Api(app.test_client(), rep_a.post("/tokens", {"objects": ["activity"]}).get_json()["token"])
    admin_ro = Api(app.test_client(), api.post("/tokens", {"read_only": True}).get_json()["token"])
    for limited in (ro, only, admin_ro):                       # neither mints a token, for itself or anyone
        assert limited.post("/tokens", {"name": "wider"}).status_code == 403
    assert admin_ro.post("/tokens", {"user": "boss"}).status_code == 403
    # read-only: every write is refused, reads (including a query sent by POST) work
    for method, path, payload in [("patch", "/me", {"language": "en"}), ("post", "/notifications/read-all", {}),
                                  ("post", "/departments", {"name": "x"}), ("delete", "/tokens/1", None),
                                  ("post", "/imports", {}), ("post", "/functions/anything/run", {})]:
        assert ro.__getattr__(method)(path, payload).status_code == 403, path
    assert ro.post("/objects/prospect/query", {"fields": ["title"]}).status_code == 200
    assert admin_ro.post("/users", {"login": "sneaky", "password": PW}).status_code == 403
    # limited to activity: nothing about users, audit, imports, notifications, views, tokens
    for path in ("/users", "/audit", "/imports/mappings", "/notifications", "/tokens", "/objects/prospect/records",
                 "/meta/schedules", "/jobs", "/meta/function-runs"):
        r = only.get(path)
        assert r.status_code == 403 and r.get_json()["error"]["fields"] == {"token": "Limited to objects."}, path
    assert only.get("/me").status_code == 200 and only.get("/objects/activity/records").status_code == 200


def test_signing_out_or_a_password_reset_ends_the_session_for_good(org, api, app):
    def signed_in(login):
        c = app.test_client()
        csrf = c.get("/login").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
        assert c.post("/login", data={"login": login, "password": PW, "csrf_token": csrf}).status_code == 302
        return c, csrf

    c, _ = signed_in("rep_a")
    copy = app.test_client()                  # the same cookie in another browser (stolen, or a second tab)
    copy.set_cookie("session", c.get_cookie("session").value)
    assert copy.get("/api/v1/me").status_code == 200 and copy.get("/").status_code == 200
    csrf = c.get("/").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    assert c.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert copy.get("/api/v1/me").status_code == 401
    r = copy.get("/")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")

    # a reset by an admin ends every session of the user and revokes his tokens
    phone, _ = signed_in("rep_b")
    laptop, _ = signed_in("rep_b")
    token_api = org["as"]["rep_b"]
    assert token_api.get("/me").status_code == 200
    assert api.patch(f"/users/{org['users']['rep_b']}", {"password": "a-new-pass-99"}).status_code == 200
    assert phone.get("/api/v1/me").status_code == 401 and laptop.get("/api/v1/me").status_code == 401
    assert token_api.get("/me").status_code == 401
    entries = api.get("/audit?action=sign_out").get_json()["entries"]
    assert [e["actor_login"] for e in entries] == ["rep_a"]           # the ended copy signed nobody out


def test_changing_ones_own_password_ends_ones_other_sessions(org, app):
    def signed_in():
        c = app.test_client()
        csrf = c.get("/login").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
        assert c.post("/login", data={"login": "rep_a", "password": PW, "csrf_token": csrf}).status_code == 302
        return c, c.get("/").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    here, csrf = signed_in()
    elsewhere, _ = signed_in()
    r = here.post("/api/v1/me/password", json={"old_password": PW, "new_password": "another-pass-77"},
                  headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204
    assert here.get("/api/v1/me").status_code == 200                 # the browser that changed it goes on
    assert elsewhere.get("/api/v1/me").status_code == 401            # the others are signed out
    assert org["as"]["rep_a"].get("/me").status_code == 200          # his tokens are his to manage


def test_taking_back_a_share_needs_the_edit_right(org, api, runtime):
    rid = org["rec"]["rep_a"]
    share = api.post(f"/objects/prospect/records/{rid}/shares", {"with": {"type": "user", "id": org["users"]["rep_b"]},
                                                                   "access": "read"})
    assert share.status_code == 201, share.get_json()
    api.post("/roles", {"api_name": "reader", "label": "Reader", "objects": {
        "prospect": {"read": True, "scope": "all"}}})
    api.post("/users", {"login": "reader", "name": "reader", "password": PW, "roles": ["reader"]})
    from leadhub.platform import auth as auth_
    reader = Api(org["as"]["rep_a"].client.application.test_client(), auth_.create_token(runtime.db, "reader"))
    r = reader.delete(f"/objects/prospect/records/{rid}/shares/{share.get_json()['id']}")
    assert r.status_code == 403
    assert len(api.get(f"/objects/prospect/records/{rid}/shares").get_json()["shares"]) == 1
    assert org["as"]["rep_a"].delete(f"/objects/prospect/records/{rid}/shares/{share.get_json()['id']}").status_code == 204


def test_admin_endpoints_need_an_admin(org):
    rep = org["as"]["rep_a"]
    assert rep.post("/users", {"login": "x", "password": PW}).status_code == 403
    assert rep.patch(f"/users/{org['users']['rep_a']}", {"roles": ["system_admin"]}).status_code == 403
    assert rep.post("/roles", {"api_name": "x", "label": "X", "objects": {}}).status_code == 403
    assert rep.get("/audit").status_code == 403
    assert rep.post(f"/users/{org['users']['rep_b']}/handover", {"to": org["users"]["rep_a"]}).status_code == 403
    assert rep.get("/me").get_json()["login"] == "rep_a"


def test_union_of_roles(org, api):
    api.patch(f"/users/{org['users']['rep_a']}", {"roles": ["rep_no_secret", "marketing"]})
    rep_a = org["as"]["rep_a"]
    assert len(titles(rep_a)) == 4                                             # marketing's scope: all
    assert "secret" in rep_a.get(f"/objects/prospect/records/{org['rec']['rep_b']}").get_json()   # marketing sees it


@pytest.mark.parametrize("path, body, key", [
    ("/roles", {"api_name": "r1", "label": "R", "objects": {"nope": {"read": True}}}, "objects.nope"),
    ("/roles", {"api_name": "r1", "label": "R", "objects": {"prospect": {"read": True, "scope": "galaxy"}}},
     "objects.prospect.scope"),
    ("/roles", {"api_name": "r1", "label": "R", "objects": {"prospect": {"fields": {"ghost": "hidden"}}}},
     "objects.prospect.fields"),
    ("/roles", {"api_name": "select", "label": "R", "objects": {}}, "api_name"),
    ("/users", {"login": "u1", "password": "short"}, "password"),
    ("/users", {"login": "u1", "password": PW, "roles": ["nope"]}, "roles"),
    ("/users", {"login": "u1", "password": PW, "department": 999}, "department"),
    ("/users", {"login": "bad login!", "password": PW}, "login"),
    ("/users", {"login": "u1", "timezone": "Mars/Base"}, "timezone"),
    ("/departments", {"name": "x", "parent": 999}, "parent"),
])
def test_bad_identity_input(org, api, path, body, key):
    r = api.post(path, body)
    assert r.status_code == 422 and key in r.get_json()["error"]["fields"], r.get_json()


def test_cycles_are_refused(org, api):
    r = api.patch(f"/users/{org['users']['boss']}", {"manager": org["users"]["rep_a"]})
    assert r.status_code == 422 and "manager" in r.get_json()["error"]["fields"]
    r = api.patch(f"/departments/{org['depts']['sales']}", {"parent": org["depts"]["shenzhen"]})
    assert r.status_code == 422 and "parent" in r.get_json()["error"]["fields"]
    assert api.delete(f"/departments/{org['depts']['south']}").status_code == 409   # has children
    assert api.delete("/roles/sales_rep").status_code == 409                        # built-in


def test_password_lockout_and_audit(org, runtime, api):
    from leadhub.platform.errors import Unauthorized
    for _ in range(5):
        with pytest.raises(Unauthorized):
            auth.sign_in(runtime.db, runtime.cache, "rep_a", "wrong-guess-1")
    with pytest.raises(Unauthorized):   # locked: even the right password fails for now
        auth.sign_in(runtime.db, runtime.cache, "rep_a", PW)
    failed = api.get("/audit?action=sign_in_failed").get_json()["entries"]
    assert len(failed) == 6 and failed[0]["details"] == {"locked": True}
    assert api.patch(f"/users/{org['users']['rep_a']}", {"password": "a-new-pass-2"}).status_code == 200  # admin reset
    assert auth.sign_in(runtime.db, runtime.cache, "rep_a", "a-new-pass-2").login == "rep_a"


def test_browser_session_with_csrf(org, app):
    c = app.test_client()
    page = c.get("/login").get_data(as_text=True)
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    assert c.post("/login", data={"login": "rep_a", "password": PW}).status_code == 400       # no CSRF token
    r = c.post("/login", data={"login": "rep_a", "password": "nope-nope-1", "csrf_token": csrf})
    assert r.status_code == 401
    r = c.post("/login", data={"login": "rep_a", "password": PW, "csrf_token": csrf, "next": "//evil.example"})
    assert r.status_code == 302 and r.headers["Location"] == "/"
    assert c.get("/api/v1/me").get_json()["login"] == "rep_a"
    assert c.post("/api/v1/objects/prospect/records", json={"title": "x"}).status_code == 403  # no X-CSRF-Token
    csrf = c.get("/login").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    r = c.post("/api/v1/objects/prospect/records", json={"title": "x"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201
    cookie = r.headers.get("Set-Cookie") or c.get("/login").headers.get("Set-Cookie", "")
    assert c.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert c.get("/api/v1/me").status_code == 401


def test_export_respects_rights_scope_and_hidden_fields(org, api):
    r = org["as"]["rep_a"].get("/objects/prospect/export")
    assert r.status_code == 403                                           # reps have no export right
    r = org["as"]["boss"].get('/objects/prospect/export?sort=id&filter={"field":"score","op":"eq","value":1}')
    assert r.status_code == 200 and r.mimetype == "text/csv"
    lines = r.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0].split(",")[:3] == ["id", "owner", "created_by"]
    assert [line.split(",")[0] for line in lines[1:]] == [str(org["rec"][u]) for u in ("rep_a", "rep_b", "rep_c")]
    entry = api.get("/audit?action=export").get_json()["entries"][0]
    assert entry["object"] == "prospect" and entry["details"]["records"] == 3
    api.post("/roles", {"api_name": "exporter", "label": "E", "objects": {
        "prospect": {"read": True, "export": True, "scope": "own", "fields": {"secret": "hidden"}}}})
    api.patch(f"/users/{org['users']['rep_a']}", {"roles": ["exporter"]})
    text = org["as"]["rep_a"].get("/objects/prospect/export").get_data(as_text=True)
    assert "secret" not in text.splitlines()[0] and len(text.strip().splitlines()) == 2


def test_export_neutralises_spreadsheet_formulas(api, make_object):
    make_object("note", [{"api_name": "body", "label": "B", "type": "text"}])
    api.post("/objects/note/records", {"body": "=HYPERLINK(\"http://x\")"})
    text = api.get("/objects/note/export?fields=body").get_data(as_text=True)
    assert text.lstrip("\ufeff").splitlines()[1] == '"\'=HYPERLINK(""http://x"")"'


def test_search_finds_only_readable_records(org, api):
    api.patch(f"/objects/prospect/records/{org['rec']['rep_b']}", {"title": "深圳华为 rep_b"})
    api.patch(f"/objects/prospect/records/{org['rec']['rep_a']}", {"title": "深圳腾讯 rep_a"})
    hits = org["as"]["rep_a"].get("/search?q=深圳").get_json()["results"]
    assert [(h["object"], h["id"]) for h in hits] == [("prospect", org["rec"]["rep_a"])]
    assert len(org["as"]["boss"].get("/search?q=深圳").get_json()["results"]) == 2
    # a hidden field is not searched: rep_a cannot find records by their secret
    api.patch(f"/objects/prospect/records/{org['rec']['rep_a']}", {"secret": "codeword"})
    assert org["as"]["rep_a"].get("/search?q=codeword").get_json()["results"] == []
    assert api.get("/search?q=codeword").get_json()["results"][0]["matched"] == ["secret"]
    assert api.get("/search?q=").status_code == 400


def test_cli_and_api_build_an_org_and_each_gets_exactly_their_records(tmp_path, database_url, monkeypatch):
    """The issue's walk-through with the CLI and API alone."""
    from click.testing import CliRunner
    from leadhub.cli import main
    from leadhub.platform.config import Config
    from leadhub.runtime import Runtime
    from leadhub.web.app import create_app

    monkeypatch.setenv("LEADHUB_INSTANCE_PATH", str(tmp_path / "inst"))
    monkeypatch.setenv("LEADHUB_DATABASE_URL", database_url)
    run = CliRunner().invoke
    assert run(main, ["init"]).exit_code == 0
    for args in (["--name", "HQ"], ["--name", "Sales", "--parent", "HQ"], ["--name", "Team A", "--parent", "Sales"]):
        r = run(main, ["department", "create", *args])
        assert r.exit_code == 0, r.output
    assert "    " in run(main, ["department", "list"]).output          # three levels, indented
    r = run(main, ["user", "create", "--login", "mgr", "--password", PW, "--role", "sales_manager",
                   "--department", "Sales"])
    assert r.exit_code == 0 and "sales_manager" in r.output, r.output
    for rep in ("rep1", "rep2"):
        r = run(main, ["user", "create", "--login", rep, "--password", PW, "--role", "sales_rep",
                       "--department", "Team A", "--manager", "mgr"])
        assert r.exit_code == 0, r.output
    r = run(main, ["user", "create", "--login", "bad", "--password", "short", "--role", "sales_rep"])
    assert r.exit_code != 0 and "password" in r.output
    tokens = {}
    for login in ("admin", "mgr", "rep1", "rep2"):
        r = run(main, ["token", "create", "--user", login])
        tokens[login] = r.output.strip()
    rt = Runtime(Config.from_env())
    app = create_app(runtime=rt.start())
    clients = {k: Api(app.test_client(), v) for k, v in tokens.items()}
    for rep in ("rep1", "rep2"):
        for i in range(2):
            r = clients[rep].post("/objects/lead/records", {"name": f"{rep}-{i}", "status": "new"})
            assert r.status_code == 201, r.get_json()
    clients["admin"].post("/objects/lead/records", {"name": "unassigned", "status": "new"})

    def names(who):
        return sorted(x["name"] for x in clients[who].get("/objects/lead/records?fields=name").get_json()["records"])
    assert names("rep1") == ["rep1-0", "rep1-1"]
    assert names("rep2") == ["rep2-0", "rep2-1"]
    assert names("mgr") == ["rep1-0", "rep1-1", "rep2-0", "rep2-1"]
    assert len(names("admin")) == 5
    rt.close()


def test_home_page_needs_a_session_and_lists_readable_objects(org, app):
    c = app.test_client()
    r = c.get("/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    csrf = c.get("/login").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    c.post("/login", data={"login": "rep_a", "password": PW, "csrf_token": csrf})
    page = c.get("/").get_data(as_text=True)
    assert "rep_a" in page and "/api/v1/objects/prospect/records" in page


def test_me_in_a_filter_is_the_reader(org):
    """One shared "my records" view serves every user: $me is the reader."""
    mine = {"field": "owner", "op": "eq", "value": "$me"}
    assert titles(org["as"]["rep_a"], filter=mine) == ["rep_a's"]
    assert titles(org["as"]["boss"], filter=mine) == []
    assert titles(org["as"]["boss"], filter={"field": "owner", "op": "in", "value": ["$me", org["users"]["rep_b"]]}) \
        == ["rep_b's"]
    r = org["as"]["boss"].post("/objects/prospect/query", {"filter": {"field": "title", "op": "eq", "value": "$me"}})
    assert r.status_code == 200 and r.get_json()["records"] == []      # on text fields it is just text


def test_users_set_their_own_language_but_nothing_else(org):
    rep = org["as"]["rep_a"]
    r = rep.patch("/me", {"language": "en", "timezone": "Europe/Berlin"})
    assert r.status_code == 200 and r.get_json()["language"] == "en" and r.get_json()["timezone"] == "Europe/Berlin"
    assert rep.get("/me").get_json()["language"] == "en"
    r = rep.patch("/me", {"is_admin": True, "language": "zh_CN"})
    assert r.status_code == 403 and "is_admin" in r.get_json()["error"]["fields"]
    assert rep.get("/me").get_json()["language"] == "en"           # nothing of a refused change
    r = rep.patch("/me", {"language": "fr"})
    assert r.status_code == 422 and "language" in r.get_json()["error"]["fields"]


def _sign_in(client, login, password, address):
    page = client.get("/login", environ_base={"REMOTE_ADDR": address}).get_data(as_text=True)
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    return client.post("/login", data={"login": login, "password": password, "csrf_token": csrf},
                       environ_base={"REMOTE_ADDR": address})


def _spray_until_refused(app, org):
    """One address trying a password on many accounts: the per-account
    lockout never fires (one try each), the per-address limit does."""
    client = app.test_client()
    logins = ["rep_a", "rep_b", "boss", "nobody_1", "nobody_2"]
    codes = [_sign_in(client, logins[i % len(logins)], "Winter2026!", "203.0.113.7").status_code for i in range(20)]
    assert codes == [401] * 20
    r = _sign_in(client, "rep_a", PW, "203.0.113.7")        # even the right password: this address must wait
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    assert "尝试次数过多" in r.get_data(as_text=True)
    assert _sign_in(app.test_client(), "rep_a", PW, "198.51.100.2").status_code == 302   # another address is not


def test_sign_in_is_limited_per_address(org, app):
    _spray_until_refused(app, org)


@needs_redis
def test_sign_in_limits_are_counted_in_redis_for_every_process(org, runtime):
    from leadhub.web.app import create_app
    runtime.config.redis_url = REDIS_URL
    first, second = create_app(runtime=runtime), create_app(runtime=runtime)   # two server processes' apps
    for _ in range(20):
        assert _sign_in(first.test_client(), "nobody_1", "x-x-x-x-x", "203.0.113.9").status_code == 401
    assert _sign_in(second.test_client(), "rep_a", PW, "203.0.113.9").status_code == 429


def test_sign_in_works_and_stays_limited_with_redis_unreachable(org, runtime):
    from leadhub.web.app import create_app
    runtime.config.redis_url = "redis://127.0.0.1:1/0"           # nothing listens there
    app = create_app(runtime=runtime)
    assert _sign_in(app.test_client(), "rep_a", PW, "198.51.100.3").status_code == 302
    _spray_until_refused(app, org)
