"""The `leadhub` command: init, serve, db upgrade, token create, worker, plugins."""
from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import click
import sqlalchemy as sa

from leadhub.platform import auth, passwords, tables as t
from leadhub.platform.errors import LeadhubError
from leadhub.platform.permissions import Actor
from leadhub.runtime import Runtime

ADMIN = "admin"
DEMO_RECORDS = 200


def _runtime() -> Runtime:
    return Runtime()


def _fail(exc: LeadhubError, fields: dict | None = None):
    detail = "; ".join(f"{k}: {v}" for k, v in (fields or {}).items())
    raise click.ClickException(exc.message + (f" ({detail})" if detail else ""))


def bootstrap(runtime: Runtime, *, demo: bool) -> tuple[str | None, str]:
    """Bring an instance up: schema, plugins, the admin user, its password and
    token, and demo data once. Safe to run at every start; returns the
    admin's password when this call made it (else None) and the API token.
    The first password is kept in the instance folder until the admin
    changes it: then the file goes, so it never tells a stale one."""
    runtime.upgrade_db()
    folder = runtime.config.instance_path
    folder.mkdir(parents=True, exist_ok=True)
    password_file = folder / "admin-password"
    with runtime.db.read() as conn:
        has_admin = conn.execute(sa.select(t.users.c.id).where(t.users.c.login == ADMIN)).first()
    new_password = None
    if not has_admin:
        new_password = "lh-" + secrets.token_urlsafe(12)
        auth.create_user(runtime.db, ADMIN, "Administrator 管理员", is_admin=True, password=new_password)
        _secret_file(password_file, new_password)
    runtime.plugins.install_all()          # after the admin: shared list views need an owner
    if password_file.exists():
        with runtime.db.read() as conn:
            stored = conn.execute(sa.select(t.users.c.password_hash).where(t.users.c.login == ADMIN)).scalar()
        if not passwords.verify(stored, password_file.read_text().strip()):   # changed since: it would mislead
            password_file.unlink()
    token_file = folder / "admin-token"
    token = token_file.read_text().strip() if token_file.exists() else ""
    if not token or not auth.token_is_valid(runtime.db, token):
        token = auth.create_token(runtime.db, ADMIN, name="admin (created by leadhub init)")
        _secret_file(token_file, token)
    if demo:
        _seed_demo(runtime)
    return new_password, token


def _secret_file(path, text: str) -> None:
    path.write_text(text + "\n")
    path.chmod(0o600)


DEMO_PASSWORD = "leadhub-demo-1"
DEMO_ORG = {  # login: (name, department, manager, role)
    "manager": ("王经理 Wang (sales manager)", "销售部 Sales", None, "sales_manager"),
    "south_rep": ("李华南 Li (rep, South)", "华南组 South", "manager", "sales_rep"),
    "east_rep": ("赵华东 Zhao (rep, East)", "华东组 East", "manager", "sales_rep"),
    "marketer": ("陈市场 Chen (marketing)", "市场部 Marketing", None, "marketing"),
}


def _seed_demo(runtime: Runtime) -> None:
    admin = auth.actor_for(runtime.db, runtime.cache, auth.user_id(runtime.db, ADMIN))
    with runtime.db.read() as conn:
        seeded = conn.execute(sa.select(t.users.c.id).where(t.users.c.login == "manager")).first()
    if not seeded:
        depts = {}
        for name, parent in (("销售部 Sales", None), ("华南组 South", "销售部 Sales"),
                             ("华东组 East", "销售部 Sales"), ("市场部 Marketing", None)):
            depts[name] = runtime.org.save_department(admin, {"name": name, "parent": depts.get(parent, {}).get("id")})
        ids = {}
        for login, (name, dept, manager, role) in DEMO_ORG.items():
            ids[login] = runtime.org.create_user(admin, {
                "login": login, "name": name, "password": DEMO_PASSWORD, "department": depts[dept]["id"],
                "manager": ids.get(manager), "roles": [role]})["id"]
        runtime.org.save_department(admin, {"head": ids["manager"]}, depts["销售部 Sales"]["id"])
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


