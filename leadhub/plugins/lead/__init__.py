"""The lead plugin: the standard Lead object (线索) as metadata. Acquisition,
cleaning, duplicate checks, scoring and follow-up deadlines build on it."""
from __future__ import annotations

from pathlib import Path

from leadhub.plugins.lead.demo import seed_demo
from leadhub.plugins.loader import Plugin

plugin = Plugin(
    name="lead",
    version="0.1.0",
    label="Leads 线索",
    metadata_dir=Path(__file__).with_name("metadata"),
    demo=seed_demo,
)
