"""Fixtures: every test gets a fresh database, copied from one migrated once
per session (a file on SQLite; a template database on PostgreSQL when
LEADHUB_DATABASE_URL names one). Redis when LEADHUB_REDIS_URL is set."""
from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from leadhub.platform import auth
from leadhub.platform.config import Config, normalise_database_url
from leadhub.platform.permissions import Actor
from leadhub.runtime import Runtime

PG_URL = os.environ.get("LEADHUB_DATABASE_URL", "")
REDIS_URL = os.environ.get("LEADHUB_REDIS_URL", "")
ON_PG = PG_URL.startswith("postgres")

needs_pg = pytest.mark.skipif(not ON_PG, reason="needs PostgreSQL: set LEADHUB_DATABASE_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs Redis: set LEADHUB_REDIS_URL")
# a page in a browser is the same page on either database; the suite's run on PostgreSQL
# (.ci/run's second) checks everything below the pages, so browser tests run once
embedded_only = pytest.mark.skipif(ON_PG, reason="browser tests run once, on the embedded default: pages do not "
                                                 "depend on the database, the API tests run on PostgreSQL too")


STATES: dict[str, tuple] = {}      # fixture name (unique across modules) -> (build, template it starts from)


def prepared(*, base: str = "base"):
    """Make a module fixture's database state once per session instead of in
    every test that uses it. The decorated function builds the state through
    the usual fixtures (`api`, `app`, `runtime`, `make_object`: an admin's
    client on a fresh copy of `base`) and returns plain data (ids, tokens);
    that database becomes a template, each test using the fixture starts
    from a copy of it, and the fixture gives the test a copy of the data."""
    def wrap(build):
        key = build.__name__
        assert key not in STATES or STATES[key][0].__module__ == build.__module__, f"two prepared states named {key}"
        STATES[key] = (build, base)

        @pytest.fixture(name=build.__name__)
        def fixture(database_url, migrated_template, runtime):
            return copy.deepcopy(migrated_template.values[key])
        fixture.__doc__ = build.__doc__
        return fixture
    return wrap


