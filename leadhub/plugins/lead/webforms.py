"""(being written)"""
from __future__ import annotations


def register(runtime) -> None:
    """Subscribe this part's event handlers and scheduled sweeps."""


def blueprints() -> list:
    """Flask blueprints this part serves."""
    return []
