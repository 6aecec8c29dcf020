"""Alembic environment for the platform's own tables. The connection comes from
leadhub.platform.migrate, never from alembic.ini."""
from alembic import context

from leadhub.platform.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  version_table="lh_alembic_version", render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
