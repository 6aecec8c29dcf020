"""The plugin loader and the command line."""
import textwrap

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from leadhub.cli import main
from leadhub.platform import auth
from leadhub.data.query import QuerySpec
from leadhub.plugins.loader import Plugin


@pytest.fixture
def shop_plugin(tmp_path):
    def write(version, yaml_text):
        d = tmp_path / f"shop-{version}"
        d.mkdir()
        (d / "shop.yaml").write_text(textwrap.dedent(yaml_text), encoding="utf-8")
        return Plugin(name="shop", version=version, metadata_dir=d)
    return write


V1 = """
objects:
  - api_name: store
    label: {en: Store, zh_CN: 门店}
    name_field: title
    fields:
      - {api_name: title, type: text, label: Title, required: true}
      - {api_name: kind, type: picklist, label: Kind, options: [flagship, outlet]}
"""
V2 = V1 + """      - {api_name: phone, type: phone, label: Phone}
"""
V2 = V2.replace("options: [flagship, outlet]", "options: [flagship, outlet, popup]")


def test_install_is_idempotent_and_upgrade_keeps_admin_changes(runtime, admin, shop_plugin):
    runtime.plugins.add(shop_plugin("1.0", V1))
    report = runtime.plugins.install("shop")
    assert report.created_objects == ["store"]
    version = runtime.cache.current().version
    assert not runtime.plugins.install("shop").changed           # again: nothing to do
    assert runtime.cache.current().version == version
    # an admin customises: relabels, adds an option and a field, deletes one
    md = runtime.metadata
    md.update_field(admin, "store", "title", {"label": "店名"})
    md.update_field(admin, "store", "kind", {"options": ["flagship", "outlet", "franchise"]})
    md.add_field(admin, "store", {"api_name": "manager", "label": "Manager", "type": "user"})
    runtime.records.create(admin, "store", {"title": "南山店", "kind": "franchise"})
    runtime.plugins.add(shop_plugin("2.0", V2))
    report = runtime.plugins.upgrade("shop")
    assert report.added_fields == ["store.phone"] and report.added_options == ["store.kind:popup"]
    store = runtime.cache.current().get("store")
    assert store.fields["title"].labels["en"] == "店名"               # admin's label survives
    assert [o["value"] for o in store.fields["kind"].settings["options"]] == ["flagship", "outlet", "franchise", "popup"]
    assert "manager" in store.fields and "phone" in store.fields
    assert runtime.plugins.installed() == {"shop": "2.0"}
    assert runtime.records.query(admin, "store", QuerySpec())["records"][0]["title"] == "南山店"


def test_upgrade_does_not_resurrect_a_field_the_admin_deleted(runtime, admin, shop_plugin):
    runtime.plugins.add(shop_plugin("1.0", V2))
    runtime.plugins.install("shop")
    runtime.metadata.delete_field(admin, "store", "phone")
    assert not runtime.plugins.upgrade("shop").changed
    assert "phone" not in runtime.cache.current().get("store").fields


def test_lead_plugin_is_found_by_entry_point(runtime):
    assert "lead" in runtime.plugins.discover()
    runtime.plugins.install("lead")
    lead = runtime.cache.current().get("lead")
    assert lead.name_field == "name" and lead.labels["zh_CN"] == "线索"
    assert lead.fields["city"].type_name == "dependent_picklist"


@pytest.fixture
def cli_env(tmp_path, database_url, monkeypatch):
    monkeypatch.setenv("LEADHUB_INSTANCE_PATH", str(tmp_path / "inst"))
    monkeypatch.setenv("LEADHUB_DATABASE_URL", database_url)
    monkeypatch.delenv("LEADHUB_REDIS_URL", raising=False)
    return tmp_path / "inst"


