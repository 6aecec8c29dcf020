"""The lead plugin's part of the web layer: its REST endpoints under
/api/v1, its admin pages under /admin/leads/ and its panel on the lead page. These modules may use the
kernel's web helpers (authentication, JSON bodies, page helpers); the rest of
the plugin never imports leadhub.web (import-linter checks it)."""
from __future__ import annotations


def blueprints() -> list:
    from leadhub.plugins.lead.web import (admin_pages, followup_api, intake_api, record_panels, scoring_api,
                                         webforms_api)
    return [intake_api.bp, scoring_api.bp, *webforms_api.blueprints(), followup_api.bp, admin_pages.bp,
            record_panels.bp]
