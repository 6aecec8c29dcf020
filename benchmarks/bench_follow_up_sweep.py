"""Follow-up deadline sweep on a large lead table.

Claim: the sweep's cost follows the number of leads it must act on, not the
size of the lead table nor the number of leads that stay overdue after their
violation, because it reads one index range: follow_up_alert_at <= now (the
reminder time, then the deadline, then NULL once the violation is written).

Loads --rows leads with COPY (PostgreSQL), most of them followed up or
already violated, --overdue of them past their deadline and --remind of them
inside the reminder window, then times:
  * the working sweep (one violation + notifications per overdue lead, one
    reminder per lead in the window), per lead acted on, against one
    `records.create` of a lead in the same run;
  * the idle sweep (nothing due any more: what runs every 5 minutes),
    against one page of 50 leads through `records.query` in the same run.
"""
from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
import _common as c  # noqa: E402

from leadhub.data.query import QueryCompiler, QuerySpec  # noqa: E402
from leadhub.platform import auth, tables as t  # noqa: E402
from leadhub.plugins.lead.followup import service, sweep  # noqa: E402

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
REPS = 50
COLUMNS = ["name", "status", "owner", "owner_changed_at", "follow_up_deadline", "follow_up_due_at",
           "first_follow_up_at", "follow_up_violation", "follow_up_alert_at", "created_at", "updated_at"]


def ts(value: dt.datetime | None) -> str:
    return r"\N" if value is None else value.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(" ")


def lines(rows: int, overdue: int, remind: int, reps: list[int], counts: dict):
    h = dt.timedelta(hours=1)
    for i in range(rows):
        owner = reps[i % len(reps)]
        if i < overdue:                       # due now: T 30 h ago, nothing since
            kind, t0, deadline, first, viol = "overdue", NOW - 30 * h, NOW - 6 * h, None, None
        elif i < overdue + remind:            # deadline in 2 h: inside the 4 h reminder window
            kind, t0, deadline, first, viol = "remind", NOW - 22 * h, NOW + 2 * h, None, None
        elif i % 10 == 0:                     # violated long ago and still not followed up
            kind, t0, deadline, first, viol = "violated", NOW - 900 * h, NOW - 876 * h, None, "1"
        elif i % 10 == 1:                     # fresh: deadline tomorrow
            kind, t0, deadline, first, viol = "waiting", NOW - h, NOW + 23 * h, None, None
        else:                                 # followed up in time
            kind, t0, deadline, first, viol = "followed", NOW - 500 * h, None, NOW - 490 * h, None
        counts[kind] = counts.get(kind, 0) + 1
        due = t0 + 24 * h
        # as the lead's handler would store it: 4 h before the deadline, NULL once violated or met
        alert = deadline - 4 * h if deadline is not None and viol is None else None
        yield "\t".join([f"lead {i}", "new", str(owner), ts(t0), ts(deadline), ts(due), ts(first),
                         viol or r"\N", ts(alert), ts(t0), ts(t0)])


def explain(rt, sql_stmt) -> str:
    with rt.db.read() as conn:
        compiled = sql_stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        return "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN ANALYZE {compiled}"))