def test_cli_init_demo_token_and_plugins(cli_env, database_url):
    runner = CliRunner()
    r = runner.invoke(main, ["init", "--demo"])
    assert r.exit_code == 0, r.output
    token = (cli_env / "admin-token").read_text().strip()
    assert f"API token: {token}" in r.output
    r2 = runner.invoke(main, ["init", "--demo"])          # a second start changes nothing
    assert r2.exit_code == 0 and token in r2.output
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM o_lead").scalar_one() == 200
    engine.dispose()
    r = runner.invoke(main, ["plugins", "list"])
    assert r.exit_code == 0 and "lead" in r.output and "installed 0.2.0" in r.output
    r = runner.invoke(main, ["plugins", "upgrade"])
    assert r.exit_code == 0 and "lead: up to date" in r.output
    r = runner.invoke(main, ["token", "create", "--user", "admin"])
    assert r.exit_code == 0 and r.output.startswith("lh_")
    r = runner.invoke(main, ["token", "create", "--user", "ghost"])
    assert r.exit_code != 0 and "No user 'ghost'" in r.output
    r = runner.invoke(main, ["user", "create", "--login", "rep1"])
    assert r.exit_code == 0
    r = runner.invoke(main, ["db", "upgrade"])
    assert r.exit_code == 0 and "up to date" in r.output


def test_cli_worker_needs_redis(cli_env):
    r = CliRunner().invoke(main, ["worker", "--burst"])
    assert r.exit_code != 0 and "LEADHUB_REDIS_URL" in r.output


V3 = V2.replace("{api_name: title, type: text, label: Title, required: true}",
                "{api_name: title, type: text, label: Store name, required: true}") \
       .replace("{api_name: phone, type: phone, label: Phone}", "{api_name: phone, type: phone, label: Telephone}")


def test_an_upgrade_applies_what_the_admin_left_alone_and_keeps_what_he_changed(runtime, admin, shop_plugin):
    runtime.plugins.add(shop_plugin("2.0", V2))
    runtime.plugins.install("shop")
    runtime.metadata.update_field(admin, "store", "title", {"label": "店名"})
    runtime.plugins.add(shop_plugin("3.0", V3))
    report = runtime.plugins.upgrade("shop")
    store = runtime.cache.current().get("store")
    assert store.fields["phone"].labels == {"en": "Telephone", "zh_CN": "Telephone"}   # theirs: nobody touched it
    assert store.fields["title"].labels["en"] == "店名"                                 # his stays
    assert report.updated == ["field/store.phone"] and report.kept == ["field/store.title"]
    assert not runtime.plugins.upgrade("shop").changed                                  # again: nothing to do


def test_the_instance_folder_and_its_files_are_the_server_users_alone(tmp_path):
    """The SQLite database, the secret key and uploads hold people's phone
    numbers: 0700 folders, 0600 files, also for a folder made before."""
    import os
    import stat
    import subprocess
    import sys
    instance = tmp_path / "inst"
    instance.mkdir(mode=0o755)
    instance.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("LEADHUB_DATABASE_URL", "LEADHUB_REDIS_URL",
                                                              "LEADHUB_SECRET_KEY")}
    env["LEADHUB_INSTANCE_PATH"] = str(instance)
    r = subprocess.run([sys.executable, "-m", "leadhub", "init"], env=env, capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)        # noqa: E731
    assert mode(instance) == 0o700
    for name in ("leadhub.db", "secret_key", "admin-token"):
        assert mode(instance / name) == 0o600, name


def test_the_admin_password_is_printed_once_and_never_a_stale_one(cli_env, database_url):
    runner = CliRunner()
    first = runner.invoke(main, ["init"])
    assert first.exit_code == 0, first.output
    password = (cli_env / "admin-password").read_text().strip()
    assert f"password: {password}" in first.output
    again = runner.invoke(main, ["init"])                      # unchanged: said where it is, not printed
    assert again.exit_code == 0 and password not in again.output
    assert f"password: in {cli_env / 'admin-password'}" in again.output
    from leadhub.platform.config import Config
    from leadhub.runtime import Runtime
    rt = Runtime(Config.from_env())
    uid = auth.user_id(rt.db, "admin")
    rt.org.update_user(auth.actor_for(rt.db, rt.cache, uid), uid, {"password": "my-own-secret-9"})
    rt.close()
    later = runner.invoke(main, ["init"])
    assert later.exit_code == 0 and password not in later.output
    assert "the one you set" in later.output and not (cli_env / "admin-password").exists()
