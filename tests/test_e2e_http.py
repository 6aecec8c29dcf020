"""The issue's walk-through, over real HTTP only: a new user creates an
object with every field type, inserts 1,000 records, filters, sorts and
pages them, adds a field to the populated object, deletes and restores a
field with its data intact, and sees the new column in the database and in
openapi.json."""
import http.client
import json
import threading

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from leadhub.platform import auth
from tests.specs import ACCOUNT_FIELDS, DEAL_FIELDS, NOTE_FIELDS


@pytest.fixture
def server(app, runtime):
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_port, auth.create_token(runtime.db, "admin")
    srv.shutdown()
    thread.join(10)


class Http:
    def __init__(self, port, token):
        self.port, self.token = port, token

    def __call__(self, method, path, body=None, raw=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        conn.request(method, "/api/v1" + path, body=data,
                     headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        return resp.status, (json.loads(payload) if payload else None)


def test_walkthrough_over_http(server, runtime):
    http = Http(*server)
    status, _ = http("POST", "/meta/objects", {"api_name": "account", "label": "客户", "fields": ACCOUNT_FIELDS[:1]})
    assert status == 201
    status, body = http("POST", "/meta/objects", {"api_name": "deal", "label": {"en": "Deal", "zh_CN": "商机"},
                                                 "name_field": "title", "fields": DEAL_FIELDS})
    assert status == 201, body
    assert http("POST", "/meta/objects/account/fields", ACCOUNT_FIELDS[1])[0] == 201
    assert http("POST", "/meta/objects", {"api_name": "note", "label": "Note", "fields": NOTE_FIELDS})[0] == 201
    types = {f["type"] for f in http("GET", "/meta/objects/deal")[1]["fields"]} | {"rollup", "master_detail"}
    assert len(types) == 21

    _, acc = http("POST", "/objects/account/records", {"name": "华为"})
    rows = [{"title": f"deal {i:04d}", "quantity": i % 7, "amount": f"{i}.50", "stage": ["open", "won", "lost"][i % 3],
             "province": "guangdong", "city": ["shenzhen", "guangzhou"][i % 2], "tags": ["vip"] if i % 5 == 0 else [],
             "close_date": f"2026-{1 + i % 12:02d}-15", "account": acc["id"] if i % 10 == 0 else None,
             "email": f"d{i}@example.com", "reviewer": 1, "won": i % 3 == 1}
            for i in range(1000)]
    for start in range(0, 1000, 250):
        status, body = http("POST", "/objects/deal/records/bulk", {"records": rows[start:start + 250]})
        assert status == 201, body
    status, page = http("POST", "/objects/deal/query", {
        "filter": {"and": [{"field": "stage", "op": "eq", "value": "won"},
                           {"field": "city", "op": "eq", "value": "shenzhen"},
                           {"field": "quantity", "op": "gte", "value": 3}]},
        "sort": ["-amount"], "fields": ["title", "amount", "quantity", "deal_no", "account.name"],
        "page": 2, "page_size": 20, "count": True})
    assert status == 200
    expected = sorted([r for r in rows if r["stage"] == "won" and r["city"] == "shenzhen" and r["quantity"] >= 3],
                      key=lambda r: -float(r["amount"]))
    assert page["total"] == len(expected)
    assert [r["title"] for r in page["records"]] == [r["title"] for r in expected[20:40]]
    assert http("GET", f"/objects/account/records/{acc['id']}")[1]["deal_count"] == 100

    # add a field to the populated object: a real column, in openapi.json
    status, _ = http("POST", "/meta/objects/deal/fields", {"api_name": "wechat", "label": "微信", "type": "text"})
    assert status == 201
    with runtime.db.read() as conn:
        assert "wechat" in {c["name"] for c in sa.inspect(conn).get_columns("o_deal")}
    props = http("GET", "/openapi.json")[1]["components"]["schemas"]["deal_record"]["properties"]
    assert props["wechat"]["title"] == "微信"
    assert http("PATCH", "/objects/deal/records/7", {"wechat": "wx_7"})[0] == 200

    # delete and restore a field: the data survives
    assert http("DELETE", "/meta/objects/deal/fields/wechat")[0] == 204
    assert "wechat" not in http("GET", "/objects/deal/records/7")[1]
    assert "wechat" not in http("GET", "/openapi.json")[1]["components"]["schemas"]["deal_record"]["properties"]
    assert http("POST", "/meta/objects/deal/fields/wechat/restore")[0] == 200
    assert http("GET", "/objects/deal/records/7")[1]["wechat"] == "wx_7"

    # bad input over the wire is a 4xx with the field named, never a 500
    status, body = http("POST", "/objects/deal/records", raw="{not json")
    assert status == 400 and body["error"]["fields"] == {"body": "Malformed JSON."}
    status, body = http("POST", "/objects/deal/query", {"filter": {"field": "nope", "op": "eq", "value": 1}})
    assert status == 400 and "nope" in body["error"]["fields"]