def _print_logins(folder: Path, new_password: str | None, token: str, demo: bool) -> None:
    """The admin's password is printed once, when it is made; later starts say
    where it is kept, or, once the admin changed it, that it is his own."""
    kept = folder / "admin-password"
    if new_password:
        shown = f"{new_password}   (kept in {kept} until you change it)"
    else:
        shown = f"in {kept}" if kept.exists() else "the one you set (the first one is no longer kept)"
    click.echo(f"Admin login: {ADMIN}   password: {shown}   API token: {token}")
    if demo:
        click.echo(f"Demo users ({', '.join(DEMO_ORG)}) sign in with password: {DEMO_PASSWORD}")


@click.group()
@click.version_option(package_name="leadhub")
def main():
    """leadhub: open, self-hosted lead management on a low-code metadata platform."""
    os.umask(0o077)     # what leadhub writes (database, uploads, logs) is the server user's alone


@main.command()
@click.option("--demo", is_flag=True, help="Load demo data (once).")
def init(demo):
    """Create the instance: database schema, standard plugins, admin login."""
    runtime = _runtime()
    password, token = bootstrap(runtime, demo=demo)
    click.echo(f"Database: {runtime.config.database_url}")
    _print_logins(runtime.config.instance_path, password, token, demo)


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
    password, token = bootstrap(runtime, demo=demo)
    runtime.plugins.activate_installed()
    app = create_app(runtime=runtime)
    click.echo(f"leadhub on http://{host}:{port}/  (database: {runtime.config.database_url}, "
               f"jobs: {'inline' if runtime.jobs.inline else 'RQ'})")
    _print_logins(runtime.config.instance_path, password, token, demo)
    if (warning := runtime.jobs.redis_warning()):
        click.echo(warning)
    click.echo(f"Sign in at http://{host}:{port}/login, or try: curl -H 'Authorization: Bearer {token}' http://{host}:{port}/api/v1/meta/objects")
    runtime.scheduler.start()      # sweeps and scheduled functions; several servers may tick safely
    try:
        waitress_serve(app, host=host, port=port, threads=threads)
    finally:
        runtime.close()


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
@click.option("--password", default=None, help="At least 8 characters, letters with digits or symbols.")
@click.option("--name", default=None)
@click.option("--email", default=None)
@click.option("--role", "roles", multiple=True, help="Role api name; repeatable.")
@click.option("--department", default=None, help="Department id or name.")
@click.option("--manager", default=None, help="The manager's login.")
@click.option("--admin", "is_admin", is_flag=True)
def user_create(login, password, name, email, roles, department, manager, is_admin):
    """Create a user."""
    runtime = _runtime()
    runtime.upgrade_db()
    payload = {"login": login, "name": name or login, "is_admin": is_admin, "roles": list(roles)}
    if password:
        payload["password"] = password
    if email:
        payload["email"] = email
    try:
        if department:
            payload["department"] = _department_id(runtime, department)
        if manager:
            payload["manager"] = auth.user_id(runtime.db, manager)
        user = runtime.org.create_user(Actor.system(), payload)
    except LeadhubError as exc:
        _fail(exc, exc.fields)
    click.echo(f"User {login} created with id {user['id']} (roles: {', '.join(user['roles']) or 'none'}).")


def _department_id(runtime: Runtime, key: str) -> int:
    for d in runtime.org.list_departments():
        if str(d["id"]) == key or d["name"] == key:
            return d["id"]
    raise click.ClickException(f"No department '{key}'.")


@main.group()
def department():
    """The department tree."""


@department.command("create")
@click.option("--name", required=True)
@click.option("--parent", default=None, help="Parent department id or name.")
@click.option("--head", default=None, help="The head's login.")
def department_create(name, parent, head):
    runtime = _runtime()
    runtime.upgrade_db()
    payload = {"name": name}
    try:
        if parent:
            payload["parent"] = _department_id(runtime, parent)
        if head:
            payload["head"] = auth.user_id(runtime.db, head)
        d = runtime.org.save_department(Actor.system(), payload)
    except LeadhubError as exc:
        _fail(exc, exc.fields)
    click.echo(f"Department {d['name']} created with id {d['id']}.")


