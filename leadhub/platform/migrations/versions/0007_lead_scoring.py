"""scoring rules, score event types and behaviour events (issue 7)

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

from leadhub.platform.db import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