class DatabaseTemplates:
    """Databases migrated once per session, each test getting a copy of one:
    "base" (the kernel's tables) or "lead" (with the lead plugin installed,
    which costs 0.5-2 s a test when done per test). SQLite copies a file;
    PostgreSQL runs CREATE DATABASE ... TEMPLATE, which takes 0.1-0.3 s of
    mostly waiting for the disk: so the next copy of each kind is made in the
    background while the current test runs, and copies are dropped there too."""

    def __init__(self, folder):
        self.folder, self.built, self.values = folder, {}, {}
        self.prefix = f"lht{os.getpid()}_{uuid.uuid4().hex[:6]}"
        if ON_PG:
            self.server = sa.engine.make_url(normalise_database_url(PG_URL))
            # CREATE DATABASE need not wait for its WAL to reach the disk either
            self.admin = sa.create_engine(self.server.set(database="postgres"), isolation_level="AUTOCOMMIT",
                                          connect_args={"options": "-csynchronous_commit=off"})
            # two: a copy being made does not wait behind the drop of the last test's
            # (test_bad_input on PostgreSQL: 214 s with one, 137 s with two, no better with three)
            self.background = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="test-databases")
            self.next_copy: dict[str, concurrent.futures.Future] = {}
            self._forget_dead_runs()

    def _forget_dead_runs(self) -> None:
        """Databases an interrupted run left (named after its process, gone now)."""
        with self.admin.connect() as conn:
            names = conn.exec_driver_sql("SELECT datname FROM pg_database WHERE datname LIKE 'lht%%'").scalars().all()
        for name in names:
            pid = name[3:].split("_", 1)[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                self._drop(name)

    def url(self, name: str) -> str:
        if not ON_PG:
            return f"sqlite:///{name}"
        # commits need not wait for the disk: a test database is thrown away
        url = self.server.set(database=name).update_query_dict({"options": "-csynchronous_commit=off"})
        return url.render_as_string(hide_password=False)

    def template(self, kind: str) -> str:
        if kind not in self.built:
            self.built[kind] = self._build(kind)
        return self.built[kind]

    def _build(self, kind: str) -> str:
        from leadhub.platform import migrate
        from leadhub.platform.db import Database
        if kind == "base":
            name = self._create(None, "base")
            db = Database(self.url(name))
            migrate.upgrade(db)
            db.dispose()
            return name
        if kind in STATES:
            return self._build_state(kind)
        name = self._create(self.template("base"), kind)
        rt = Runtime(Config(instance_path=self.folder / f"instance_{kind}", database_url=self.url(name),
                            redis_url=None, secret_key="test-secret"))
        rt.start()
        if kind == "crm":           # specs.make_crm's objects, made once instead of in every test that uses them
            from tests.specs import build_crm
            system = Actor.system()
            build_crm(lambda obj, fields, **extra: rt.metadata.create_object(
                          system, {"api_name": obj, "label": obj.title(), "fields": fields, **extra}),
                      lambda obj, field: rt.metadata.add_field(system, obj, field))
        else:
            rt.plugins.install(kind)
        rt.close()
        return name

    def _build_state(self, key: str) -> str:
        import inspect
        from leadhub.web.app import create_app
        build, base = STATES[key]
        suffix = "s" + hashlib.sha1(key.encode()).hexdigest()[:10]
        name = self._create(self.template(base), suffix)
        rt = Runtime(Config(instance_path=self.folder / f"instance_{suffix}", database_url=self.url(name),
                            redis_url=None, secret_key="test-secret")).start()
        try:
            auth.create_user(rt.db, "admin", "Admin", is_admin=True)      # as the runtime fixture does
            app = create_app(runtime=rt)
            api = Api(app.test_client(), auth.create_token(rt.db, "admin"))
            given = {"api": api, "app": app, "runtime": rt, "make_object": object_maker(api)}
            value = build(**{p: given[p] for p in inspect.signature(build).parameters})
            json.dumps(value)       # plain data only: clients and sessions are made per test
            self.values[key] = value
        finally:
            rt.close()
        return name

    def _create(self, template: str | None, suffix: str) -> str:
        if not ON_PG:
            path = str(self.folder / f"{suffix}.db")
            if template:
                shutil.copyfile(template, path)
            return path
        name = f"{self.prefix}_{suffix}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    @contextlib.contextmanager
    def copy(self, kind: str, folder, name: str):
        """A database of its own, copied from template `kind`, dropped afterwards."""
        if not ON_PG:
            path = folder / name
            shutil.copyfile(self.template(kind), path)
            yield f"sqlite:///{path}"
            return
        ready = self.next_copy.pop(kind, None)
        db = ready.result() if ready is not None else self._create(self.template(kind), uuid.uuid4().hex[:10])
        self.next_copy[kind] = self.background.submit(self._create, self.template(kind), uuid.uuid4().hex[:10])
        try:
            yield self.url(db)
        finally:
            self.background.submit(self._drop, db)

    def _drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if ON_PG:
            for ready in self.next_copy.values():
                self.background.submit(self._drop, ready.result())
            self.background.shutdown(wait=True)
            for name in self.built.values():
                self._drop(name)
            self.admin.dispose()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory):
    templates = DatabaseTemplates(tmp_path_factory.mktemp("templates"))
    for kind in ("base", "lead", "crm"):     # built before any test can monkeypatch what they run
        templates.template(kind)
    yield templates
    templates.close()


@contextlib.contextmanager
def fresh_database(tmp_path, migrated_template, name: str = "leadhub.db", kind: str = "base"):
    """The URL of a migrated database of its own."""
    with migrated_template.copy(kind, tmp_path, name) as url:
        yield url


class SharedDatabases:
    """Tests marked `@pytest.mark.writes_nothing` share one database, runtime and
    app per module and template instead of a copy each. Only tests whose every
    case is a refusal that asserts the database is as it was (test_bad_input's
    `snapshot`) are marked: a write that slipped through fails its own test.
    On PostgreSQL a copy per test is most of such a test's time."""

    def __init__(self, templates: DatabaseTemplates, folder):
        self.templates, self.folder = templates, folder
        self.stack = contextlib.ExitStack()
        self.by_kind: dict[str, dict] = {}
        self.by_url: dict[str, dict] = {}

    def get(self, kind: str) -> dict:
        if kind not in self.by_kind:
            from leadhub.web.app import create_app
            url = self.stack.enter_context(self.templates.copy(kind, self.folder, f"shared_{kind}.db"))
            rt = Runtime(Config(instance_path=self.folder / f"instance_{kind}", database_url=url,
                                redis_url=None, secret_key="test-secret")).start()
            self.stack.callback(rt.close)
            ensure_admin(rt)
            shared = {"url": url, "runtime": rt, "app": create_app(runtime=rt),
                      "token": auth.create_token(rt.db, "admin"), "made": {}}
            self.by_kind[kind] = self.by_url[url] = shared
        return self.by_kind[kind]


