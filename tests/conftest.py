"""Fixtures: every test gets a fresh database. SQLite always (a copy of a
file migrated once per session); PostgreSQL when LEADHUB_DATABASE_URL names
one (each test in a schema of its own, commits not waiting for the disk);
Redis when LEADHUB_REDIS_URL is set."""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
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


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory):
    """SQLite: a database file migrated once per session, copied for each
    test (migrating every test costs ~0.3 s more)."""
    from leadhub.platform import migrate
    from leadhub.platform.db import Database
    if not ON_PG:
        path = tmp_path_factory.mktemp("template") / "leadhub.db"
        db = Database(f"sqlite:///{path}")
        migrate.upgrade(db)
        db.dispose()
        yield path
        return
    yield None          # PostgreSQL: each test migrates a schema of its own (see database_url)


@contextlib.contextmanager
def fresh_database(tmp_path, migrated_template, name: str = "leadhub.db"):
    """The URL of a migrated database of its own (a copied SQLite file, or a
    PostgreSQL schema dropped afterwards)."""
    if not ON_PG:
        shutil.copyfile(migrated_template, tmp_path / name)
        yield f"sqlite:///{tmp_path / name}"
        return
    base = normalise_database_url(PG_URL)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    try:
        # commits need not wait for the disk: a test database is thrown away
        yield f"{base}{sep}options={quote(f'-csearch_path={schema} -csynchronous_commit=off')}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def database_url(tmp_path, migrated_template):
    with fresh_database(tmp_path, migrated_template) as url:
        yield url


@pytest.fixture
def config(tmp_path, database_url):
    return Config(instance_path=tmp_path / "instance", database_url=database_url,
                  redis_url=None, secret_key="test-secret")


@pytest.fixture
def runtime(config):
    rt = Runtime(config)
    rt.upgrade_db()
    auth.create_user(rt.db, "admin", "Admin", is_admin=True)
    yield rt
    rt.close()


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
def app(runtime):
    from leadhub.web.app import create_app
    return create_app(runtime=runtime)


@pytest.fixture
def api(app, runtime):
    return Api(app.test_client(), auth.create_token(runtime.db, "admin"))


@pytest.fixture
def make_object(api):
    """Create an object over the API and return its definition."""
    def make(api_name, fields, **extra):
        r = api.post("/meta/objects", {"api_name": api_name, "label": api_name.title(),
                                       "fields": fields, **extra})
        assert r.status_code == 201, r.get_json()
        return r.get_json()
    return make


def count_rows(runtime, table, where="1=1") -> int:
    with runtime.db.read() as conn:
        return conn.exec_driver_sql(f"SELECT count(*) FROM {table} WHERE {where}").scalar_one()


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """Argon2id at its real cost takes ~0.1 s a hash; tests hash dozens."""
    from argon2 import PasswordHasher
    from leadhub.platform import passwords
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
