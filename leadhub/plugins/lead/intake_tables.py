"""The lead intake's table (made by the plugin's own migrations, migrations/):
the results of duplicate scans (blacklists and duplicate rules are metadata
kinds: blacklists.py, duplicate_rules.py)."""
from __future__ import annotations

import sqlalchemy as sa

from leadhub.platform.db import UTCDateTime
from leadhub.platform.tables import metadata

duplicate_scans = sa.Table(
    "lh_duplicate_scans", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("rule", sa.String(40), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),    # queued, running, done, failed
    sa.Column("requested_by", sa.Integer),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("scanned", sa.Integer, nullable=False, server_default="0"),
    sa.Column("groups", sa.JSON),
    sa.Column("error", sa.Text),
    sa.Index("ix_lh_duplicate_scans_rule", "rule", "id"),
    info={"plugin": "lead"},       # made by the plugin's own migrations
)
