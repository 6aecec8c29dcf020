"""The import structure: layers point down (import-linter, configured in
pyproject.toml) and no module imports one that imports it back."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
importlinter_cli = pytest.importorskip("importlinter.cli", reason="import-linter is a test extra")
grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter")


def test_layers_point_down():
    # in a process of its own: import-linter reconfigures logging as it runs
    run = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
                          "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def test_no_module_imports_one_that_imports_it_back():
    graph = grimp.build_graph("leadhub", exclude_type_checking_imports=True)
    assert cycles(graph) == []


def cycles(graph) -> list[list[str]]:
    """Groups of modules that import each other, directly or round a loop
    (Tarjan's strongly connected components)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in sorted(graph.modules)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in edges:
        if module not in index:
            visit(module)
    return found