@pytest.fixture(scope="module")
def shared_databases(migrated_template, tmp_path_factory):
    shared = SharedDatabases(migrated_template, tmp_path_factory.mktemp("shared"))
    with shared.stack:
        yield shared


def writes_nothing(request) -> bool:
    return request.node.get_closest_marker("writes_nothing") is not None


def made_once(request, key: str, make):
    """A fixture's value: made for each test, or once per shared database for
    tests marked `writes_nothing`."""
    if not writes_nothing(request):
        return make()
    made = request.getfixturevalue("shared_databases").by_url[request.getfixturevalue("database_url")]["made"]
    if key not in made:
        made[key] = make()
    return copy.deepcopy(made[key])


@pytest.fixture
def database_url(request, tmp_path, migrated_template):
    """A test marked `@pytest.mark.plugins("lead")` starts with the plugin installed;
    one that uses `crm_objects` starts with specs.make_crm's objects."""
    marker = request.node.get_closest_marker("plugins")
    states = [n for n in request.fixturenames if n in STATES]
    kind = states[0] if states else marker.args[0] if marker else \
        "crm" if "crm_objects" in request.fixturenames else "base"
    if writes_nothing(request):
        yield request.getfixturevalue("shared_databases").get(kind)["url"]
        return
    with fresh_database(tmp_path, migrated_template, kind=kind) as url:
        yield url


@pytest.fixture
def config(tmp_path, database_url):
    return Config(instance_path=tmp_path / "instance", database_url=database_url,
                  redis_url=None, secret_key="test-secret")


@pytest.fixture
def runtime(request, config):
    if writes_nothing(request):
        yield request.getfixturevalue("shared_databases").by_url[config.database_url]["runtime"]
        return
    rt = Runtime(config).start()
    ensure_admin(rt)
    yield rt
    rt.close()


def ensure_admin(rt: Runtime) -> None:
    with rt.db.read() as conn:      # a prepared state (see `prepared`) has its admin already
        exists = conn.execute(sa.text("SELECT 1 FROM lh_users WHERE login = 'admin'")).first()
    if exists is None:
        auth.create_user(rt.db, "admin", "Admin", is_admin=True)


@pytest.fixture
def admin(runtime) -> Actor:
    return Actor(user_id=auth.user_id(runtime.db, "admin"), login="admin", is_admin=True)


class Api:
    """A test client that authenticates and speaks JSON."""

    def __init__(self, client, token):
        self.client, self.headers = client, {"Authorization": f"Bearer {token}"}

    def __getattr__(self, method):
        def call(path, json=None, **kwargs):
            headers = {**self.headers, **kwargs.pop("headers", {})}
            return getattr(self.client, method)("/api/v1" + path, json=json, headers=headers, **kwargs)
        return call


@pytest.fixture
def app(request, runtime):
    from leadhub.web.app import create_app
    if writes_nothing(request):
        return request.getfixturevalue("shared_databases").by_url[request.getfixturevalue("database_url")]["app"]
    return create_app(runtime=runtime)


@pytest.fixture
def api(request, app, runtime):
    if writes_nothing(request):
        token = request.getfixturevalue("shared_databases").by_url[request.getfixturevalue("database_url")]["token"]
        return Api(app.test_client(), token)
    return Api(app.test_client(), auth.create_token(runtime.db, "admin"))


def object_maker(api):
    def make(api_name, fields, **extra):
        r = api.post("/meta/objects", {"api_name": api_name, "label": api_name.title(),
                                       "fields": fields, **extra})
        assert r.status_code == 201, r.get_json()
        return r.get_json()
    return make


@pytest.fixture
def make_object(api):
    """Create an object over the API and return its definition."""
    return object_maker(api)


@pytest.fixture
def crm_objects(runtime):
    """account <- deal (every type) <- note with their roll-ups (specs.make_crm),
    already in the test's database: copied from the session's "crm" template."""
    assert {"account", "deal", "note"} <= set(runtime.cache.current().objects)


def count_rows(runtime, table, where="1=1") -> int:
    with runtime.db.read() as conn:
        return conn.exec_driver_sql(f"SELECT count(*) FROM {table} WHERE {where}").scalar_one()


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """Argon2id at its real cost takes ~0.1 s a hash; tests hash dozens."""
    from argon2 import PasswordHasher
    from leadhub.platform import passwords
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