@department.command("list")
def department_list():
    runtime = _runtime()
    runtime.upgrade_db()
    depts = runtime.org.list_departments()
    children: dict = {}
    for d in depts:
        children.setdefault(d["parent"], []).append(d)

    def show(parent, depth):
        for d in children.get(parent, []):
            click.echo(f"{'  ' * depth}{d['id']:>4}  {d['name']}")
            show(d["id"], depth + 1)
    show(None, 0)


@main.group()
def role():
    """Roles."""


@role.command("list")
def role_list():
    runtime = _runtime()
    runtime.upgrade_db()
    for r in runtime.org.list_roles():
        click.echo(f"{r['api_name']:<16} {r['labels']['en']} / {r['labels']['zh_CN']}")


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker(burst):
    """Run an RQ worker (needs LEADHUB_REDIS_URL)."""
    runtime = _runtime()
    if runtime.jobs.inline:
        raise click.ClickException("LEADHUB_REDIS_URL is not set: jobs run inline, no worker is needed.")
    from leadhub.platform import jobs
    if (warning := runtime.jobs.redis_warning()):
        raise click.ClickException(warning.replace("leadhub works, and background jobs wait",
                                                   "a worker needs it; jobs wait"))
    runtime.start()
    jobs.bind(runtime)
    if not burst:
        runtime.scheduler.start()
    runtime.jobs.worker().work(burst=burst)


@main.command()
def tick():
    """Run every periodic task that is due now (sweeps, scheduled functions),
    once: for cron-driven deployments without a long-running server."""
    runtime = _runtime().start()
    ran = runtime.scheduler.tick()
    click.echo("ran: " + (", ".join(ran) if ran else "nothing was due"))
    runtime.close()


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


@main.group()
def bundle():
    """Industry templates: export metadata as one file, install, upgrade, uninstall."""


@bundle.command("export")
@click.option("--name", required=True, help="The bundle's name, e.g. edu_training.")
@click.option("--version", "version", required=True, help="e.g. 1.0.0")
@click.option("--label", default=None, help="What people call it.")
@click.option("--publisher", default=None)
@click.option("--description", default=None)
@click.option("--object", "objects", multiple=True, help="An object with all its fields; repeatable.")
@click.option("--field", "fields", multiple=True, help="object.field, e.g. a field added to the lead; repeatable.")
@click.option("--item", "items", multiple=True, help="kind/key, e.g. duplicate_rule/by_mobile; repeatable.")
@click.option("--sample", "samples", multiple=True, help="An object whose first records go along as sample data; "
              "repeatable.")
@click.option("--sample-limit", default=20, show_default=True, type=click.IntRange(1, 200),
              help="Sample records per object.")
@click.option("--output", "-o", required=True, type=click.Path(writable=True),
              help="A .zip file, or a folder (one YAML file an entry, for a repository).")
def bundle_export(name, version, label, publisher, description, objects, fields, items, samples, sample_limit,
                  output):
    """Write a bundle of the chosen metadata and what it depends on."""
    from leadhub.metadata import bundles
    runtime = _runtime().start()
    try:
        made, pulled = bundles.export(runtime, Actor.system(), bundles.Selection(
            list(objects), list(fields), list(items), samples=list(samples), sample_limit=sample_limit),
                                      name=name, version=version, label=label, publisher=publisher,
                                      description=description)
    except LeadhubError as exc:
        _fail(exc, exc.fields)
    if output.endswith(".zip"):
        with open(output, "wb") as fh:
            fh.write(bundles.write(made))
    else:
        bundles.write_dir(made, Path(output))
    click.echo(f"{output}: {len(made.entries)} entries" + (f", requires {made.requires}" if made.requires else "")
               + "".join(f", {len(rows)} sample {obj} records" for obj, rows in made.samples.items()))
    for entry in pulled:
        click.echo(f"  pulled in as a dependency: {entry}")
    runtime.close()


def _bundle_file(path: str):
    from leadhub.metadata import bundles
    return bundles.read_path(Path(path))


