"""A metadata change is one transaction with its DDL: a failure leaves
neither a table nor a metadata row behind, on SQLite and PostgreSQL."""
import sqlalchemy as sa


def tables(runtime):
    with runtime.db.read() as conn:
        return set(sa.inspect(conn).get_table_names())


def test_failed_create_object_leaves_no_table(api, runtime):
    version = runtime.cache.current().version
    r = api.post("/meta/objects", {"api_name": "half", "label": "Half", "fields": [
        {"api_name": "a", "label": "A", "type": "text"},
        {"api_name": "b", "label": "B", "type": "integer"},
        {"api_name": "c", "label": "C", "type": "formula", "expression": "a +* b"}]})
    assert r.status_code == 422 and "fields.2.expression" in r.get_json()["error"]["fields"]
    assert "o_half" not in tables(runtime)
    assert api.get("/meta/objects/half").status_code == 404
    assert runtime.cache.current().version == version


def test_failed_add_field_leaves_no_column(api, make_object, runtime, monkeypatch):
    make_object("box", [{"api_name": "v", "label": "V", "type": "integer"}])
    api.post("/objects/box/records", {"v": 1})
    from leadhub.data import computed

    def explode(*args, **kwargs):
        raise RuntimeError("backfill failed")
    monkeypatch.setattr(computed, "recompute_records", explode)
    try:
        api.post("/meta/objects/box/fields", {"api_name": "w", "label": "W", "type": "formula",
                                              "return_type": "integer", "expression": "v + 1"})
    except RuntimeError:
        pass
    with runtime.db.read() as conn:
        cols = {c["name"] for c in sa.inspect(conn).get_columns("o_box")}
    assert "w" not in cols
    assert "w" not in [f["api_name"] for f in api.get("/meta/objects/box").get_json()["fields"]]
