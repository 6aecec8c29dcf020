"""The `leadhub` command: init, serve, db upgrade, token create, worker, plugins."""
from __future__ import annotations

import sys

import click
import sqlalchemy as sa

from leadhub.platform import auth, tables as t
from leadhub.platform.errors import LeadhubError
from leadhub.platform.permissions import Actor
from leadhub.platform.runtime import Runtime

ADMIN = "admin"
DEMO_RECORDS = 200


def _runtime() -> Runtime:
    return Runtime()


def _fail(exc: LeadhubError):
    raise click.ClickException(exc.message)


def bootstrap(runtime: Runtime, *, demo: bool) -> str:
    """Bring an instance up: schema, plugins, the admin user and its token,
    and demo data once. Safe to run at every start; returns the admin token."""
    runtime.upgrade_db()
    runtime.plugins.install_all()
    with runtime.db.read() as conn:
        has_admin = conn.execute(sa.select(t.users.c.id).where(t.users.c.login == ADMIN)).first()
    if not has_admin:
        auth.create_user(runtime.db, ADMIN, "Administrator 管理员", is_admin=True)
    token_file = runtime.config.instance_path / "admin-token"
    token = token_file.read_text().strip() if token_file.exists() else ""
    if not token or not auth.token_is_valid(runtime.db, token):
        token = auth.create_token(runtime.db, ADMIN, name="admin (created by leadhub init)")
        runtime.config.instance_path.mkdir(parents=True, exist_ok=True)
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
    if demo:
        _seed_demo(runtime)
    return token


def _seed_demo(runtime: Runtime) -> None:
    admin = Actor(user_id=auth.user_id(runtime.db, ADMIN), login=ADMIN, is_admin=True)
    for name, plugin in sorted(runtime.plugins.discover().items()):
        if plugin.demo is None:
            continue
        obj = runtime.cache.current().objects.get(name)
        if obj is not None:
            with runtime.db.read() as conn:
                table = runtime.cache.current().table(name)
                if conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one():
                    continue  # demo data is made once
        with click.progressbar(length=DEMO_RECORDS, label=f"Demo data for {name}") as bar:
            plugin.demo(runtime, admin, DEMO_RECORDS, bar.update)


@click.group()
@click.version_option(package_name="leadhub")
def main():
    """leadhub: open, self-hosted lead management on a low-code metadata platform."""


@main.command()
@click.option("--demo", is_flag=True, help="Load demo data (once).")
def init(demo):
    """Create the instance: database schema, standard plugins, admin login."""
    runtime = _runtime()
    token = bootstrap(runtime, demo=demo)
    click.echo(f"Database: {runtime.config.database_url}")
    click.echo(f"Admin login: {ADMIN}   API token: {token}")


@main.command()
@click.option("--demo", is_flag=True, help="Load demo data on first start.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
def serve(demo, host, port, threads):
    """Start leadhub (initialising the instance first when needed)."""
    from waitress import serve as waitress_serve

    from leadhub.web.app import create_app

    runtime = _runtime()
    token = bootstrap(runtime, demo=demo)
    runtime.plugins.activate_installed()
    app = create_app(runtime=runtime)
    click.echo(f"leadhub on http://{host}:{port}/  (database: {runtime.config.database_url}, "
               f"jobs: {'inline' if runtime.jobs.inline else 'RQ'})")
    click.echo(f"Admin login: {ADMIN}   API token: {token}")
    click.echo(f"Try: curl -H 'Authorization: Bearer {token}' http://{host}:{port}/api/v1/meta/objects")
    waitress_serve(app, host=host, port=port, threads=threads)


@main.group()
def db():
    """Database schema."""


@db.command("upgrade")
def db_upgrade():
    """Apply the platform's migrations."""
    _runtime().upgrade_db()
    click.echo("Database is up to date.")


@main.group()
def token():
    """API tokens."""


@token.command("create")
@click.option("--user", "login", required=True, help="Login of the token's user.")
@click.option("--name", default="cli", show_default=True)
def token_create(login, name):
    """Create an API token; it is shown once."""
    runtime = _runtime()
    runtime.upgrade_db()
    try:
        click.echo(auth.create_token(runtime.db, login, name=name))
    except LeadhubError as exc:
        _fail(exc)


@main.group()
def user():
    """Users."""


@user.command("create")
@click.option("--login", required=True)
@click.option("--name", default=None)
@click.option("--email", default=None)
@click.option("--admin", "is_admin", is_flag=True)
def user_create(login, name, email, is_admin):
    """Create a user (passwords and roles come with the identity module)."""
    runtime = _runtime()
    runtime.upgrade_db()
    try:
        uid = auth.create_user(runtime.db, login, name or login, email=email, is_admin=is_admin)
    except LeadhubError as exc:
        _fail(exc)
    click.echo(f"User {login} created with id {uid}.")


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker(burst):
    """Run an RQ worker (needs LEADHUB_REDIS_URL)."""
    runtime = _runtime()
    if runtime.jobs.inline:
        raise click.ClickException("LEADHUB_REDIS_URL is not set: jobs run inline, no worker is needed.")
    from rq import Worker

    from leadhub.platform import jobs
    runtime.start()
    jobs.bind(runtime)
    queue = runtime.jobs.queue()
    Worker([queue], connection=queue.connection).work(burst=burst)


@main.group()
def plugins():
    """Plugins found through the leadhub.plugins entry points."""


@plugins.command("list")
def plugins_list():
    runtime = _runtime()
    runtime.upgrade_db()
    installed = runtime.plugins.installed()
    for name, plugin in sorted(runtime.plugins.discover().items()):
        state = f"installed {installed[name]}" if name in installed else "not installed"
        click.echo(f"{name:<16} {plugin.version:<10} {state}")


@plugins.command("install")
@click.argument("names", nargs=-1, required=True)
def plugins_install(names):
    _apply(names)


@plugins.command("upgrade")
@click.argument("names", nargs=-1)
def plugins_upgrade(names):
    """Upgrade the named plugins, or every installed one."""
    runtime = _runtime()
    runtime.upgrade_db()
    _apply(names or sorted(runtime.plugins.installed()), runtime)


def _apply(names, runtime: Runtime | None = None):
    runtime = runtime or _runtime()
    runtime.upgrade_db()
    with click.progressbar(names, label="Applying plugins") as bar:
        reports = {}
        for name in bar:
            try:
                reports[name] = runtime.plugins.install(name)
            except LeadhubError as exc:
                _fail(exc)
    for name, report in reports.items():
        added = report.created_objects + report.added_fields + report.added_options
        click.echo(f"{name}: {', '.join(added) if added else 'up to date'}")


if __name__ == "__main__":
    sys.exit(main())