def _short(value, limit: int = 100) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _print_plan(result: dict) -> None:
    click.echo(f"{result['bundle']} {result.get('installed_version') or '(not installed)'} -> {result['version']}: "
               + ", ".join(f"{n} {a}" for a, n in sorted(result["counts"].items())))
    for step in result["steps"]:
        click.echo(f"  {step['action']:<10} {step['entry']}" + (f"  ({step['reason']})" if step["reason"] else ""))
        for prop, sides in step["conflicts"].items():
            click.echo(f"      {prop}: here {_short(sides['local'])} / new {_short(sides['new'])} (was {_short(sides['base'])})")
        for prop, sides in step["changes"].items():
            click.echo(f"      {prop}: {_short(sides['local'])} -> {_short(sides['new'])}")


@bundle.command("install")
@click.argument("path", type=click.Path(exists=True))
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")
@click.option("--with-sample-data", "with_samples", is_flag=True, help="Add the bundle's sample records too.")
def bundle_install(path, dry_run, with_samples):
    """Install a bundle into this instance, all or nothing."""
    _bundle_apply(path, dry_run, {}, None, upgrading=False, with_samples=with_samples)


@bundle.command("upgrade")
@click.argument("path", type=click.Path(exists=True))
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")
@click.option("--resolve", "resolutions", multiple=True, metavar="ENTRY=local|new",
              help="How to settle one conflict; repeatable.")
@click.option("--keep-local", "default", flag_value="local", help="Settle every other conflict keeping local.")
@click.option("--take-new", "default", flag_value="new", help="Settle every other conflict taking the new version.")
def bundle_upgrade(path, dry_run, resolutions, default):
    """Upgrade an installed bundle: a three-way merge that keeps the customer's changes."""
    resolve = {}
    for text in resolutions:
        entry, sep, how = text.rpartition("=")
        if not sep:
            raise click.BadParameter(f"{text!r}: use ENTRY=local or ENTRY=new", param_hint="--resolve")
        resolve[entry] = how
    _bundle_apply(path, dry_run, resolve, default, upgrading=True)


def _bundle_apply(path, dry_run, resolve, default, *, upgrading: bool, with_samples: bool = False) -> None:
    from leadhub.metadata import bundles
    runtime = _runtime().start()
    try:
        made = _bundle_file(path)
        installed = {b["name"] for b in bundles.installed_bundles(runtime)}
        if upgrading and made.name not in installed:
            raise click.ClickException(f"{made.name} is not installed here; use `leadhub bundle install`.")
        if not upgrading and made.name in installed:
            raise click.ClickException(f"{made.name} is installed already; use `leadhub bundle upgrade`.")
        shown = bundles.install(runtime, Actor.system(), made, resolve=resolve, default=default, dry_run=True)
        _print_plan(shown)
        if not dry_run:
            done = bundles.install(runtime, Actor.system(), made, resolve=resolve, default=default,
                                   with_samples=with_samples)
            click.echo(f"{made.name} {made.version}: {done['applied']} changes applied"
                       + (f", {done['samples']} sample records added." if done["samples"] else "."))
    except LeadhubError as exc:
        if exc.status == 409 and exc.fields:
            _print_plan(bundles.report(bundles.plan(runtime, made)))
        _fail(exc)
    finally:
        runtime.close()


@bundle.command("uninstall")
@click.argument("name")
@click.option("--dry-run", is_flag=True)
def bundle_uninstall(name, dry_run):
    """Remove what a bundle made (objects go to the recycle bin), nothing the customer added."""
    from leadhub.metadata import bundles
    runtime = _runtime().start()
    try:
        result = bundles.uninstall(runtime, Actor.system(), name, dry_run=dry_run)
    except LeadhubError as exc:
        _fail(exc)
    finally:
        runtime.close()
    if dry_run:
        for step in result["steps"]:
            click.echo(f"  delete {step['entry']}")
    else:
        click.echo(f"{name}: {result['removed']} entries removed.")


@bundle.command("list")
def bundle_list():
    from leadhub.metadata import bundles
    runtime = _runtime().start()
    for b in bundles.installed_bundles(runtime):
        click.echo(f"{b['name']:<24} {b['version']:<10} {b['entries']} entries")
    runtime.close()


if __name__ == "__main__":
    sys.exit(main())
