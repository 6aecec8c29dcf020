"""Writers racing each other: auto-numbers never repeat, a unique value is
taken once, and the loser gets a 409, not a 500."""
import threading

import pytest

from leadhub.platform.errors import Conflict
from tests.conftest import ON_PG


def run_threads(n, fn):
    errors, results = [], []
    barrier = threading.Barrier(n)

    def work(i):
        barrier.wait()
        try:
            results.append(fn(i))
        except Exception as exc:  # collected and asserted on below
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, errors


def test_concurrent_auto_numbers_are_unique(runtime, admin, make_object):
    make_object("ticket", [{"api_name": "ticket_no", "label": "No", "type": "auto_number", "pattern": "T-{00000}"},
                           {"api_name": "subject", "label": "S", "type": "text"}])

    def create(i):
        if i % 2:
            return [r["ticket_no"] for r in runtime.records.bulk_create(admin, "ticket", [{"subject": f"{i}-{k}"} for k in range(5)])]
        return [runtime.records.create(admin, "ticket", {"subject": str(i)})["ticket_no"]]
    results, errors = run_threads(8, create)
    assert errors == []
    numbers = [n for r in results for n in r]
    assert len(numbers) == 4 * 5 + 4
    assert len(set(numbers)) == len(numbers)
    assert sorted(numbers) == [f"T-{i:05d}" for i in range(1, len(numbers) + 1)]  # no gaps when nothing failed


def test_concurrent_unique_value_is_taken_once(runtime, admin, make_object):
    make_object("member", [{"api_name": "email", "label": "E", "type": "email", "unique": True}])
    results, errors = run_threads(6, lambda i: runtime.records.create(admin, "member", {"email": "a@b.cn"}))
    assert len(results) == 1
    assert len(errors) == 5 and all(isinstance(e, Conflict) for e in errors), errors
    assert all(e.fields == {"email": e.fields["email"]} for e in errors)


def test_rolled_back_insert_leaves_no_number_behind(runtime, admin, make_object):
    make_object("ticket", [{"api_name": "ticket_no", "label": "No", "type": "auto_number", "pattern": "T-{000}"},
                           {"api_name": "email", "label": "E", "type": "email", "unique": True}])
    runtime.records.create(admin, "ticket", {"email": "a@b.cn"})
    try:
        runtime.records.bulk_create(admin, "ticket", [{"email": "x@b.cn"}, {"email": "a@b.cn"}])
    except Conflict:
        pass
    assert runtime.records.create(admin, "ticket", {"email": "c@b.cn"})["ticket_no"] == "T-002"


def test_writers_that_read_the_same_version_cannot_lose_each_others_updates(app, api, runtime, make_object):
    """16 clients read a counter and write it back plus one. Against the
    version they read, exactly one wins each round and the others get a 409
    naming the current version; retrying from a fresh read, every increment
    lands. Without a version a write still goes ahead (old clients)."""
    from leadhub.platform import auth
    from tests.conftest import Api
    make_object("counter", [{"api_name": "n", "label": "N", "type": "integer"}])
    rid = api.post("/objects/counter/records", {"n": 0}).get_json()["id"]
    clients = [Api(app.test_client(), auth.create_token(runtime.db, "admin")) for _ in range(16)]
    first = api.get(f"/objects/counter/records/{rid}")
    assert first.headers["ETag"] == '"1"' and first.get_json()["version"] == 1

    def blind_once(i):          # everyone read version 1 before anyone wrote
        return clients[i].patch(f"/objects/counter/records/{rid}", {"n": 1}, headers={"If-Match": '"1"'})
    answers, errors = run_threads(16, blind_once)
    assert errors == []
    assert sorted(r.status_code for r in answers) == [200] + [409] * 15
    lost = next(r for r in answers if r.status_code == 409).get_json()["error"]
    assert lost["fields"]["current_version"] == 2 and lost["fields"]["changed_by"] == "Admin"
    assert "was changed by Admin" in lost["message"]

    def increment(i):
        for _ in range(200):
            r = clients[i].get(f"/objects/counter/records/{rid}")
            n, tag = r.get_json()["n"], r.headers["ETag"]
            w = clients[i].patch(f"/objects/counter/records/{rid}", {"n": n + 1}, headers={"If-Match": tag})
            if w.status_code == 200:
                return w
            assert w.status_code == 409, w.get_json()
        raise AssertionError("never got a turn")
    answers, errors = run_threads(16, increment)
    assert errors == [] and len(answers) == 16
    final = api.get(f"/objects/counter/records/{rid}").get_json()
    assert (final["n"], final["version"]) == (17, 18)
    # the body may carry the version instead; a stale one is refused, a missing one is not checked
    assert api.patch(f"/objects/counter/records/{rid}", {"n": 0, "_version": 3}).status_code == 409
    assert api.patch(f"/objects/counter/records/{rid}", {"n": 0}).status_code == 200
    r = api.patch(f"/objects/counter/records/{rid}", {"n": 1}, headers={"If-Match": '"x"'})
    assert r.status_code == 400 and "If-Match" in r.get_json()["error"]["fields"]
    r = api.patch(f"/objects/counter/records/{rid}", {"n": 1, "_version": "19"})
    assert r.status_code == 400 and "_version" in r.get_json()["error"]["fields"]
    r = api.post("/objects/counter/records/bulk", {"operation": "update", "records": [
        {"id": rid, "n": 5, "_version": 1}]})
    assert r.status_code == 409 and "records.0._version" in r.get_json()["error"]["fields"]
    assert api.get(f"/objects/counter/records/{rid}").get_json()["n"] == 0


@pytest.mark.skipif(ON_PG, reason="PostgreSQL writers wait on row locks, not on the whole database")
def test_a_write_that_waited_out_sqlites_lock_is_told_to_retry(app, api, runtime, make_object, monkeypatch):
    """On the embedded default one writer holds the database at a time; a
    write through the API that waits past the timeout answers 503 with
    Retry-After, never a 500, and writes nothing."""
    import sqlite3

    from leadhub.platform import db as db_module
    make_object("memo", [{"api_name": "body", "label": "B", "type": "text"}])
    from tests.test_pages import Browser
    from tests.test_pages import PW
    assert api.post("/users", {"login": "rep", "name": "Rep", "password": PW, "roles": ["sales_rep"],
                               "language": "zh_CN"}).status_code == 201
    page = Browser(app, "rep")                                   # signed in before the lock is taken
    monkeypatch.setattr(db_module, "SQLITE_BUSY_MS", 300)
    runtime.db.engine.dispose()                                  # new connections take the short wait
    holder = sqlite3.connect(runtime.db.engine.url.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")                            # another process mid-write
    try:
        r = api.post("/objects/memo/records", {"body": "waits"})
        assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        assert r.get_json()["error"]["code"] == "busy"
        r = page.post("/o/memo/new", {"body": "from the form"})  # a page says it in the reader's language
        assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        assert "数据库正在处理其他写入，请几秒后再试。" in r.text and "database" not in r.text
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert api.get("/objects/memo/records").get_json()["records"] == []
    assert api.post("/objects/memo/records", {"body": "now"}).status_code == 201
