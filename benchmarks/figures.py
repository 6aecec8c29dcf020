"""The figures of a run_all run: each script prints its headline numbers as
`figure: <name> = <value> <unit>` lines (_common.figure); these are read from
every run's output file, set side by side (one column per run), reduced to
min and median, and written as one markdown table per script: into the run's
summary.md, and with --readme into benchmarks/README.md between the markers

    <!-- figures: <script> -->
    ... (replaced) ...
    <!-- /figures -->

so every figure the README quotes in a table is one the current scripts made.
The run's folder is copied to benchmarks/runs/ (committed) so the tables can
be checked against the outputs they came from.

    python benchmarks/figures.py benchmarks/results/<run>            # print the tables
    python benchmarks/figures.py benchmarks/results/<run> --readme   # and write them into the README
"""
from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
RUNS = HERE / "runs"
FIGURE = re.compile(r"^figure: (?P<name>.+?) = (?P<value>\S+) (?P<unit>.+)$")
LOAD = re.compile(r"^# load average before (?P<before>[\d.]+), after (?P<after>[\d.]+); (?P<seconds>\d+) s$")
RUN_FILE = re.compile(r"^(?P<script>.+)_run(?P<k>\d+)\.txt$")
BLOCK = re.compile(r"(<!-- figures: (?P<script>[\w]+) -->\n).*?(<!-- /figures -->)", re.S)


def read_run(path: Path) -> tuple[dict[str, tuple[float, str]], str]:
    """A run's figures {name: (value, unit)} in printed order, and its load line."""
    figures, load = {}, ""
    for line in path.read_text().splitlines():
        if (m := FIGURE.match(line)):
            figures[m["name"]] = (float(m["value"]), m["unit"])
        elif (m := LOAD.match(line)):
            load = f"load {m['before']} → {m['after']}, {m['seconds']} s"
    return figures, load


def collect(folder: Path) -> dict[str, list[tuple[dict, str]]]:
    """{script: [(figures, load) for each run, in run order]}."""
    runs: dict[str, list[tuple[int, Path]]] = {}
    for path in folder.glob("*_run*.txt"):
        if (m := RUN_FILE.match(path.name)):
            runs.setdefault(m["script"], []).append((int(m["k"]), path))
    return {script: [read_run(p) for _, p in sorted(paths)] for script, paths in sorted(runs.items())}


def _num(v: float) -> str:
    if v == 0 or abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def table(script: str, runs: list[tuple[dict, str]], source: str) -> str:
    names: list[str] = []
    for figures, _ in runs:
        names += [n for n in figures if n not in names]
    head = ["figure", "unit", *[f"run {k}" for k in range(1, len(runs) + 1)], "min", "median"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        values = [figures.get(name) for figures, _ in runs]
        got = [v for v, _ in filter(None, values)]
        unit = next(u for _, u in filter(None, values))
        cells = [_num(v[0]) if v else "—" for v in values]
        lines.append("| " + " | ".join([name, unit, *cells, _num(min(got)), _num(statistics.median(got))]) + " |")
    loads = "; ".join(f"run {k}: {load or 'no load line'}" for k, (_, load) in enumerate(runs, 1))
    return "\n".join(lines) + f"\n\n{source}, {loads}.\n"


def tables(folder: Path, source: str | None = None) -> dict[str, str]:
    return {script: table(script, runs, f"From `{source or folder.name}`")
            for script, runs in collect(folder).items() if any(f for f, _ in runs)}


def publish(folder: Path, readme: Path = README) -> list[str]:
    """Copy the run to benchmarks/runs/ and write its tables into the README;
    return the scripts whose block was written."""
    kept = RUNS / folder.name
    if folder.resolve() != kept.resolve():
        shutil.copytree(folder, kept, dirs_exist_ok=True)
    made = tables(kept, f"benchmarks/runs/{folder.name}")
    written = []

    def replace(m: re.Match) -> str:
        if m["script"] not in made:
            return m.group(0)
        written.append(m["script"])
        return m.group(1) + made[m["script"]] + m.group(3)
    readme.write_text(BLOCK.sub(replace, readme.read_text()))
    return written


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="a run_all output folder")
    p.add_argument("--readme", action="store_true", help="write the tables into benchmarks/README.md")
    args = p.parse_args()
    made = tables(args.folder)
    for script, text in made.items():
        print(f"## {script}\n\n{text}")
    if args.readme:
        print("README blocks written: " + (", ".join(publish(args.folder)) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
