"""What one run may use, and how a limit error reads.

Every figure has a default and a ceiling: a caller may override a figure per
run, but only up to the pool's maximum, so a misconfigured rule cannot turn
the sandbox into an unmetered interpreter."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    cpu_seconds: float = 2.0        # CPU time of the worker during the run
    wall_seconds: float = 5.0       # elapsed time, API calls included
    memory_mb: int = 256            # address space the run may add to the worker
    recursion: int = 200            # call depth of the function's own code
    log_bytes: int = 64 * 1024      # print() and api.log() output, UTF-8
    result_bytes: int = 1024 * 1024  # the returned value as JSON
    reads: int = 1000               # records returned by get and query
    writes: int = 100               # create, update, delete, notify
    queries: int = 50               # query calls

    def as_dict(self) -> dict[str, Any]:
        """The limits as a message field; built once (dataclasses.asdict is
        a tenth of a trivial run's cost in the parent)."""
        cached = self.__dict__.get("_as_dict")
        if cached is None:
            cached = self.__dict__["_as_dict"] = {f.name: getattr(self, f.name) for f in fields(self)}
        return dict(cached)


DEFAULTS = Limits()
MAXIMA = Limits(cpu_seconds=30.0, wall_seconds=60.0, memory_mb=1024, recursion=1000,
                log_bytes=1024 * 1024, result_bytes=4 * MB, reads=100_000, writes=10_000,
                queries=1000)

_NAMES = {f.name: f.type for f in fields(Limits)}


def resolve(overrides: "Mapping[str, Any] | Limits | None", defaults: Limits = DEFAULTS,
            maxima: Limits = MAXIMA) -> Limits:
    """`defaults` with `overrides` applied; ValueError for an unknown name, a
    value that is not a positive number, or one above the maximum."""
    if isinstance(overrides, Limits):
        overrides = overrides.as_dict()
    if not overrides:
        return defaults
    changes = {}
    for name, value in overrides.items():
        if name not in _NAMES:
            raise ValueError(f"Unknown limit '{name}'.")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"Limit '{name}' must be a positive number.")
        if value > getattr(maxima, name):
            raise ValueError(f"Limit '{name}' may be at most {getattr(maxima, name)}.")
        changes[name] = float(value) if _NAMES[name] == "float" else int(value)
    return replace(defaults, **changes)


_TITLES = {
    "cpu": ("CPU time limit", "ms"), "wall": ("Time limit", "ms"), "memory": ("Memory limit", "MB"),
    "recursion": ("Recursion limit", "calls deep"), "log": ("Log size limit", "bytes"),
    "result": ("Result size limit", "bytes"), "reads": ("Record read limit", "records"),
    "writes": ("Record write limit", "writes"), "queries": ("Query limit", "queries"),
}


def limit_error(limit: str, figure: int | float | None, maximum: int | float,
                line: int | None = None) -> dict[str, Any]:
    """The error of a run that hit `limit`: which limit, the figure reached
    (None when unknown) in the limit's unit, and the admin's line if known."""
    title, unit = _TITLES[limit]
    reached = "" if figure is None else f"{figure} {unit}; "
    message = f"{title} exceeded ({reached}the limit is {maximum} {unit})"
    if line:
        message += f" at line {line}"
    return {"type": "limit", "limit": limit, "figure": figure, "maximum": maximum,
            "message": message + ".", "line": line}
