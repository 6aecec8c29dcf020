"""Bad input, everywhere the API takes input: each case is refused with its
exact 4xx status, the error's `fields` names what was wrong, and nothing was
written: no record row, no history, no auto-number, no metadata row, column
or index (the database is compared before and after, byte for byte)."""
import datetime as dt
import json

import pytest
import sqlalchemy as sa

from leadhub.platform import auth
from tests.conftest import Api, count_rows, made_once

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         409: "conflict", 422: "validation_failed"}
VALID_DEAL = {"title": "Big deal", "quantity": 3, "amount": "100.50", "discount": 10,
              "province": "guangdong", "city": "shenzhen"}
JSON = {"Content-Type": "application/json"}


# ---------------------------------------------------------------- helpers
def refused(r, status, *keys):
    """The answer is the error shape with `status`, and its fields name every key."""
    body = r.get_json(silent=True)
    assert r.status_code == status, (r.status_code, body if body is not None else r.data[:300])
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == CODES[status], err
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["fields"], dict), err
    for key in keys:
        assert key in err["fields"], (key, err)
        assert err["fields"][key], (key, err)
    return err["fields"]


def snapshot(runtime) -> dict:
    """Everything a write could touch: metadata rows, the version, every object
    table's columns, indexes and rows, field history and auto-number counters."""
    out = {}
    with runtime.db.read() as conn:
        for table, order in (("lh_meta_version", "1"), ("lh_objects", "1"), ("lh_fields", "1"),
                             ("lh_field_history", "1"), ("lh_autonumbers", "1, 2, 3")):
            out[table] = [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY {order}")]
        insp = sa.inspect(conn)
        for name in sorted(insp.get_table_names()):
            if name.startswith("o_"):
                out[name] = {
                    "columns": [(c["name"], str(c["type"])) for c in insp.get_columns(name)],
                    "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                      for i in insp.get_indexes(name)),
                    "rows": [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {name} ORDER BY id")],
                }
    return out


def each(check, **answers):
    """Run `check` on every labelled answer and report all that fail, not just the first."""
    failures = []
    for label, r in answers.items():
        try:
            check(r)
        except AssertionError as exc:
            failures.append(f"{label}: {exc}")
    if failures:
        pytest.fail("\n".join(failures))


def new_deal(api, **values):
    r = api.post("/objects/deal/records", {**VALID_DEAL, **values})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def field_def(api, obj, name):
    r = api.get(f"/meta/objects/{obj}/fields/{name}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def raw(api, method, path, data, headers=None):
    """A request whose body is sent as is (not encoded by the test client)."""
    return getattr(api, method)(path, data=data, headers={**JSON, **(headers or {})})


@pytest.fixture
def crm(request, crm_objects, api):
    """account <- deal (every type) <- note, plus one account record."""
    def make():
        r = api.post("/objects/account/records", {"name": "华为"})
        assert r.status_code == 201, r.get_json()
        return r.get_json()
    return made_once(request, "crm", make)


@pytest.fixture
def a_deal(request, api, crm):
    return made_once(request, "a_deal", lambda: new_deal(api, account=crm["id"], email="first@example.com",
                                                         tags=["hot"], phone="13800138000"))


# ================================================================ records
WRONG_TYPES = [
    ("quantity", "abc"), ("quantity", "12abc"), ("quantity", "1.5"), ("quantity", 1.5),
    ("quantity", "1e3"), ("quantity", True), ("quantity", False), ("quantity", [1]), ("quantity", {"n": 1}),
    pytest.param("quantity", "+-5", id="quantity-sign-soup"),
    pytest.param("quantity", "\u00b2", id="quantity-superscript-two"),
    pytest.param("quantity", 2**63, id="quantity-beyond-int64"),
    ("amount", "abc"), ("amount", True), ("amount", [1]), ("amount", {"v": "1"}), ("weight", False),
    ("discount", "ten"),
    ("won", "maybe"), ("won", 2), ("won", -1), ("won", 0.5), ("won", [True]), ("won", {"v": True}),
    ("close_date", "abc"), ("close_date", "2026-02-30"), ("close_date", 20260101),
    ("close_date", "01/03/2026"), ("close_date", True),
    ("last_contact", "abc"), ("last_contact", "2026-13-01T00:00:00Z"), ("last_contact", 1767225600),
    ("title", 123), ("title", True), ("title", ["a"]), ("title", {"en": "a"}),
    ("notes", 5), ("email", 5), ("phone", 13800138000), ("website", 1),
    ("stage", 1), ("stage", ["open"]), ("tags", 5), ("tags", {"hot": True}),
    ("account", "abc"), ("account", True), ("account", 1.5), ("account", [1]),
    ("reviewer", "admin"), ("reviewer", True), ("owner", "admin"), ("owner", False),
]


@pytest.mark.parametrize("field,value", WRONG_TYPES)
@pytest.mark.writes_nothing
def test_wrong_type_is_refused(api, runtime, a_deal, field, value):
    before = snapshot(runtime)

    def check(r):
        fields = refused(r, 422, field)
        assert set(fields) == {field}
    each(check, create=api.post("/objects/deal/records", {**VALID_DEAL, field: value}),
         update=api.patch(f"/objects/deal/records/{a_deal['id']}", {field: value}))
    assert snapshot(runtime) == before


@pytest.mark.parametrize("field", ["bogus", "Title", "name", "deleted_at", "o_deal", "title "])
@pytest.mark.writes_nothing
def test_unknown_field_is_refused(api, runtime, a_deal, field):
    before = snapshot(runtime)

    def check(r):
        assert refused(r, 422, field)[field] == "Unknown field."
    each(check, create=api.post("/objects/deal/records", {**VALID_DEAL, field: "x"}),
         update=api.patch(f"/objects/deal/records/{a_deal['id']}", {"quantity": 99, field: "x"}))
    assert snapshot(runtime) == before


def test_a_deleted_field_is_unknown(api, runtime, a_deal):
    assert api.delete("/meta/objects/deal/fields/notes").status_code == 204
    before = snapshot(runtime)
    refused(api.post("/objects/deal/records", {**VALID_DEAL, "notes": "x"}), 422, "notes")
    refused(api.patch(f"/objects/deal/records/{a_deal['id']}", {"notes": "x"}), 422, "notes")
    assert snapshot(runtime) == before


@pytest.mark.parametrize("field,value", [
    pytest.param("title", "x" * 41, id="title-41"), pytest.param("title", "华" * 41, id="title-41-cjk"),
    pytest.param("notes", "n" * 32769, id="long-text-32769"),
    pytest.param("email", "a" * 250 + "@example.com", id="email-262"),
    pytest.param("phone", "1" * 21, id="phone-21-digits"),
    pytest.param("website", "https://example.com/" + "p" * 2040, id="url-2060"),
])
@pytest.mark.writes_nothing
def test_string_over_max_length_is_refused(api, runtime, a_deal, field, value):
    before = snapshot(runtime)

    def check(r):
        refused(r, 422, field)
    each(check, create=api.post("/objects/deal/records", {**VALID_DEAL, field: value}),
         update=api.patch(f"/objects/deal/records/{a_deal['id']}", {field: value}))
    assert snapshot(runtime) == before


@pytest.mark.parametrize("field,value", [
    pytest.param("title", "a\u0000b", id="title-NUL"),
    pytest.param("notes", "line\u0000", id="notes-NUL"),
])
@pytest.mark.writes_nothing
def test_nul_character_in_text_is_refused(api, runtime, a_deal, field, value):
    """PostgreSQL text cannot hold U+0000; SQLite and PostgreSQL must answer alike: 422."""
    before = snapshot(runtime)

    def check(r):
        refused(r, 422, field)
    each(check, create=api.post("/objects/deal/records", {**VALID_DEAL, field: value}),
         update=api.patch(f"/objects/deal/records/{a_deal['id']}", {field: value}))
    assert snapshot(runtime) == before


@pytest.mark.writes_nothing
def test_lone_surrogate_in_text_is_refused(api, runtime, a_deal):
    """'\\ud800' is valid JSON syntax but not a character any database can store."""
    before = snapshot(runtime)
    r = raw(api, "post", "/objects/deal/records", '{"title": "bad \\ud800 text"}')
    body = r.get_json(silent=True)
    assert r.status_code == 422, (r.status_code, body)
    refused(r, r.status_code, "body" if r.status_code == 400 else "title")
    assert snapshot(runtime) == before


@pytest.mark.parametrize("body,field", [
    ({"title": None}, "title"), ({"title": "   "}, "title"), ({"title": ""}, "title"),
])
@pytest.mark.writes_nothing
def test_required_field_left_empty_is_refused(api, runtime, a_deal, body, field):
    before = snapshot(runtime)

    def check(r):
        assert refused(r, 422, field)[field] == "This field is required."
    each(check, create=api.post("/objects/deal/records", {**VALID_DEAL, **body}),
         update=api.patch(f"/objects/deal/records/{a_deal['id']}", body))
    assert snapshot(runtime) == before


@pytest.mark.writes_nothing
def test_required_field_missing_on_create_is_refused(api, runtime, crm):
    before = snapshot(runtime)
    body = {k: v for k, v in VALID_DEAL.items() if k != "title"}
    refused(api.post("/objects/deal/records", body), 422, "title")
    refused(api.post("/objects/note/records", {"hours": "1"}), 422, "deal")   # master-detail is required
    assert snapshot(runtime) == before


@pytest.mark.parametrize("field,value", [
    ("stage", "pending"), ("stage", "OPEN"), ("stage", "open;won"), ("province", "beijing"),
    ("tags", ["hot", "cold"]), ("tags", "hot;cold"), ("tags", ["HOT"]), ("tags", [1]), ("tags", [None]),
    ("tags", [["hot"]]), ("city", "beijing"),
])
@pytest.mark.writes_nothing
def test_value_not_among_the_options_is_refused(api, runtime, a_deal, field, value):
    before = snapshot(runtime)

    def check(r):
        refused(r, 422, field)
    each(check, create=api.post("/objects/deal/records", {**VALID_DEAL, field: value}),
         update=api.patch(f"/objects/deal/records/{a_deal['id']}", {field: value}))
    assert snapshot(runtime) == before


def test_inactive_option_is_refused_for_new_values(api, runtime, a_deal):
    r = api.patch("/meta/objects/deal/fields/stage",
                  {"options": ["open", "won", {"value": "lost", "active": False}]})
    assert r.status_code == 200, r.get_json()
    before = snapshot(runtime)
    refused(api.post("/objects/deal/records", {**VALID_DEAL, "stage": "lost"}), 422, "stage")
    refused(api.patch(f"/objects/deal/records/{a_deal['id']}", {"stage": "lost"}), 422, "stage")
    assert snapshot(runtime) == before


@pytest.mark.parametrize("body", [
    pytest.param({"province": "guangdong", "city": "hangzhou"}, id="city-of-another-province"),
    pytest.param({"province": "zhejiang", "city": "shenzhen"}, id="city-of-another-province-2"),
    pytest.param({"province": None, "city": "shenzhen"}, id="no-controlling-value"),
])
@pytest.mark.writes_nothing
def test_dependent_picklist_value_must_belong_to_the_controlling_value(api, runtime, crm, body):
    before = snapshot(runtime)
    payload = {**VALID_DEAL, **body}
    if body["province"] is None:
        payload.pop("province")
    fields = refused(api.post("/objects/deal/records", payload), 422, "city")
    assert set(fields) == {"city"}
    assert snapshot(runtime) == before


@pytest.mark.parametrize("change", [
    pytest.param({"province": "zhejiang"}, id="controlling-moves-away"),
    pytest.param({"province": None}, id="controlling-cleared"),
    pytest.param({"city": "hangzhou"}, id="dependent-moves-away"),
])
@pytest.mark.writes_nothing
def test_update_that_breaks_a_dependent_picklist_is_refused(api, runtime, a_deal, change):
    before = snapshot(runtime)
    refused(api.patch(f"/objects/deal/records/{a_deal['id']}", change), 422, "city")
    assert snapshot(runtime) == before
    got = api.get(f"/objects/deal/records/{a_deal['id']}").get_json()
    assert (got["province"], got["city"]) == ("guangdong", "shenzhen")


@pytest.mark.parametrize("field,value", [
    ("weight", "1.2345"), ("weight", "0.0001"), ("weight", "1e-4"), ("weight", "12345678"),
    ("weight", "12345678.1"), ("amount", "1.234"), ("amount", "-0.001"), ("amount", "1000000000000"),
    ("amount", "1e13"), ("discount", "1.001"), ("discount", "12345678"),
    ("amount", "NaN"), ("amount", "nan"), ("amount", "sNaN"), ("amount", "Infinity"),
    ("amount", "-Infinity"), ("amount", "inf"), ("weight", "1e400"),
])
@pytest.mark.writes_nothing
def test_decimal_beyond_precision_or_not_finite_is_refused(api, runtime, a_deal, field, value):
    before = snapshot(runtime)

    def check(r):
        refused(r, 422, field)
    each(check, create=api.post("/objects/deal/records", {**VALID_DEAL, field: value}),
         update=api.patch(f"/objects/deal/records/{a_deal['id']}", {field: value}))
    assert snapshot(runtime) == before


@pytest.mark.writes_nothing
def test_decimal_json_numbers_beyond_scale_are_refused(api, runtime, a_deal):
    before = snapshot(runtime)
    for body in ('{"title": "x", "weight": 1.2345}', '{"title": "x", "amount": 0.005}',
                 '{"title": "x", "amount": 1E+13}'):
        field = "weight" if "weight" in body else "amount"
        refused(raw(api, "post", "/objects/deal/records", body), 422, field)
        refused(raw(api, "patch", f"/objects/deal/records/{a_deal['id']}", body.replace('"title": "x", ', "")),
                422, field)
    assert snapshot(runtime) == before


@pytest.mark.parametrize("field,value", [
    ("email", "sales"), ("email", "sales@"), ("email", "sales@example"), ("email", "@example.com"),
    ("email", "a b@example.com"), ("email", "a@@example.com"), ("email", "a@example..com"),
    ("email", "a@.com"), ("email", "a@example.c"),
    ("phone", "call me"), ("phone", "12"), ("phone", "+86+138"),
    ("website", "ftp://example.com"), ("website", "not a url"), ("website", "http://"),
    ("website", 'https://example.com/"><script>alert(1)</script>'), ("website", "https://example.com/a b"),
    ("website", "https://example.com/it's"), ("website", "https://example.com/\\evil"),
    ("website", "javascript:alert(1)"),
])
@pytest.mark.writes_nothing
def test_malformed_email_phone_url_is_refused(api, runtime, a_deal, field, value):
    before = snapshot(runtime)

    def check(r):
        refused(r, 422, field)
    each(check, create=api.post("/objects/deal/records", {**VALID_DEAL, field: value}),
         update=api.patch(f"/objects/deal/records/{a_deal['id']}", {field: value}))
    assert snapshot(runtime) == before


@pytest.mark.parametrize("field,value", [
    ("deal_no", "DL-1"), ("total", "1.00"), ("headline", "x"), ("days_left", 3), ("hours_logged", "1"),
    ("created_at", "2026-01-01T00:00:00Z"), ("updated_at", "2026-01-01T00:00:00Z"),
    ("created_by", 1), ("updated_by", 1), ("id", 12345),
])
@pytest.mark.writes_nothing
def test_writing_a_read_only_field_is_refused(api, runtime, a_deal, field, value):
    before = snapshot(runtime)

    def check(r):
        assert refused(r, 422, field)[field] == "This field is read-only."
    each(check, create=api.post("/objects/deal/records", {**VALID_DEAL, field: value}),
         update=api.patch(f"/objects/deal/records/{a_deal['id']}", {"quantity": 7, field: value}))
    assert snapshot(runtime) == before


def test_writing_a_field_marked_read_only_is_refused(api, runtime, a_deal):
    assert api.patch("/meta/objects/deal/fields/phone", {"read_only": True}).status_code == 200
    before = snapshot(runtime)
    refused(api.post("/objects/deal/records", {**VALID_DEAL, "phone": "13900139000"}), 422, "phone")
    refused(api.patch(f"/objects/deal/records/{a_deal['id']}", {"phone": "13900139000"}), 422, "phone")
    assert snapshot(runtime) == before


@pytest.mark.writes_nothing
def test_the_rollup_parent_side_is_read_only(api, runtime, crm):
    before = snapshot(runtime)
    r = api.patch(f"/objects/account/records/{crm['id']}", {"deal_count": 5})
    assert refused(r, 422, "deal_count")["deal_count"] == "This field is read-only."
    assert snapshot(runtime) == before


# ---------------------------------------------------------------- references
@pytest.fixture
def deleted_account(api, crm):
    acc = api.post("/objects/account/records", {"name": "gone"}).get_json()
    assert api.delete(f"/objects/account/records/{acc['id']}").status_code == 204
    return acc


@pytest.mark.parametrize("field,target", [
    ("account", "missing"), ("account", "deleted"), ("account", "huge"), ("account", "beyond_int64"),
    ("reviewer", "missing"), ("reviewer", "inactive"), ("reviewer", "huge"),
    ("owner", "missing"), ("owner", "inactive"), ("owner", "huge"),
])
def test_reference_to_a_missing_or_deleted_record_is_refused(api, runtime, a_deal, deleted_account,
                                                             field, target):
    if target == "inactive":
        uid = auth.create_user(runtime.db, "gone", "Gone")
        with runtime.db.write() as conn:
            conn.exec_driver_sql(f"UPDATE lh_users SET active = false WHERE id = {uid}")
    value = {"missing": 424242, "deleted": deleted_account["id"], "huge": 2**63 - 1,
             "beyond_int64": 2**70, "inactive": uid if target == "inactive" else None}[target]
    before = snapshot(runtime)

    def check(r):
        assert set(refused(r, 422, field)) == {field}
    each(check, create=api.post("/objects/deal/records", {**VALID_DEAL, field: value}),
         update=api.patch(f"/objects/deal/records/{a_deal['id']}", {field: value}))
    assert snapshot(runtime) == before


def test_master_detail_to_a_missing_or_deleted_parent_is_refused(api, runtime, a_deal):
    other = new_deal(api)
    assert api.delete(f"/objects/deal/records/{other['id']}").status_code == 204
    before = snapshot(runtime)
    for parent in (424242, other["id"]):
        refused(api.post("/objects/note/records", {"deal": parent, "hours": "1"}), 422, "deal")
    assert snapshot(runtime) == before
    assert count_rows(runtime, "o_note") == 0


def test_restore_under_a_deleted_parent_is_refused(api, runtime, crm):
    acc = api.post("/objects/account/records", {"name": "parent"}).get_json()
    d = new_deal(api, account=acc["id"])
    assert api.delete(f"/objects/deal/records/{d['id']}").status_code == 204
    assert api.delete(f"/objects/account/records/{acc['id']}").status_code == 204
    before = snapshot(runtime)
    refused(api.post(f"/objects/deal/records/{d['id']}/restore"), 422, "account")
    assert snapshot(runtime) == before


# ---------------------------------------------------------------- uniqueness
@pytest.mark.writes_nothing
def test_duplicate_unique_value_on_create_is_refused(api, runtime, a_deal):
    before = snapshot(runtime)
    for email in ("first@example.com", "  first@example.com ", "first@EXAMPLE.com"):
        fields = refused(api.post("/objects/deal/records", {**VALID_DEAL, "email": email}), 409, "email")
        assert set(fields) == {"email"}
    assert snapshot(runtime) == before


def test_duplicate_unique_value_within_one_bulk_request_is_refused(api, runtime, crm):
    before = snapshot(runtime)
    rows = [{**VALID_DEAL, "email": f"d{i}@example.com"} for i in range(4)]
    rows[3]["email"] = "d1@example.com"
    fields = refused(api.post("/objects/deal/records/bulk", {"records": rows}), 409, "records.3.email")
    assert set(fields) == {"records.3.email"}
    assert snapshot(runtime) == before
    assert count_rows(runtime, "o_deal") == 0


@pytest.mark.writes_nothing
def test_bulk_row_clashing_with_a_stored_value_is_refused(api, runtime, a_deal):
    before = snapshot(runtime)
    rows = [{**VALID_DEAL, "email": "new1@example.com"}, {**VALID_DEAL, "email": "new2@example.com"},
            {**VALID_DEAL, "email": "first@example.com"}]
    fields = refused(api.post("/objects/deal/records/bulk", {"records": rows}), 409, "records.2.email")
    assert set(fields) == {"records.2.email"}
    assert snapshot(runtime) == before


def test_duplicate_unique_value_on_update_is_refused(api, runtime, a_deal):
    other = new_deal(api, email="second@example.com")
    before = snapshot(runtime)
    r = api.patch(f"/objects/deal/records/{other['id']}", {"email": "first@example.com", "quantity": 9})
    assert set(refused(r, 409, "email")) == {"email"}
    r = api.post("/objects/deal/records/bulk", {"operation": "update", "records": [
        {"id": a_deal["id"], "email": "third@example.com"}, {"id": other["id"], "email": "third@example.com"}]})
    refused(r, 409, "records.1.email")
    assert snapshot(runtime) == before
    assert api.get(f"/objects/deal/records/{other['id']}").get_json()["email"] == "second@example.com"


def test_restore_that_would_duplicate_a_unique_value_is_refused(api, runtime, a_deal):
    assert api.delete(f"/objects/deal/records/{a_deal['id']}").status_code == 204
    new_deal(api, email="first@example.com")   # the value is free again while the first is binned
    before = snapshot(runtime)
    refused(api.post(f"/objects/deal/records/{a_deal['id']}/restore"), 409, "email")
    assert snapshot(runtime) == before


# ---------------------------------------------------------------- bulk
@pytest.mark.parametrize("bad_rows,keys", [
    pytest.param({3: {"quantity": "abc"}}, {"records.3.quantity"}, id="one-bad-type"),
    pytest.param({1: {"title": None}, 4: {"stage": "nope"}}, {"records.1.title", "records.4.stage"},
                 id="two-bad-rows-both-named"),
    pytest.param({2: {"account": 424242}}, {"records.2.account"}, id="missing-lookup"),
    pytest.param({4: {"bogus": 1}}, {"records.4.bogus"}, id="unknown-field"),
    pytest.param({0: {"deal_no": "X"}}, {"records.0.deal_no"}, id="read-only-field"),
    pytest.param({2: {"province": "zhejiang"}}, {"records.2.city"}, id="dependent-mismatch"),
    pytest.param({3: {"weight": "1.23456"}}, {"records.3.weight"}, id="decimal-places"),
])
def test_bulk_create_with_one_bad_row_writes_nothing(api, runtime, crm, bad_rows, keys):
    rows = [{**VALID_DEAL, "title": f"d{i}"} for i in range(5)]
    for i, change in bad_rows.items():
        rows[i].update(change)
    before = snapshot(runtime)
    fields = refused(api.post("/objects/deal/records/bulk", {"records": rows}), 422, *keys)
    assert set(fields) == keys
    assert snapshot(runtime) == before
    assert count_rows(runtime, "o_deal") == 0


@pytest.mark.writes_nothing
def test_bulk_row_that_is_not_an_object_is_refused(api, runtime, crm):
    before = snapshot(runtime)
    rows = [{**VALID_DEAL}, ["title", "x"], {**VALID_DEAL}]
    fields = refused(api.post("/objects/deal/records/bulk", {"records": rows}), 422)
    assert set(fields) and all(k.startswith("records.1") for k in fields), fields
    assert snapshot(runtime) == before


def test_bulk_update_with_one_bad_row_changes_nothing(api, runtime, crm):
    ids = [new_deal(api, title=f"d{i}")["id"] for i in range(4)]
    before = snapshot(runtime)
    rows = [{"id": i, "stage": "won"} for i in ids]
    rows[2]["stage"] = "maybe"
    fields = refused(api.post("/objects/deal/records/bulk", {"operation": "update", "records": rows}),
                     422, "records.2.stage")
    assert set(fields) == {"records.2.stage"}
    assert snapshot(runtime) == before


@pytest.mark.parametrize("rows,status,key", [
    pytest.param("missing", 404, "id", id="one-id-missing"),
    pytest.param("no_id", 422, "records.1.id", id="row-without-id"),
    pytest.param("text_id", 422, "records.1.id", id="row-with-text-id"),
    pytest.param("dup_id", 400, "id", id="same-id-twice"),
    pytest.param("huge_id", 404, "id", id="id-beyond-int64"),
])
def test_bulk_update_with_bad_ids_changes_nothing(api, runtime, crm, rows, status, key):
    ids = [new_deal(api, title=f"d{i}")["id"] for i in range(3)]
    second = {"missing": {"id": 424242}, "no_id": {}, "text_id": {"id": "2"}, "dup_id": {"id": ids[0]},
              "huge_id": {"id": 2**64}}[rows]
    records = [{"id": ids[0], "stage": "won"}, {**second, "stage": "won"}, {"id": ids[2], "stage": "won"}]
    before = snapshot(runtime)
    refused(api.post("/objects/deal/records/bulk", {"operation": "update", "records": records}), status, key)
    assert snapshot(runtime) == before


@pytest.mark.parametrize("payload,key", [
    ({"records": []}, "records"), ({"records": {"title": "x"}}, "records"), ({"records": None}, "records"),
    ({}, "records"), ({"records": "x"}, "records"),
    ({"operation": "upsert", "records": [{"title": "x"}]}, "operation"),
    ({"operation": None, "records": [{"title": "x"}]}, "operation"),
    ({"records": [{"title": "x"}], "atomic": False}, "atomic"),
])
@pytest.mark.writes_nothing
def test_malformed_bulk_request_is_refused(api, runtime, crm, payload, key):
    before = snapshot(runtime)
    refused(api.post("/objects/deal/records/bulk", payload), 400, key)
    assert snapshot(runtime) == before


def test_too_many_records_in_one_bulk_call_is_refused(api, runtime, crm):
    before = snapshot(runtime)
    r = api.post("/objects/account/records/bulk", {"records": [{"name": f"a{i}"} for i in range(1001)]})
    refused(r, 400, "records")
    r = api.post("/objects/account/records/bulk", {"operation": "update",
                                                   "records": [{"id": crm["id"], "name": "x"}] * 1001})
    refused(r, 400, "records")
    assert snapshot(runtime) == before
    # the limit itself is allowed
    r = api.post("/objects/account/records/bulk", {"records": [{"name": f"a{i}"} for i in range(1000)]})
    assert r.status_code == 201, r.get_json()
    assert count_rows(runtime, "o_account") == 1001


# ================================================================ request bodies
WRITE_ENDPOINTS = [
    ("post", "/objects/deal/records"), ("patch", "/objects/deal/records/{id}"),
    ("post", "/objects/deal/records/bulk"), ("post", "/objects/deal/query"),
    ("post", "/meta/objects"), ("patch", "/meta/objects/deal"),
    ("post", "/meta/objects/deal/fields"), ("patch", "/meta/objects/deal/fields/title"),
]


@pytest.mark.parametrize("data", [
    pytest.param("{bad json", id="truncated"), pytest.param('{"title": "x",}', id="trailing-comma"),
    pytest.param("{'title': 'x'}", id="single-quotes"), pytest.param("", id="empty"),
    pytest.param("  \n ", id="blank"), pytest.param("NaN", id="bare-NaN"),
    pytest.param('{"title": "x", "amount": NaN}', id="NaN-value"),
    pytest.param('{"title": "x", "amount": Infinity}', id="Infinity-value"),
    pytest.param('{"title": "x", "amount": -Infinity}', id="minus-Infinity-value"),
    pytest.param(b'{"title": "\xff\xfe"}', id="not-utf8"),
    pytest.param("[" * 100_000 + "]" * 100_000, id="nested-100k-deep"),
    pytest.param('{"a": ' * 50_000 + "1" + "}" * 50_000, id="objects-nested-50k-deep"),
])
@pytest.mark.writes_nothing
def test_malformed_json_body_is_a_400(api, runtime, a_deal, data):
    before = snapshot(runtime)
    each(lambda r: refused(r, 400, "body"),
         **{f"{m.upper()} {p}": raw(api, m, p.format(id=a_deal["id"]), data) for m, p in WRITE_ENDPOINTS})
    assert snapshot(runtime) == before


@pytest.mark.parametrize("data", [
    pytest.param([{"title": "x"}], id="array"), pytest.param("title", id="string"),
    pytest.param(5, id="number"), pytest.param(None, id="null"), pytest.param(True, id="true"),
])
@pytest.mark.writes_nothing
def test_json_that_is_not_an_object_is_a_400(api, runtime, a_deal, data):
    """Same malformed shape, same answer on every endpoint: 400 naming the body."""
    before = snapshot(runtime)

    def check(r):
        fields = refused(r, 400)
        assert {"body", "record"} & set(fields), fields
    each(check, **{f"{m.upper()} {p}": raw(api, m, p.format(id=a_deal["id"]), json.dumps(data))
                   for m, p in WRITE_ENDPOINTS})
    assert snapshot(runtime) == before


# ================================================================ queries
@pytest.mark.parametrize("flt,key", [
    # unknown fields and paths
    ({"field": "bogus", "op": "eq", "value": 1}, "bogus"),
    ({"field": "Title", "op": "eq", "value": "x"}, "Title"),
    ({"field": "account.bogus", "op": "eq", "value": 1}, "account.bogus"),
    ({"field": "title.length", "op": "eq", "value": 1}, "title.length"),
    ({"field": "account.owner.name.x.y", "op": "eq", "value": 1}, "account.owner.name.x.y"),
    ({"field": "deleted_at", "op": "is_null", "value": True}, "deleted_at"),
    # unknown operators
    ({"field": "title", "op": "like", "value": "x"}, "title"),
    ({"field": "title", "op": "EQ", "value": "x"}, "title"),
    ({"field": "title", "op": None, "value": "x"}, "title"),
    pytest.param({"field": "title", "op": ["eq"], "value": "x"}, "title", id="op-is-a-list"),
    pytest.param({"field": "title", "op": {"eq": 1}, "value": "x"}, "title", id="op-is-an-object"),
    # operators that do not apply to the type
    ({"field": "quantity", "op": "contains", "value": "1"}, "quantity"),
    ({"field": "close_date", "op": "starts_with", "value": "2026"}, "close_date"),
    ({"field": "won", "op": "lt", "value": True}, "won"),
    ({"field": "stage", "op": "contains", "value": "op"}, "stage"),
    ({"field": "quantity", "op": "today", "value": None}, "quantity"),
    ({"field": "notes", "op": "gt", "value": "a"}, "notes"),
    ({"field": "account", "op": "gt", "value": 1}, "account"),
    # values that do not fit
    ({"field": "quantity", "op": "eq", "value": "abc"}, "quantity"),
    ({"field": "quantity", "op": "eq", "value": True}, "quantity"),
    pytest.param({"field": "quantity", "op": "eq", "value": 2**64}, "quantity", id="int-beyond-int64"),
    pytest.param({"field": "id", "op": "in", "value": [1, 2**64]}, "id", id="id-in-beyond-int64"),
    ({"field": "close_date", "op": "gt", "value": "yesterday-ish"}, "close_date"),
    ({"field": "amount", "op": "gt", "value": "NaN"}, "amount"),
    ({"field": "amount", "op": "lt", "value": "Infinity"}, "amount"),
    ({"field": "stage", "op": "in", "value": "open"}, "stage"),
    ({"field": "stage", "op": "in", "value": []}, "stage"),
    ({"field": "stage", "op": "in", "value": ["open"] * 1001}, "stage"),
    ({"field": "amount", "op": "between", "value": [1, 2, 3]}, "amount"),
    ({"field": "amount", "op": "between", "value": 5}, "amount"),
    ({"field": "notes", "op": "is_null", "value": "yes"}, "notes"),
    ({"field": "title", "op": "contains", "value": ""}, "title"),
    ({"field": "title", "op": "contains", "value": 5}, "title"),
    ({"field": "quantity", "op": "lt", "value": None}, "quantity"),
    ({"field": "close_date", "op": "last_n_days", "value": 0}, "close_date"),
    ({"field": "close_date", "op": "last_n_days", "value": True}, "close_date"),
    ({"field": "close_date", "op": "next_n_days", "value": 4000}, "close_date"),
])
@pytest.mark.writes_nothing
def test_bad_filter_condition_is_a_400(api, runtime, a_deal, flt, key):
    before = snapshot(runtime)
    refused(api.post("/objects/deal/query", {"filter": flt}), 400, key)
    assert snapshot(runtime) == before


COND = {"field": "title", "op": "eq", "value": "x"}


@pytest.mark.parametrize("flt", [
    5, "title", True,
    {"and": "x"}, {"and": []}, {"or": {}}, {"or": [COND], "field": "title"},
    {"not": COND, "and": [COND]}, {"not": COND, "x": 1}, {"not": 5},
    {"op": "eq", "value": 1}, {**COND, "extra": 1}, {"and": [COND, 5]}, [COND, "x"],
    pytest.param({"field": ["title"], "op": "eq", "value": "x"}, id="field-is-a-list"),
    pytest.param({"field": None, "op": "eq", "value": "x"}, id="field-is-null"),
    pytest.param({"field": "", "op": "eq", "value": "x"}, id="field-is-empty"),
    pytest.param({"or": [COND] * 201}, id="too-many-conditions"),
])
@pytest.mark.writes_nothing
def test_malformed_filter_tree_is_a_400(api, runtime, a_deal, flt):
    before = snapshot(runtime)
    refused(api.post("/objects/deal/query", {"filter": flt}), 400, "filter")
    assert snapshot(runtime) == before


@pytest.mark.writes_nothing
def test_filter_nested_too_deep_is_a_400(api, runtime, a_deal):
    """A deep tree must be refused as bad input, not crash the JSON decoder or the compiler."""
    depth = 5000
    body = '{"filter": ' + '{"not": ' * depth + '{"field": "title", "op": "eq", "value": "x"}' + "}" * (depth + 1)
    r = raw(api, "post", "/objects/deal/query", body)
    fields = refused(r, 400)
    assert {"filter", "body"} & set(fields), fields
    flt = '{"not": ' * depth + '{"field": "title", "op": "eq", "value": "x"}' + "}" * depth
    fields = refused(api.get("/objects/deal/records", query_string={"filter": flt}), 400)
    assert {"filter", "body"} & set(fields), fields


@pytest.mark.parametrize("sort,keys", [
    (["bogus"], {"bogus"}), (["-bogus"], {"bogus"}), ("bogus", {"bogus"}), ([{"field": "bogus"}], {"bogus"}),
    (["account.bogus"], {"account.bogus"}), ([5], {"sort"}), ([None], {"sort"}), ([""], {"sort"}),
    (["-"], {"sort"}), (5, {"sort"}), ([{"direction": "desc"}], {"sort"}),
    pytest.param([{"field": "title", "direction": "sideways"}], {"sort", "title"}, id="unknown-direction"),
    pytest.param(["title", "stage", "won", "quantity", "amount", "bogus"], {"bogus", "sort"},
                 id="bad-sixth-sort-key"),
])
@pytest.mark.writes_nothing
def test_bad_sort_is_a_400(api, runtime, a_deal, sort, keys):
    before = snapshot(runtime)
    fields = refused(api.post("/objects/deal/query", {"sort": sort}), 400)
    assert keys & set(fields), fields
    assert snapshot(runtime) == before


@pytest.mark.parametrize("spec,key", [
    ({"page_size": 501}, "page_size"), ({"page_size": 100_000}, "page_size"), ({"page_size": 0}, "page_size"),
    ({"page_size": -1}, "page_size"), ({"page_size": "10"}, "page_size"), ({"page_size": True}, "page_size"),
    ({"page_size": 1.5}, "page_size"), ({"page_size": None}, "page_size"),
    ({"page": 0}, "page"), ({"page": -3}, "page"), ({"page": "2"}, "page"), ({"page": False}, "page"),
    pytest.param({"page": 10**30}, "page", id="page-offset-beyond-int64"),
    ({"fields": ["bogus"]}, "bogus"), ({"fields": []}, "fields"), ({"fields": "title"}, "fields"),
    ({"fields": [5]}, "fields"), ({"count": "maybe"}, "count"), ({"deleted": [1]}, "deleted"),
    ({"bogus": 1}, "bogus"), ({"where": {"field": "title"}}, "where"),
])
@pytest.mark.writes_nothing
def test_bad_query_spec_is_a_400(api, runtime, a_deal, spec, key):
    before = snapshot(runtime)
    refused(api.post("/objects/deal/query", spec), 400, key)
    assert snapshot(runtime) == before


@pytest.mark.parametrize("args,key", [
    ({"page_size": "501"}, "page_size"), ({"page_size": "abc"}, "page_size"), ({"page_size": "0"}, "page_size"),
    ({"page": "0"}, "page"), ({"page": "1.5"}, "page"),
    ({"sort": "bogus"}, "bogus"), ({"fields": "title,bogus"}, "bogus"),
    ({"filter": "{not json"}, "filter"), ({"filter": "NaN"}, "filter"),
    ({"filter": '{"field": "bogus", "op": "eq", "value": 1}'}, "bogus"),
    ({"filter": '{"field": "quantity", "op": "contains", "value": "1"}'}, "quantity"),
    ({"filter": "[1]"}, "filter"),
])
@pytest.mark.writes_nothing
def test_bad_list_query_string_is_a_400(api, runtime, a_deal, args, key):
    before = snapshot(runtime)
    refused(api.get("/objects/deal/records", query_string=args), 400, key)
    assert snapshot(runtime) == before


# ================================================================ unknown objects and records
@pytest.mark.parametrize("method,path,body", [
    ("get", "/objects/nope/records", None), ("post", "/objects/nope/records", {"title": "x"}),
    ("post", "/objects/nope/query", {}), ("post", "/objects/nope/records/bulk", {"records": [{"title": "x"}]}),
    ("get", "/objects/nope/records/1", None), ("patch", "/objects/nope/records/1", {"title": "x"}),
    ("delete", "/objects/nope/records/1", None), ("post", "/objects/nope/records/1/restore", None),
    ("get", "/objects/nope/records/1/history", None),
    ("get", "/meta/objects/nope", None), ("patch", "/meta/objects/nope", {"label": "x"}),
    ("delete", "/meta/objects/nope", None), ("post", "/meta/objects/nope/restore", None),
    ("get", "/meta/objects/nope/fields", None),
    ("post", "/meta/objects/nope/fields", {"api_name": "x", "label": "X", "type": "text"}),
    ("get", "/meta/objects/nope/fields/title", None),
    ("patch", "/meta/objects/nope/fields/title", {"label": "x"}),
    ("delete", "/meta/objects/nope/fields/title", None),
])
@pytest.mark.writes_nothing
def test_unknown_object_is_a_404(api, runtime, a_deal, method, path, body):
    before = snapshot(runtime)
    r = getattr(api, method)(path, body)
    fields = refused(r, 404)
    assert "nope" in r.get_json()["error"]["message"]
    if fields:
        assert set(fields) == {"object"}, fields
    assert snapshot(runtime) == before


RECORD_CALLS = [("get", "", None), ("patch", "", {"title": "x"}), ("delete", "", None),
                ("post", "/restore", None), ("get", "/history", None)]


@pytest.mark.parametrize("which", ["missing", "deleted", "beyond_int64", "huge"])
def test_unknown_record_id_is_a_404(api, runtime, a_deal, which):
    gone = new_deal(api, title="binned")
    assert api.delete(f"/objects/deal/records/{gone['id']}").status_code == 204
    rid = {"missing": 424242, "deleted": gone["id"], "beyond_int64": 2**63, "huge": 10**20}[which]
    before = snapshot(runtime)
    answers = {}
    for method, suffix, body in RECORD_CALLS:
        # restore looks in the bin: there a live record is the one that is "not found"
        target = a_deal["id"] if (which == "deleted" and suffix == "/restore") else rid
        answers[f"{method.upper()} {target}{suffix}"] = getattr(api, method)(
            f"/objects/deal/records/{target}{suffix}", body)
    each(lambda r: refused(r, 404), **answers)
    assert snapshot(runtime) == before


@pytest.mark.parametrize("method,path,body", [
    ("get", "/meta/objects/deal/fields/nope", None),
    ("patch", "/meta/objects/deal/fields/nope", {"label": "x"}),
    ("delete", "/meta/objects/deal/fields/nope", None),
    ("delete", "/meta/objects/deal/fields/nope?purge=true", None),
    ("post", "/meta/objects/deal/fields/nope/restore", None),
    ("post", "/meta/objects/deal/fields/title/restore", None),   # live, so not in the bin
])
@pytest.mark.writes_nothing
def test_unknown_field_in_the_url_is_a_404(api, runtime, a_deal, method, path, body):
    before = snapshot(runtime)
    refused(getattr(api, method)(path, body), 404)
    assert snapshot(runtime) == before


def test_records_of_a_soft_deleted_object_are_404(api, runtime, make_object):
    make_object("memo", [{"api_name": "subject", "label": "S", "type": "text"}])
    m = api.post("/objects/memo/records", {"subject": "x"}).get_json()
    assert api.delete("/meta/objects/memo").status_code == 204
    before = snapshot(runtime)
    refused(api.get(f"/objects/memo/records/{m['id']}"), 404, "object")
    refused(api.post("/objects/memo/records", {"subject": "y"}), 404, "object")
    refused(api.patch(f"/objects/memo/records/{m['id']}", {"subject": "y"}), 404, "object")
    refused(api.post("/meta/objects/memo/fields", {"api_name": "x", "label": "X", "type": "text"}), 404, "object")
    assert snapshot(runtime) == before


# ================================================================ metadata: api names
BAD_NAMES = [
    "Select", "select", "SELECT", "1abc", "a-b", "a b", "a.b", "a/b", "café", "名称", "a" * 41,
    "id", "owner", "created_at", "updated_by", "deleted_at", "tenant",
    "class", "lambda", "import", "def", "async", "await", "true", "from", "order", "table", "user",
    "", "_abc", "abc_", "a__b", " name", "name\n", 5, None, ["name"], {"name": 1}, True,
]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.writes_nothing
def test_invalid_or_reserved_object_api_name_is_refused(api, runtime, crm, name):
    before = snapshot(runtime)
    r = api.post("/meta/objects", {"api_name": name, "label": "X",
                                   "fields": [{"api_name": "subject", "label": "S", "type": "text"}]})
    fields = refused(r, 422, "api_name")
    assert set(fields) == {"api_name"}
    assert snapshot(runtime) == before


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.writes_nothing
def test_invalid_or_reserved_field_api_name_is_refused(api, runtime, a_deal, name):
    before = snapshot(runtime)
    r = api.post("/meta/objects/deal/fields", {"api_name": name, "label": "X", "type": "text"})
    fields = refused(r, 422, "api_name")
    assert set(fields) == {"api_name"}
    assert snapshot(runtime) == before


def test_longest_valid_api_names_are_accepted(api, make_object, runtime):
    """The 40-character limit is where the refusals above start, not below it."""
    long = "a" * 40
    make_object(long, [{"api_name": "b" * 40, "label": "B", "type": "text", "unique": True}])
    assert api.post(f"/objects/{long}/records", {"b" * 40: "x"}).status_code == 201


@pytest.mark.writes_nothing
def test_bad_field_inside_a_new_object_creates_nothing(api, runtime, crm):
    before = snapshot(runtime)
    r = api.post("/meta/objects", {"api_name": "visit", "label": "Visit", "fields": [
        {"api_name": "subject", "label": "S", "type": "text"},
        {"api_name": "Select", "label": "Bad", "type": "text"}]})
    assert set(refused(r, 422, "fields.1.api_name")) == {"fields.1.api_name"}
    r = api.post("/meta/objects", {"api_name": "visit", "label": "Visit", "fields": [
        {"api_name": "subject", "label": "S", "type": "text"},
        {"api_name": "kind", "label": "K", "type": "blob"}]})
    refused(r, 422, "fields.1.type")
    r = api.post("/meta/objects", {"api_name": "visit", "label": "Visit", "fields": [
        {"api_name": "subject", "label": "S", "type": "text"},
        {"api_name": "subject", "label": "Again", "type": "text"}]})
    refused(r, 409, "fields.1.api_name")
    assert snapshot(runtime) == before
    assert api.get("/meta/objects/visit").status_code == 404


@pytest.mark.writes_nothing
def test_field_definition_that_is_not_an_object_inside_a_new_object_names_its_index(api, runtime, crm):
    before = snapshot(runtime)
    r = api.post("/meta/objects", {"api_name": "visit", "label": "Visit", "fields": [
        {"api_name": "subject", "label": "S", "type": "text"}, "oops"]})
    fields = refused(r, 422)
    assert fields and all(k.startswith("fields.1") for k in fields), fields
    assert snapshot(runtime) == before


@pytest.mark.parametrize("payload,status,key", [
    ({"api_name": "deal", "label": "Again"}, 409, "api_name"),
    ({"api_name": "visit"}, 422, "label"),
    ({"api_name": "visit", "label": ""}, 422, "label"),
    ({"api_name": "visit", "label": 5}, 422, "label"),
    ({"api_name": "visit", "label": {"fr": "Visite"}}, 422, "label"),
    ({"api_name": "visit", "label": "V", "colour": "red"}, 422, "colour"),
    ({"api_name": "visit", "label": "V", "fields": "subject"}, 422, "fields"),
    ({"api_name": "visit", "label": "V", "track_history": "maybe"}, 422, "track_history"),
    ({"api_name": "visit", "label": "V", "name_field": "bogus"}, 422, "name_field"),
    ({"api_name": "visit", "label": "V", "description": "d" * 2001}, 422, "description"),
])
@pytest.mark.writes_nothing
def test_bad_object_definition_is_refused(api, runtime, crm, payload, status, key):
    before = snapshot(runtime)
    refused(api.post("/meta/objects", payload), status, key)
    assert snapshot(runtime) == before


# ================================================================ metadata: types and settings
@pytest.mark.parametrize("payload,key", [
    ({"type": "blob"}, "type"), ({"type": "TEXT"}, "type"), ({"type": None}, "type"), ({}, "type"),
    ({"type": 5}, "type"), ({"type": ["text"]}, "type"), ({"type": {"name": "text"}}, "type"),
    ({"type": "text", "max_length": 0}, "max_length"), ({"type": "text", "max_length": 4001}, "max_length"),
    ({"type": "text", "max_length": "long"}, "max_length"), ({"type": "text", "precision": 3}, "precision"),
    ({"type": "text", "colour": "red"}, "colour"),
    ({"type": "decimal", "precision": 50}, "precision"), ({"type": "decimal", "scale": -1}, "scale"),
    ({"type": "decimal", "precision": 4, "scale": 6}, "scale"),
    ({"type": "currency", "currency": "yuan"}, "currency"),
    ({"type": "picklist"}, "options"), ({"type": "picklist", "options": []}, "options"),
    ({"type": "picklist", "options": ["a", "a"]}, "options"), ({"type": "picklist", "options": ["a;b"]}, "options"),
    ({"type": "picklist", "options": [5]}, "options"), ({"type": "picklist", "options": ["x" * 101]}, "options"),
    ({"type": "picklist", "options": [{"value": "a", "colour": "red"}]}, "options"),
    ({"type": "picklist", "options": ["a", "b"], "default": "c"}, "default"),
    ({"type": "picklist", "options": ["a"], "unique": True}, "unique"),
    ({"type": "dependent_picklist", "options": ["x"], "controlling_field": "bogus", "dependency": {}},
     "controlling_field"),
    ({"type": "dependent_picklist", "options": ["x"], "controlling_field": "title", "dependency": {}},
     "controlling_field"),
    ({"type": "dependent_picklist", "options": ["x"], "controlling_field": "province",
      "dependency": {"hainan": ["x"]}}, "dependency"),
    ({"type": "dependent_picklist", "options": ["x"], "controlling_field": "province",
      "dependency": {"guangdong": ["y"]}}, "dependency"),
    ({"type": "auto_number", "pattern": "NO-{YYYY}"}, "pattern"),
    ({"type": "auto_number", "pattern": "{000}-{0000}"}, "pattern"),
    ({"type": "auto_number", "pattern": "{QQ}{000}"}, "pattern"),
    ({"type": "auto_number", "required": True}, "required"),
    ({"type": "integer", "default": "many"}, "default"), ({"type": "integer", "default": True}, "default"),
    ({"type": "text", "max_length": 5, "default": "too long"}, "default"),
    ({"type": "text", "required": "maybe"}, "required"), ({"type": "text", "unique": 2}, "unique"),
    ({"type": "text", "position": -1}, "position"), ({"type": "text", "position": "1"}, "position"),
    ({"type": "text", "help_text": 5}, "help_text"), ({"type": "text", "help_text": "h" * 1001}, "help_text"),
    ({"type": "long_text", "unique": True}, "unique"), ({"type": "boolean", "unique": True}, "unique"),
    ({"type": "text", "result": {"type": "integer"}}, "result"),
])
@pytest.mark.writes_nothing
def test_bad_field_definition_is_refused(api, runtime, a_deal, payload, key):
    before = snapshot(runtime)
    r = api.post("/meta/objects/deal/fields", {"api_name": "extra", "label": "Extra", **payload})
    refused(r, 422, key)
    assert snapshot(runtime) == before
    assert api.get("/meta/objects/deal/fields/extra").status_code == 404


@pytest.mark.parametrize("expression", [
    pytest.param("quantity *", id="syntax-error"),
    pytest.param("quantity +* 2", id="syntax-error-2"),
    pytest.param("quantity; 1", id="two-statements"),
    pytest.param("bogus * 2", id="unknown-field"),
    pytest.param("Quantity * 2", id="unknown-field-case"),
    pytest.param("title.__class__", id="attribute-access"),
    pytest.param("title.upper()", id="method-call"),
    pytest.param("().__class__.__bases__[0].__subclasses__()", id="subclasses-escape"),
    pytest.param("lambda: 1", id="lambda"),
    pytest.param("(lambda: 1)()", id="lambda-called"),
    pytest.param("__import__('os')", id="import-call"),
    pytest.param("__import__('os').system('id')", id="import-and-call"),
    pytest.param("__builtins__", id="builtins-name"),
    pytest.param("open('/etc/passwd')", id="open"),
    pytest.param("eval('1')", id="eval"),
    pytest.param("title[0]", id="subscript"),
    pytest.param("[t for t in tags]", id="comprehension"),
    pytest.param("(x := 1)", id="walrus"),
    pytest.param("f'{title}'", id="f-string"),
    pytest.param("2 ** 100000000", id="power"),
    pytest.param("{'a': 1}", id="dict-literal"),
    pytest.param("upper(title, 1)", id="wrong-arity"),
    pytest.param("upper(s=title)", id="keyword-argument"),
    pytest.param("upper(*tags)", id="star-argument"),
    pytest.param("quantity if", id="incomplete-if"),
    pytest.param("", id="empty"),
    pytest.param("   ", id="blank"),
    pytest.param(5, id="not-text"),
    pytest.param("quantity + " * 500 + "1", id="too-long"),
])
@pytest.mark.writes_nothing
def test_bad_formula_is_refused(api, runtime, a_deal, expression):
    before = snapshot(runtime)
    r = api.post("/meta/objects/deal/fields", {"api_name": "calc", "label": "Calc", "type": "formula",
                                               "return_type": "integer", "expression": expression})
    assert set(refused(r, 422, "expression")) == {"expression"}
    r = api.patch("/meta/objects/deal/fields/total", {"expression": expression})
    refused(r, 422, "expression")
    assert snapshot(runtime) == before
    assert field_def(api, "deal", "total")["settings"]["expression"] == \
        "quantity * amount * (1 - coalesce(discount, 0) / 100)"


@pytest.mark.parametrize("payload,key", [
    ({"return_type": "blob", "expression": "1"}, "return_type"),
    ({"return_type": "integer", "expression": "1", "scale": 11}, "scale"),
    ({"return_type": "integer", "expression": "1", "required": True}, "required"),
    ({"return_type": "integer", "expression": "1", "default": 1}, "default"),
    ({"return_type": "integer"}, "expression"),
])
@pytest.mark.writes_nothing
def test_bad_formula_settings_are_refused(api, runtime, a_deal, payload, key):
    before = snapshot(runtime)
    r = api.post("/meta/objects/deal/fields", {"api_name": "calc", "label": "Calc", "type": "formula", **payload})
    refused(r, 422, key)
    assert snapshot(runtime) == before


def test_formula_cycle_is_refused(api, runtime, a_deal):
    for name, expr in (("f_a", "quantity + 1"), ("f_b", "f_a + 1"), ("f_c", "f_b + 1")):
        r = api.post("/meta/objects/deal/fields", {"api_name": name, "label": name, "type": "formula",
                                                   "return_type": "integer", "expression": expr})
        assert r.status_code == 201, r.get_json()
    before = snapshot(runtime)
    # a -> b -> a
    fields = refused(api.patch("/meta/objects/deal/fields/f_a", {"expression": "f_b + 1"}), 422, "expression")
    assert "circle" in fields["expression"] or "cycle" in fields["expression"].lower()
    # a -> c -> b -> a
    refused(api.patch("/meta/objects/deal/fields/f_a", {"expression": "f_c * 2"}), 422, "expression")
    # a formula reading itself
    refused(api.patch("/meta/objects/deal/fields/f_a", {"expression": "f_a + 1"}), 422, "expression")
    refused(api.post("/meta/objects/deal/fields", {"api_name": "f_self", "label": "S", "type": "formula",
                                                   "return_type": "integer", "expression": "f_self + 1"}),
            422, "expression")
    assert snapshot(runtime) == before
    assert field_def(api, "deal", "f_a")["settings"]["expression"] == "quantity + 1"


@pytest.mark.parametrize("obj,settings,key", [
    ("account", {"child_object": "deal", "child_field": "title", "function": "count"}, "child_field"),
    ("account", {"child_object": "deal", "child_field": "reviewer", "function": "count"}, "child_field"),
    ("account", {"child_object": "note", "child_field": "deal", "function": "count"}, "child_field"),
    ("account", {"child_object": "deal", "child_field": "bogus", "function": "count"}, "child_field"),
    ("account", {"child_object": "deal", "child_field": "total", "function": "count"}, "child_field"),
    ("account", {"child_object": "deal", "function": "count"}, "child_field"),
    ("account", {"child_object": "nope", "child_field": "account", "function": "count"}, "child_object"),
    ("account", {"child_object": "deal", "child_field": "account", "function": "avg"}, "function"),
    ("account", {"child_object": "deal", "child_field": "account", "function": "sum"}, "aggregate_field"),
    ("account", {"child_object": "deal", "child_field": "account", "function": "sum",
                 "aggregate_field": "title"}, "aggregate_field"),
    ("account", {"child_object": "deal", "child_field": "account", "function": "max",
                 "aggregate_field": "won"}, "aggregate_field"),
    ("account", {"child_object": "deal", "child_field": "account", "function": "sum",
                 "aggregate_field": "bogus"}, "aggregate_field"),
    ("deal", {"child_object": "deal", "child_field": "account", "function": "count"}, "child_field"),
])
@pytest.mark.writes_nothing
def test_rollup_whose_child_field_is_not_a_lookup_to_the_parent_is_refused(api, runtime, a_deal,
                                                                           obj, settings, key):
    before = snapshot(runtime)
    r = api.post(f"/meta/objects/{obj}/fields", {"api_name": "summary", "label": "S", "type": "rollup", **settings})
    refused(r, 422, key)
    assert snapshot(runtime) == before


@pytest.mark.parametrize("payload,key", [
    ({"type": "lookup", "reference_to": "nope"}, "reference_to"),
    ({"type": "lookup", "reference_to": "binned"}, "reference_to"),
    ({"type": "lookup", "reference_to": "Account"}, "reference_to"),
    ({"type": "lookup"}, "reference_to"), ({"type": "lookup", "reference_to": 5}, "reference_to"),
    ({"type": "lookup", "reference_to": "account", "on_delete": "explode"}, "on_delete"),
    ({"type": "master_detail", "reference_to": "nope"}, "reference_to"),
    ({"type": "master_detail", "reference_to": "user"}, "reference_to"),
    ({"type": "user", "reference_to": "account"}, "reference_to"),
])
def test_lookup_to_a_missing_object_is_refused(api, runtime, make_object, crm, payload, key):
    make_object("binned", [{"api_name": "subject", "label": "S", "type": "text"}])
    assert api.delete("/meta/objects/binned").status_code == 204
    before = snapshot(runtime)
    r = api.post("/meta/objects/note/fields", {"api_name": "link", "label": "Link", **payload})
    refused(r, 422, key)
    assert snapshot(runtime) == before


# ================================================================ metadata: changes that would lose data
@pytest.fixture
def stored(request, api, crm):
    """Deals whose values the unsafe changes below would break."""
    def make():
        first = new_deal(api, title="a thirty character long title", stage="lost", tags=["vip", "hot"],
                         phone="13800138000", weight="1.125", amount="123456789012.34", account=crm["id"])
        new_deal(api, title="short", phone="13800138000", tags=["partner"], province="zhejiang", city="hangzhou")
        return first
    return made_once(request, "stored", make)


def _unsafe_change(api, runtime, field, change, status, key, obj="deal"):
    before = snapshot(runtime)
    before_def = field_def(api, obj, field)
    before_rows = api.post(f"/objects/{obj}/query", {"page_size": 500}).get_json()["records"]
    r = api.patch(f"/meta/objects/{obj}/fields/{field}", change)
    fields = refused(r, status, key)
    assert len(r.get_json()["error"]["message"]) > 20      # an explanation, not just a code
    assert field_def(api, obj, field) == before_def
    assert api.post(f"/objects/{obj}/query", {"page_size": 500}).get_json()["records"] == before_rows
    assert snapshot(runtime) == before
    return fields


@pytest.mark.parametrize("field,change,key", [
    pytest.param("title", {"max_length": 10}, "title", id="narrow-text-below-stored"),
    pytest.param("title", {"max_length": 28}, "title", id="narrow-text-one-below-stored"),
    pytest.param("notes", {"required": True}, "required", id="required-while-empty"),
    pytest.param("phone", {"unique": True}, "unique", id="unique-while-duplicates"),
    pytest.param("stage", {"options": ["open", "won"]}, "stage", id="remove-picklist-option-in-use"),
    pytest.param("tags", {"options": ["hot", "partner"]}, "tags", id="remove-multi-option-in-use"),
    pytest.param("city", {"options": ["guangzhou", "hangzhou"], "dependency": {
        "guangdong": ["guangzhou"], "zhejiang": ["hangzhou"]}}, "city", id="remove-dependent-option-in-use"),
    pytest.param("title", {"type": "integer"}, "type", id="text-to-integer"),
    pytest.param("notes", {"type": "text"}, "type", id="long-text-to-text"),
    pytest.param("quantity", {"type": "text"}, "type", id="integer-to-text"),
    pytest.param("stage", {"type": "text"}, "type", id="picklist-to-text"),
    pytest.param("amount", {"type": "decimal"}, "type", id="currency-to-decimal"),
    pytest.param("weight", {"scale": 2}, "weight", id="decimal-scale-narrowing"),
    pytest.param("weight", {"precision": 8}, "weight", id="decimal-precision-narrowing"),
    pytest.param("amount", {"precision": 15, "scale": 4}, "amount", id="currency-integer-digits-narrowing"),
    pytest.param("account", {"reference_to": "note"}, "account", id="lookup-retargeted"),
    pytest.param("title", {"api_name": "subject"}, "api_name", id="rename"),
    pytest.param("created_at", {"label": "When"}, "created_at", id="system-field"),
])
@pytest.mark.writes_nothing
def test_unsafe_field_change_is_a_409_and_changes_nothing(api, runtime, stored, field, change, key):
    _unsafe_change(api, runtime, field, change, 409, key)


def test_narrowing_text_below_a_value_in_the_recycle_bin_is_refused(api, runtime, stored):
    """A binned record is restorable data: narrowing must not truncate it (nor fail in the ALTER)."""
    assert api.delete(f"/objects/deal/records/{stored['id']}").status_code == 204
    _unsafe_change(api, runtime, "title", {"max_length": 10}, 409, "title")


@pytest.mark.writes_nothing
def test_required_field_added_to_a_populated_object_without_default_is_refused(api, runtime, stored):
    before = snapshot(runtime)
    r = api.post("/meta/objects/deal/fields", {"api_name": "region", "label": "R", "type": "text",
                                               "required": True})
    refused(r, 409, "required")
    assert snapshot(runtime) == before
    assert api.get("/meta/objects/deal/fields/region").status_code == 404


@pytest.mark.parametrize("field,key", [
    pytest.param("quantity", "quantity", id="read-by-a-formula"),
    pytest.param("close_date", "close_date", id="read-by-another-formula"),
    pytest.param("province", "province", id="controls-a-dependent-picklist"),
    pytest.param("title", "title", id="name-field-and-formula-input"),
])
@pytest.mark.writes_nothing
def test_deleting_a_field_in_use_is_a_409(api, runtime, stored, field, key):
    before = snapshot(runtime)
    r = api.delete(f"/meta/objects/deal/fields/{field}")
    refused(r, 409, key)
    assert field_def(api, "deal", field)["deleted"] is False
    assert snapshot(runtime) == before


@pytest.mark.writes_nothing
def test_deleting_fields_read_by_a_rollup_is_a_409(api, runtime, stored):
    before = snapshot(runtime)
    refused(api.delete("/meta/objects/deal/fields/account"), 409, "account")   # account.deal_count's link
    refused(api.delete("/meta/objects/note/fields/hours"), 409, "hours")       # deal.hours_logged sums it
    refused(api.delete("/meta/objects/note/fields/deal"), 409, "deal")
    assert snapshot(runtime) == before


@pytest.mark.writes_nothing
def test_deleting_an_object_in_use_is_a_409(api, runtime, stored):
    before = snapshot(runtime)
    refused(api.delete("/meta/objects/account"), 409, "api_name")
    assert snapshot(runtime) == before


@pytest.mark.writes_nothing
def test_purging_a_field_that_is_not_deleted_is_a_409(api, runtime, stored):
    before = snapshot(runtime)
    refused(api.delete("/meta/objects/deal/fields/phone?purge=true"), 409, "phone")
    refused(api.delete("/meta/objects/deal/fields/created_at?purge=true"), 409, "created_at")
    assert snapshot(runtime) == before
    assert field_def(api, "deal", "phone")["deleted"] is False
    assert api.get(f"/objects/deal/records/{stored['id']}").get_json()["phone"] == "13800138000"


@pytest.mark.writes_nothing
def test_purging_an_object_that_is_not_deleted_is_a_409(api, runtime, stored):
    before = snapshot(runtime)
    refused(api.delete("/meta/objects/note?purge=true"), 409, "api_name")
    assert snapshot(runtime) == before


def test_restoring_a_formula_whose_input_is_gone_is_a_409(api, runtime, stored):
    """A soft-deleted formula whose input was deleted meanwhile cannot come back broken."""
    r = api.post("/meta/objects/deal/fields", {"api_name": "double", "label": "D", "type": "formula",
                                               "return_type": "integer", "expression": "quantity * 2"})
    assert r.status_code == 201
    assert api.delete("/meta/objects/deal/fields/double").status_code == 204
    assert api.patch("/meta/objects/deal/fields/total", {"expression": "amount"}).status_code == 200
    assert api.delete("/meta/objects/deal/fields/quantity").status_code == 204
    before = snapshot(runtime)
    refused(api.post("/meta/objects/deal/fields/double/restore"), 409, "expression")
    assert snapshot(runtime) == before
    assert field_def(api, "deal", "double")["deleted"] is True


# ================================================================ authentication
@pytest.fixture
def tokens(request, runtime, crm):
    """A revoked token, an expired one, and one whose user was deactivated."""
    return made_once(request, "tokens", lambda: make_tokens(runtime))


def make_tokens(runtime):
    revoked = auth.create_token(runtime.db, "admin", name="revoked")
    expired = auth.create_token(runtime.db, "admin", name="expired",
                                expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1))
    auth.create_user(runtime.db, "leaver", "Leaver", is_admin=True)
    leaver = auth.create_token(runtime.db, "leaver")
    with runtime.db.write() as conn:
        conn.exec_driver_sql("UPDATE lh_api_tokens SET revoked_at = created_at WHERE name = 'revoked'")
        conn.exec_driver_sql("UPDATE lh_users SET active = false WHERE login = 'leaver'")
    return {"revoked": revoked, "expired": expired, "leaver": leaver}


AUTH_CASES = ["none", "empty", "bearer-only", "bearer-blank", "unknown", "no-prefix", "basic", "token-scheme",
              "valid-plus-char", "valid-truncated", "revoked", "expired", "inactive-user"]


def _auth_header(case, good, tokens):
    return {"none": None, "empty": "", "bearer-only": "Bearer", "bearer-blank": "Bearer    ",
            "unknown": "Bearer lh_" + "x" * 43, "no-prefix": "Bearer abcdef", "basic": "Basic YWRtaW46YWRtaW4=",
            "token-scheme": f"Token {good}", "valid-plus-char": f"Bearer {good}x",
            "valid-truncated": f"Bearer {good[:-1]}", "revoked": f"Bearer {tokens['revoked']}",
            "expired": f"Bearer {tokens['expired']}", "inactive-user": f"Bearer {tokens['leaver']}"}[case]


AUTH_ENDPOINTS = [
    ("get", "/objects/deal/records", None),
    ("post", "/objects/deal/records", VALID_DEAL),
    ("post", "/objects/deal/records/bulk", {"records": [VALID_DEAL]}),
    ("patch", "/objects/account/records/1", {"name": "hijacked"}),
    ("delete", "/objects/account/records/1", None),
    ("post", "/meta/objects", {"api_name": "visit", "label": "V"}),
    ("delete", "/meta/objects/deal/fields/phone", None),
    ("get", "/openapi.json", None),
]


@pytest.mark.parametrize("case", AUTH_CASES)
@pytest.mark.writes_nothing
def test_missing_or_bad_token_is_a_401(app, api, runtime, tokens, case):
    good = api.headers["Authorization"].split(" ", 1)[1]
    header = _auth_header(case, good, tokens)
    headers = {} if header is None else {"Authorization": header}
    client = app.test_client()
    before = snapshot(runtime)
    for method, path, body in AUTH_ENDPOINTS:
        r = getattr(client, method)("/api/v1" + path, json=body, headers=headers)
        refused(r, 401)
    assert snapshot(runtime) == before


def test_metadata_changes_by_a_non_admin_are_a_403(app, runtime, crm):
    auth.create_user(runtime.db, "rep", "Rep")
    rep = Api(app.test_client(), auth.create_token(runtime.db, "rep"))
    before = snapshot(runtime)
    refused(rep.post("/meta/objects", {"api_name": "visit", "label": "V"}), 403)
    refused(rep.post("/meta/objects/deal/fields", {"api_name": "x", "label": "X", "type": "text"}), 403)
    refused(rep.patch("/meta/objects/deal/fields/title", {"max_length": 200}), 403)
    refused(rep.delete("/meta/objects/deal/fields/notes"), 403)
    refused(rep.delete("/meta/objects/note"), 403)
    assert snapshot(runtime) == before


# ================================================================ numbers out of range
BEYOND = "9" * 25          # no id is this long: beyond 64 bits


@pytest.mark.parametrize("method,path", [
    ("get", f"/users/{BEYOND}"), ("patch", f"/users/{BEYOND}"), ("delete", f"/users/{BEYOND}"),
    ("get", f"/roles/{BEYOND}"), ("patch", f"/roles/{BEYOND}"), ("get", f"/departments/{BEYOND}"),
    ("get", f"/groups/{BEYOND}"), ("get", f"/imports/{BEYOND}"), ("post", f"/imports/{BEYOND}/start"),
    ("delete", f"/tokens/{BEYOND}"), ("get", f"/objects/deal/records/{BEYOND}"),
    ("get", f"/imports/mappings/{BEYOND}"), ("get", f"/meta/layouts/{BEYOND}"),
])
@pytest.mark.writes_nothing
def test_ids_beyond_64_bits_are_a_404(api, runtime, crm, method, path):
    before = snapshot(runtime)
    r = getattr(api, method)(path, {} if method in ("patch", "post") else None)
    refused(r, 404)
    assert snapshot(runtime) == before


@pytest.mark.writes_nothing
def test_a_number_json_cannot_hold_is_refused_naming_the_field(api, runtime, a_deal):
    before = snapshot(runtime)
    for literal in ("1e309", "-1e309"):
        r = raw(api, "patch", f"/objects/deal/records/{a_deal['id']}", '{"quantity": %s}' % literal)
        refused(r, 422, "quantity")
        r = raw(api, "post", "/objects/deal/records", '{"title": "x", "amount": %s}' % literal)
        refused(r, 422, "amount")
    assert snapshot(runtime) == before


def test_a_formula_overflowing_its_column_is_a_422_naming_it_on_save_and_backfill(api, runtime, a_deal):
    r = api.post("/meta/objects/deal/fields", {"api_name": "huge", "label": "Huge", "type": "formula",
                                               "return_type": "integer", "expression": "quantity * 9999999999999999"})
    assert r.status_code == 201, r.get_json()
    before = snapshot(runtime)
    refused(api.patch(f"/objects/deal/records/{a_deal['id']}", {"quantity": 9999}), 422, "huge")
    refused(api.post("/objects/deal/records", {**VALID_DEAL, "quantity": 99999}), 422, "huge")
    assert snapshot(runtime) == before
    # backfill: a new formula that overflows on a stored record creates nothing
    assert api.patch(f"/objects/deal/records/{a_deal['id']}", {"quantity": 900}).status_code == 200
    before = snapshot(runtime)
    r = api.post("/meta/objects/deal/fields", {"api_name": "huger", "label": "Huger", "type": "formula",
                                               "return_type": "decimal", "scale": 2,
                                               "expression": "quantity * 99999999999999999999999999"})
    refused(r, 422, "huger")
    assert snapshot(runtime) == before
