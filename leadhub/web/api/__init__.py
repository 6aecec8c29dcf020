"""The REST API under /api/v1: bearer-token auth, JSON errors as DESIGN.md
says ({"error": {"code", "message", "fields"}}), and the area blueprints."""
from __future__ import annotations

from leadhub.platform.errors import LeadhubError
from leadhub.web.api.base import api, authenticate, language, runtime
from leadhub.web.api import meta, records, openapi, org, notifications, layouts, imports, functions, kinds  # noqa: E402,F401  (routes register on import)

__all__ = ["api", "authenticate", "runtime", "language", "LeadhubError"]
