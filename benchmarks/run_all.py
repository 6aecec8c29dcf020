"""Run every benchmark script, each --repeats times, keeping each run's
output with the load average before and after it.

    python benchmarks/run_all.py                  # the sizes benchmarks/README.md quotes (~1-2 h)
    python benchmarks/run_all.py --quick          # small sizes: checks that every script still runs
    python benchmarks/run_all.py --only dedupe,wide_objects --repeats 3
    python benchmarks/run_all.py --readme         # and write the figures into benchmarks/README.md

Outputs go to benchmarks/results/<UTC time>/<script>_run<k>.txt (stdout, then
the load lines); progress and a summary (each run's `target:` line, or its
failure) go to the terminal. Each script's `figure:` lines are then set side
by side, run by run, with their min and median (benchmarks/figures.py), in
summary.md beside the outputs and, with --readme, in the README's tables. A
script that fails here is a script that has rotted.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import figures

HERE = Path(__file__).resolve().parent

# script: (arguments for the quoted figures, arguments for a quick run).
SCRIPTS: dict[str, tuple[list[str], list[str]]] = {
    "record_service": (["--db", "postgres"], ["--db", "postgres", "--rows", "2000", "--single-rows", "200",
                                               "--rounds", "2"]),
    "record_service_sqlite": (["--db", "sqlite"], ["--db", "sqlite", "--rows", "2000", "--single-rows", "200",
                                                   "--rounds", "2"]),
    "add_field": ([], ["--rows", "20000", "--repeats", "2"]),
    "query_page": ([], ["--rows", "20000", "--requests", "20"]),
    "scope": (["--count-requests", "3"], ["--rows", "20000", "--requests", "10", "--count-requests", "1",
                                         "--sorts=-score,id"]),
    "dedupe": ([], ["--rows", "20000", "--checks", "20"]),
    "functions": (["--db", "postgres"], ["--db", "sqlite", "--rows", "2000"]),
    "wide_objects": ([], ["--db", "sqlite", "--rows", "500", "--fields", "60", "--repeats", "1"]),
    "jobs": ([], ["--rounds", "1", "--enqueues", "20", "--rows", "500"]),
    "bundles": ([], ["--db", "sqlite", "--repeats", "1"]),
    "import": ([], ["--rows", "500", "--existing", "2000"]),
    "layouts": (["--db", "postgres"], ["--db", "sqlite", "--calls", "50"]),
    "pages": ([], ["--rows", "2000", "--requests", "10"]),
    "follow_up_sweep": ([], ["--rows", "5000", "--overdue", "200", "--remind", "200", "--repeats", "1"]),
    "serving": ([], ["--rows", "20000", "--seconds", "1", "--repeats", "1"]),
    "list_views": ([], ["--rows", "20000", "--requests", "5"]),
    "scoring": (["--db", "postgres"], ["--db", "postgres", "--rows", "1000", "--events", "30"]),
    "scoring_sqlite": (["--db", "sqlite"], ["--db", "sqlite", "--rows", "1000", "--events", "30"]),
}


def script_path(name: str) -> Path:
    return HERE / f"bench_{name.removesuffix('_sqlite')}.py"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, to see that every script runs")
    p.add_argument("--repeats", type=int, default=3, help="runs of each script (default 3)")
    p.add_argument("--only", default="", help="comma-separated script names (e.g. dedupe,wide_objects)")
    p.add_argument("--out", type=Path, default=None, help="folder for the outputs")
    p.add_argument("--readme", action="store_true", help="write the figures into benchmarks/README.md")
    args = p.parse_args()
    if args.readme and args.quick:
        p.error("--readme quotes the full sizes; a --quick run only checks that the scripts run")
    names = [n for n in SCRIPTS if not args.only or n in args.only.split(",")]
    out = args.out or HERE / "results" / dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d_%H%M")
    out.mkdir(parents=True, exist_ok=True)
    summary, failed = [], 0
    for name in names:
        full, quick = SCRIPTS[name]
        for k in range(1, args.repeats + 1):
            before = os.getloadavg()
            started = time.monotonic()
            run = subprocess.run([sys.executable, str(script_path(name)), *(quick if args.quick else full)],
                                 cwd=HERE, capture_output=True, text=True)
            seconds = time.monotonic() - started
            after = os.getloadavg()
            load = f"# load average before {before[0]:.2f}, after {after[0]:.2f}; {seconds:.0f} s"
            target = next((line for line in run.stdout.splitlines() if line.startswith("target")), "")
            (out / f"{name}_run{k}.txt").write_text(run.stdout + "\n" + load + "\n"
                                                    + (run.stderr[-4000:] if run.returncode else ""))
            if run.returncode:
                failed += 1
                last = (run.stderr.strip().splitlines() or ["no output"])[-1]
                summary.append(f"{name} run {k}: FAILED ({last})")
            else:
                summary.append(f"{name} run {k}: {target or 'done'} [{load[2:]}]")
            print(summary[-1], flush=True)
    made = figures.tables(out)
    (out / "summary.md").write_text("".join(f"## {name}\n\n{text}\n" for name, text in made.items()))
    print(f"\noutputs in {out}; figures (min and median of {args.repeats} runs) in {out / 'summary.md'}")
    if args.readme:
        if failed:
            print("README not written: a script failed")
        else:
            print("README blocks written: " + (", ".join(figures.publish(out)) or "none"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
