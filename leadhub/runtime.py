"""The Runtime wires the kernel together once per process: configuration,
database, metadata cache, events, jobs and the services. The Flask app, the
CLI and RQ workers each hold one; none of them builds services on its own."""
from __future__ import annotations

from leadhub.data import computed
from leadhub.data.imports import MAPPING_KIND
from leadhub.data.layouts import LayoutService
from leadhub.data.ownership import Ownership
from leadhub.data.records import RecordService
from leadhub.metadata.kind_service import KindService
from leadhub.metadata.registry import MetadataCache
from leadhub.metadata.service import MetadataService
from leadhub.platform import migrate
from leadhub.platform.config import Config
from leadhub.platform.db import Database
from leadhub.platform.events import EventBus
from leadhub.platform.identity import Organisation, PrincipalCache
from leadhub.platform.jobs import Jobs
from leadhub.platform.notifications import Notifications
from leadhub.platform.scheduler import Scheduler
from leadhub.platform.slots import Slots


class Runtime:
    def __init__(self, config: Config | None = None):
        from leadhub.plugins.loader import PluginManager  # plugins import the runtime's services

        self.config = config or Config.from_env()
        self.db = Database(self.config.database_url)
        self.slots = Slots()            # where plugins extend the kernel and the pages (timeline, scope, ...)
        self.cache = MetadataCache(self.db, PrincipalCache(lambda: [fn for fn, _ in self.slots.entries("scope")]))
        self.events = EventBus()
        self.jobs = Jobs(self, self.config.redis_url)
        self.kinds = KindService(self)                  # rules, views, settings: every metadata kind
        self.metadata = MetadataService(self.db, self.cache, self.kinds, backfill=computed.backfill)
        self.records = RecordService(self.db, self.cache, self.events,
                                     timezone=self.config.timezone, max_bulk=self.config.max_bulk_records)
        self.org = Organisation(self.db, self.cache)
        self.ownership = Ownership(self)
        self.notifications = Notifications(self)
        self.layouts = LayoutService(self)
        self.kinds.declare(MAPPING_KIND)                # saved import mappings
        self.scheduler = Scheduler(self)
        self._start_functions()
        self.plugins = PluginManager(self)

    def _start_functions(self) -> None:
        from leadhub.functions.runner import FunctionRunner
        from leadhub.functions.service import FunctionService
        self.functions = FunctionService(self)          # functions as metadata
        self.function_runner = FunctionRunner(self)     # running them: triggers, actions, the pool
        self.function_runner.install()
        self.scheduler.every("functions.scheduled", 15, lambda rt: rt.function_runner.run_due())
        self.scheduler.every("functions.purge_runs", 3600, lambda rt: rt.function_runner.purge_runs())

    def upgrade_db(self) -> None:
        """The kernel's tables (plugins' own are upgraded as they are activated)."""
        migrate.upgrade(self.db, plugin_dirs=self.plugins.migration_dirs())

    def start(self) -> "Runtime":
        """Bring the schema up to date and let installed plugins subscribe."""
        self.upgrade_db()
        self.plugins.activate_installed()
        return self

    def close(self) -> None:
        self.scheduler.stop()
        self.function_runner.close()
        self.db.dispose()
