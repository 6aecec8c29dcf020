"""`leadhub db upgrade`: bring the kernel's tables to the newest migration,
and a plugin's tables to its own.

The kernel's migrations are the branch "platform" (migrations/versions/);
each plugin with tables of its own has a branch named after it (its
migrations/ folder, first revision labelled with the plugin's name),
upgraded when the plugin is installed or upgraded. Every branch's folder
is always given to Alembic, so a database holding a plugin's revision can
still be upgraded when that plugin is not being touched."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from alembic import command
from alembic.config import Config as AlembicConfig

from leadhub.platform.db import Database

MIGRATIONS = Path(__file__).with_name("migrations")
KERNEL = "platform@head"


def upgrade(db: Database, revision: str = KERNEL, plugin_dirs: Iterable[Path] = ()) -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    locations = [MIGRATIONS / "versions", *plugin_dirs]
    cfg.set_main_option("version_locations", os.pathsep.join(str(p) for p in locations))
    with db.write() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
