"""The scheduler: due times in the database, one claim per due run across
processes, failures recorded, and the `leadhub tick` command."""
import datetime as dt

from click.testing import CliRunner

from leadhub.runtime import Runtime


def test_a_task_runs_once_per_interval_across_processes(runtime, config):
    other = Runtime(config)              # a second process on the same database
    calls = []
    for rt in (runtime, other):
        rt.scheduler.every("demo.sweep", 60, lambda r, rt=rt: calls.append(rt))
    now = dt.datetime.now(dt.timezone.utc)
    assert "demo.sweep" in runtime.scheduler.tick(now)
    assert "demo.sweep" not in other.scheduler.tick(now)                   # already claimed
    assert "demo.sweep" not in other.scheduler.tick(now + dt.timedelta(seconds=30))
    assert "demo.sweep" in other.scheduler.tick(now + dt.timedelta(seconds=61))
    assert calls == [runtime, other]
    other.close()


def test_a_failing_task_is_recorded_and_does_not_stop_the_others(runtime):
    ran = []
    runtime.scheduler.every("a.fails", 60, lambda r: 1 / 0)
    runtime.scheduler.every("b.works", 60, lambda r: ran.append(1))
    runtime.scheduler.tick()
    status = {s["name"]: s for s in runtime.scheduler.status()}
    assert "ZeroDivisionError" in status["a.fails"]["last_error"]
    assert status["b.works"]["last_error"] is None and ran == [1]
    assert status["a.fails"]["next_run_at"] > status["a.fails"]["last_run_at"]


def test_schedules_are_visible_to_admins(api, runtime):
    runtime.scheduler.tick()
    names = {s["name"] for s in api.get("/meta/schedules").get_json()["schedules"]}
    assert {"functions.scheduled", "functions.purge_runs"} <= names


def test_tick_command(monkeypatch, config):
    monkeypatch.setenv("LEADHUB_DATABASE_URL", config.database_url)
    monkeypatch.setenv("LEADHUB_INSTANCE_PATH", str(config.instance_path))
    from leadhub.cli import main
    r = CliRunner().invoke(main, ["tick"])
    assert r.exit_code == 0, r.output
    assert "functions.scheduled" in r.output
    r = CliRunner().invoke(main, ["tick"])
    assert "nothing was due" in r.output or "functions.scheduled" not in r.output
