"""Where a trivial sandboxed call's time goes, seen from the parent: cProfile
of 3,000 calls of `return 1` through a pool of two workers. Time in `poll`
is the parent waiting on a worker's pipe (in `_acquire`: for its "ready"
after the previous run's reset; in `execute`: for the run's result). A
profile, not a benchmark: bench_functions.py measures the call.

    python benchmarks/profile_call.py
"""
import cProfile
import pstats
import time

from leadhub.functions.sandbox import WorkerPool, compile_function


def main() -> None:
    compiled = compile_function("return 1")
    with WorkerPool(size=2) as pool:
        for _ in range(300):
            pool.run(compiled)
        started = time.perf_counter()
        for _ in range(3000):
            pool.run(compiled)
        print(f"unprofiled mean {(time.perf_counter() - started) / 3000 * 1e6:.0f} µs a call")
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(3000):
            pool.run(compiled)
        profile.disable()
    pstats.Stats(profile).sort_stats("tottime").print_stats(18)
    pstats.Stats(profile).sort_stats("cumulative").print_stats(r"sandbox/pool", 12)


if __name__ == "__main__":
    main()
