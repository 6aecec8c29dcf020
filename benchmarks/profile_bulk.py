"""Where `RecordService.bulk_create`'s time goes: cProfile of 20 batches of
1,000 rows of bench_record_service's object (10 fields, an auto-number, a
formula, an after_insert handler), cumulative then own time. A profile, not a
benchmark: the profiler roughly doubles the cost, the shares are what count.

    python benchmarks/profile_bulk.py sqlite
    python benchmarks/profile_bulk.py postgres
"""
import cProfile
import pstats
import sys

import _common as c
from bench_record_service import FIELDS, make_payloads


def main(db: str) -> None:
    with c.runtime(db) as (rt, actor):
        rt.metadata.create_object(actor, {"api_name": "bench", "label": "Bench", "fields": FIELDS})
        rt.events.subscribe("after_insert", lambda ev: None, object="bench")
        rt.records.bulk_create(actor, "bench", make_payloads(200, 998))      # warm caches and plans
        batches = [make_payloads(1000, seed) for seed in range(20)]
        profile = cProfile.Profile()
        timer = c.Timer()
        profile.enable()
        for batch in batches:
            rt.records.bulk_create(actor, "bench", batch)
        profile.disable()
        print(f"{db}: {timer.elapsed / 20000 * 1e6:.0f} µs a row under the profiler")
        stats = pstats.Stats(profile)
        stats.sort_stats("cumulative").print_stats(r"leadhub|sqlalchemy/engine/base|marshmallow|psycopg|sqlite3", 30)
        stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sqlite")
