"""What a run gives back."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Result:
    """value: what the function returned (None on error).
    log: print() and api.log() output.
    error: None, or {"type", "message", "line", ...}; type is one of
      compile     refused at compile time (+ "column", "problems")
      limit       a limit was hit (+ "limit", "figure", "maximum")
      validation  api.error(field, message) (+ "field")
      api         an API call failed and the function did not catch it (+ "code", "fields")
      exception   the function raised (+ "exception", the class name)
      result      the returned value is not data
      internal    the sandbox itself failed
    usage: {"cpu_ms", "wall_ms", "peak_memory_kb", "reads", "writes", "queries"}."""
    value: Any = None
    log: str = ""
    error: dict[str, Any] | None = None
    usage: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