def main() -> None:
    p = c.parser(__doc__.split("\n")[0], db_choices=("postgres",), default_rows=1_000_000)
    p.add_argument("--overdue", type=int, default=1000)
    p.add_argument("--remind", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    with c.runtime(args.db) as (rt, admin):
        rt.plugins.install("lead")
        svc = service(rt)
        svc.clock = lambda: NOW
        rt.kinds.create(admin, "follow_up_rule", {"status": "new", "hours": 24, "remind_before_hours": 4})
        mgr = auth.create_user(rt.db, "mgr", "Manager", email="mgr@example.com")
        reps = [auth.create_user(rt.db, f"rep{i}", f"Rep {i}", email=f"rep{i}@example.com") for i in range(REPS)]
        with rt.db.write() as conn:
            conn.execute(sa.update(t.users).where(t.users.c.id.in_(reps)).values(manager_id=mgr))
        counts: dict = {}
        c.log(f"loading {args.rows:,} leads with COPY ...")
        load = c.copy_rows(rt, "o_lead", COLUMNS, lines(args.rows, args.overdue, args.remind, reps, counts),
                           args.rows)
        c.log(f"loaded in {sum(load.values()):.1f}s: {counts}")

        qc = QueryCompiler(rt.cache.current(), "lead", admin, rt.config.timezone)
        stmt, _n, _cols = qc.compile(QuerySpec(filter=[
            {"field": "follow_up_alert_at", "op": "lte", "value": NOW.isoformat()}],
            sort=["follow_up_alert_at", "id"], page_size=200))
        c.log("the sweep's query before the sweep:\n" + explain(rt, stmt))

        timer = c.Timer()
        work = sweep(rt, NOW)
        work_s = timer.elapsed
        assert work["violations"] == args.overdue and work["reminders"] == args.remind, work
        with rt.db.read() as conn:
            n_viol = conn.exec_driver_sql("SELECT count(*) FROM o_violation").scalar_one()
            n_note = conn.exec_driver_sql("SELECT count(*) FROM lh_notifications").scalar_one()
        assert n_viol == args.overdue and n_note == 2 * args.overdue + args.remind, (n_viol, n_note)

        idle = []
        for _ in range(args.repeats):
            timer = c.Timer()
            again = sweep(rt, NOW)
            idle.append(timer.elapsed * 1000)
            assert again["violations"] == again["reminders"] == 0, again
        c.log("the sweep's query after the sweep:\n" + explain(rt, stmt))

        page = []
        spec = QuerySpec(page_size=50)
        for _ in range(args.repeats):
            timer = c.Timer()
            got = rt.records.query(admin, "lead", spec)
            page.append(timer.elapsed * 1000)
            assert len(got["records"]) == 50
        create = []
        for i in range(args.repeats):
            timer = c.Timer()
            rt.records.create(admin, "lead", {"name": f"bench {i}", "owner": reps[0]})
            create.append(timer.elapsed * 1000)

        acted = args.overdue + args.remind
        per_lead = work_s * 1000 / acted
        print(f"# follow-up sweep, {args.rows:,} leads ({counts}), {c.server_version(rt)}; {c.machine_note()}")
        print(c.table(["measure", "ms", "baseline", "baseline ms", "ratio"], [
            ["working sweep, per lead acted on", per_lead, "records.create of one lead", c.median(create),
             per_lead / c.median(create)],
            ["idle sweep p50", c.median(idle), "records.query page of 50 p50", c.median(page),
             c.median(idle) / c.median(page)],
            ["idle sweep p95", c.percentile(idle, 95), "records.query page of 50 p95", c.percentile(page, 95),
             c.percentile(idle, 95) / c.percentile(page, 95)],
        ]))
        print(f"working sweep: {args.overdue:,} violations + {args.remind:,} reminders in {work_s:.1f}s")
        ok = c.median(idle) <= 1.5 * c.median(page)
        print(f"target: idle sweep p50 within 1.5x of one page of 50 on {args.rows:,} leads "
              f"({counts['violated']:,} of them overdue and already violated): {'MET' if ok else 'MISSED'}")
        c.figure("working sweep per lead acted on", per_lead, "ms")
        c.figure("working sweep total", work_s, "s")
        c.figure("records.create p50", c.median(create), "ms")
        c.figure("working sweep per lead / create", per_lead / c.median(create), "x")
        c.figure("idle sweep p50", c.median(idle), "ms")
        c.figure("idle sweep p95", c.percentile(idle, 95), "ms")
        c.figure("page of 50 p50", c.median(page), "ms")
        c.figure("page of 50 p95", c.percentile(page, 95), "ms")
        c.figure("idle sweep p50 / page p50", c.median(idle) / c.median(page), "x")
        c.figure("idle sweep p95 / page p95", c.percentile(idle, 95) / c.percentile(page, 95), "x")


if __name__ == "__main__":
    main()
