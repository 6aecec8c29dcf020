"""The lead plugin: the standard Lead object (线索) as metadata, and the
intake pipeline on top of it: cleaning, duplicate checks, scoring,
follow-up deadlines and web-to-lead forms."""
from __future__ import annotations

from importlib import import_module
from pathlib import Path

from leadhub.plugins.lead.demo import seed_demo
from leadhub.plugins.loader import Plugin

# Order matters: a lead is cleaned, then checked for duplicates, then scored,
# all in before_insert/before_update handlers of the same write.
PARTS = ("cleaning", "dedupe", "scoring", "scoring_runs", "followup", "webforms")


def _parts():
    return [import_module(f"leadhub.plugins.lead.{name}") for name in PARTS]


def _register(runtime) -> None:
    for part in _parts():
        part.register(runtime)


def _kinds() -> list:
    from leadhub.plugins.lead import blacklists, duplicate_rules, followup_rules, scoring_config, webforms
    return [blacklists.KIND, duplicate_rules.KIND, *scoring_config.KINDS, followup_rules.KIND, webforms.KIND]


def _blueprints() -> list:
    from leadhub.plugins.lead.web import blueprints     # the plugin's REST and pages live in web/
    return blueprints()


plugin = Plugin(
    name="lead",
    version="0.2.0",
    label="Leads 线索",
    metadata_dir=Path(__file__).with_name("metadata"),
    register=_register,
    web=_blueprints,
    kinds=_kinds,
    migrations_dir=Path(__file__).with_name("migrations"),
    demo=seed_demo,
)
