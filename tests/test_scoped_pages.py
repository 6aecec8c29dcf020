"""A reader who sees a few owners' records gets their pages from one branch
per owner, merged (query.py, _owner_branches). Whatever the plan, the pages
must be exactly the reader's records in the asked order: no record twice,
none missing, none from outside the scope, ties and empty values in place."""
import random

import pytest

from leadhub.data import query
from leadhub.platform import auth
from tests.conftest import Api

PW = "s3cret-pass"


@pytest.fixture
def team(api, app, runtime, make_object):
    def post(path, body):
        r = api.post(path, body)
        assert r.status_code == 201, r.get_json()
        return r.get_json()
    make_object("account", [{"api_name": "name", "label": "Name", "type": "text"},
                            {"api_name": "tier", "label": "Tier", "type": "picklist", "options": ["a", "b"]}])
    make_object("deal", [{"api_name": "title", "label": "Title", "type": "text"},
                         {"api_name": "score", "label": "Score", "type": "integer", "indexed": True},
                         {"api_name": "account", "label": "Account", "type": "lookup", "reference_to": "account"}])
    for i, sort in enumerate(["-score", "title"]):     # shared views: the kernel keeps (owner, field) indexes
        post("/meta/list-views", {"object": "deal", "api_name": f"v{i}", "name": {"en": sort, "zh_CN": sort},
                                  "columns": ["title", "score"], "sort": [sort]})
    sales = post("/departments", {"name": "Sales"})
    other = post("/departments", {"name": "Other"})
    users = {}
    for login, dept, roles in [("boss", sales, ["sales_manager"]), ("rep1", sales, ["sales_rep"]),
                               ("rep2", sales, ["sales_rep"]), ("rep3", sales, ["sales_rep"]),
                               ("outsider", other, ["sales_rep"])]:
        users[login] = post("/users", {"login": login, "name": login, "password": PW, "roles": roles,
                                       "department": dept["id"]})["id"]
    # the boss's accounts: a sort or filter across the lookup reads them through the boss's scope
    accounts = [post("/objects/account/records", {"name": f"acc{i}", "tier": "ab"[i % 2], "owner": users["boss"]})["id"]
                for i in range(4)]
    rnd = random.Random(7)
    owners = ["boss", "rep1", "rep2", "rep3", "outsider"]
    rows = []
    for i in range(60):
        owner = owners[i % 5]
        score = None if i % 11 == 0 else rnd.randint(1, 6)      # many ties, a few empty
        body = {"title": f"d{i:02}", "score": score, "owner": users[owner], "account": accounts[i % 4]}
        rows.append({**post("/objects/deal/records", body), "who": owner})
    shared = next(r for r in rows if r["who"] == "outsider")
    r = api.post(f"/objects/deal/records/{shared['id']}/shares",
                 {"with": {"type": "user", "id": users["boss"]}, "access": "read"})
    assert r.status_code == 201, r.get_json()
    clients = {login: Api(app.test_client(), auth.create_token(runtime.db, login)) for login in users}
    return {"rows": rows, "shared": shared["id"], "as": clients, "accounts": accounts}


def expected(rows, sort):
    """The order the compiler promises: the key (empty last ascending, first
    descending), then id in the key's direction."""
    field = sort.lstrip("-")
    desc = sort.startswith("-")
    if field == "id":
        return [r["id"] for r in sorted(rows, key=lambda r: r["id"], reverse=desc)]
    present = sorted((r for r in rows if r[field] is not None), key=lambda r: (r[field], r["id"]), reverse=desc)
    empty = sorted((r for r in rows if r[field] is None), key=lambda r: r["id"], reverse=desc)
    return [r["id"] for r in (empty + present if desc else present + empty)]


def pages(client, sort, page_size, filter_=None):
    ids, page = [], 1
    while True:
        body = {"fields": ["id", "title"], "sort": [sort], "page": page, "page_size": page_size, "count": True}
        if filter_:
            body["filter"] = filter_
        r = client.post("/objects/deal/query", body)
        assert r.status_code == 200, r.get_json()
        data = r.get_json()
        ids += [x["id"] for x in data["records"]]
        if not data["has_more"]:
            return ids, data["total"]
        page += 1


@pytest.mark.parametrize("sort", ["-score", "score", "title", "-id", "id", "account.name"])
def test_a_managers_pages_are_the_team_records_in_order(team, sort):
    visible = [r for r in team["rows"] if r["who"] != "outsider" or r["id"] == team["shared"]]
    if sort == "account.name":
        names = {a: f"acc{i}" for i, a in enumerate(team["accounts"])}
        visible = [{**r, "account.name": names[r["account"]]} for r in visible]
    ids, total = pages(team["as"]["boss"], sort, 7)
    assert ids == expected(visible, sort)
    assert total == len(visible) == 4 * 12 + 1


def test_on_postgresql_a_managers_page_is_split_by_owner_only_where_the_index_is(team, runtime):
    if runtime.db.engine.dialect.name != "postgresql":
        pytest.skip("the split plan is PostgreSQL's (SQLite has no use for it at its sizes)")
    from leadhub.data.query import QueryCompiler, QuerySpec
    boss = auth.actor_for(runtime.db, runtime.cache, team["rows"][0]["owner"])
    reg = runtime.cache.current()
    assert {"score", "title", "id"} <= reg.owner_sorted["o_deal"]

    def sql(sort):
        return str(QueryCompiler(reg, "deal", boss).compile(QuerySpec(sort=[sort]))[0])
    assert "UNION ALL" in sql("-score") and "UNION ALL" in sql("id")
    assert "UNION ALL" not in sql("account.name")      # another table's order: no index to split on


def test_the_split_plan_and_the_plain_one_give_the_same_pages(team, monkeypatch):
    flt = {"or": [{"field": "score", "op": "gte", "value": 4}, {"field": "account.tier", "op": "eq", "value": "a"}]}
    split = pages(team["as"]["boss"], "-score", 5, flt)
    monkeypatch.setattr(query, "MAX_OWNER_BRANCHES", 1)       # every scope the plain way
    assert pages(team["as"]["boss"], "-score", 5, flt) == split
    assert len(split[0]) == split[1] > 10


def test_a_rep_pages_only_their_own_and_a_page_past_the_end_is_empty(team):
    rep = team["as"]["rep2"]
    ids, total = pages(rep, "-score", 4)
    assert ids == expected([r for r in team["rows"] if r["who"] == "rep2"], "-score") and total == 12
    r = rep.post("/objects/deal/query", {"sort": ["-score"], "page": 9, "page_size": 4})
    assert r.get_json()["records"] == [] and r.get_json()["has_more"] is False
