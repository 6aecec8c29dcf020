"""Writers racing each other: auto-numbers never repeat, a unique value is
taken once, and the loser gets a 409, not a 500."""
import threading

from leadhub.platform.errors import Conflict


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
