"""set-status, reparse, delete-run, dedupe."""
import datetime as dt

from sqlalchemy import func, select, update

from paddles.models import Job, Run
from tests.commands.conftest import recomputed, stored
from tests.factories import post_job, post_run, run_name

UTC = dt.timezone.utc


def corrupt(engine, name, **values):
    with engine.begin() as conn:
        conn.execute(update(Run).where(Run.name == name).values(**values))


def run_row(session, name) -> Run:
    session.rollback()
    return session.scalars(select(Run).where(Run.name == name)).one()


# ---- set-status ---------------------------------------------------------------------------

def test_set_status_repairs_corrupted_counters(app, db_engine, session, cli):
    bad, good = run_name(), run_name()
    post_job(app, bad, 1, status="pass", sha1="aaa")
    post_job(app, bad, 2, status="running")
    post_job(app, good, 1, status="fail")
    corrupt(db_engine, bad, count_pass=7, count_running=0, count_total=9, status="empty",
            sha1="bogus")
    corrupted = stored(session)
    assert corrupted != recomputed(session)

    dry = cli("set-status", "--dry-run")
    assert [line.split(": ")[0] for line in dry.lines] == [bad]
    assert "status 'empty' -> 'running'" in dry.out and "pass 7 -> 1" in dry.out
    assert "sha1 'bogus' -> 'aaa'" in dry.out
    assert stored(session) == corrupted

    result = cli("set-status")
    assert result.lines == dry.lines
    assert stored(session) == recomputed(session)
    summary = app.get(f"/runs/{bad}/").json
    assert summary["status"] == "running" and summary["sha1"] == "aaa"
    assert summary["results"]["total"] == 2
    assert cli("set-status").lines == []


def test_set_status_fixes_a_run_left_running(app, db_engine, session, cli):
    run = run_name()
    post_job(app, run, 1, status="pass")
    corrupt(db_engine, run, status="running")
    assert cli("set-status").lines == [f"{run}: status 'running' -> 'finished pass'"]
    assert app.get(f"/runs/{run}/").json["status"] == "finished pass"


# ---- reparse ------------------------------------------------------------------------------

def test_reparse_rewrites_fields_from_the_name(app, db_engine, session, cli):
    name = "teuthology-2013-10-22_03:00:02-big-next-testing-basic-plana"
    post_run(app, name)
    corrupt(db_engine, name, user="mallory", suite="x", branch="y", machine_type="z",
            scheduled=dt.datetime(2001, 1, 1, tzinfo=UTC))
    dry = cli("reparse", "--dry-run")
    assert dry.lines == [f"{name}: user 'mallory' -> 'teuthology'; "
                         f"scheduled '2001-01-01 00:00:00' -> '2013-10-22 03:00:02'; "
                         f"suite 'x' -> 'big'; branch 'y' -> 'next'; "
                         f"machine_type 'z' -> 'plana'"]
    assert run_row(session, name).user == "mallory"

    assert cli("reparse").lines == dry.lines
    run = run_row(session, name)
    assert (run.user, run.suite, run.branch, run.machine_type) == \
        ("teuthology", "big", "next", "plana")
    assert run.scheduled == dt.datetime(2013, 10, 22, 3, 0, 2, tzinfo=UTC)
    assert cli("reparse").lines == []


def test_reparse_keeps_job_reported_values_and_unparsable_times(app, db_engine, session, cli):
    modern = "jdoe-2024-01-15_20:00:03-rados:thrash-wip-jdoe-fix-distro-default-smithi"
    post_job(app, modern, 1, suite="rados:thrash", branch="wip-jdoe-fix",
             machine_type="smithi")
    odd = "whatup"
    post_run(app, odd)
    odd_scheduled = run_row(session, odd).scheduled
    corrupt(db_engine, odd, user="someone", suite="s")
    corrupt(db_engine, modern, user="nobody")

    result = cli("reparse")

    assert sorted(result.lines) == sorted([f"{modern}: user 'nobody' -> 'jdoe'",
                                           f"{odd}: user 'someone' -> ''; suite 's' -> ''"])
    run = run_row(session, modern)
    assert (run.suite, run.branch, run.machine_type) == ("rados:thrash", "wip-jdoe-fix", "smithi")
    assert run_row(session, odd).scheduled == odd_scheduled


def test_reparse_uses_the_configured_time_zone(app, session, cli, monkeypatch):
    name = "teuthology-2013-10-22_03:00:02-big-next-testing-basic-plana"
    post_run(app, name)
    monkeypatch.setenv("PADDLES_TIMEZONE", "America/New_York")
    assert cli("reparse").lines == [
        f"{name}: scheduled '2013-10-22 03:00:02' -> '2013-10-22 07:00:02'"]


# ---- delete-run ---------------------------------------------------------------------------

def test_delete_run_removes_the_run_and_its_jobs(app, session, cli):
    doomed, kept = run_name(), run_name()
    for job in (1, 2, 3):
        post_job(app, doomed, job, targets={"ubuntu@smithi001.front": "ssh-ed25519 AAAA"})
    post_job(app, kept, 1)

    dry = cli("delete-run", doomed, "--dry-run")
    assert dry.lines == [f"would delete run {doomed} and 3 job(s)"]
    app.get(f"/runs/{doomed}/", status=200)

    assert cli("delete-run", doomed).lines == [f"deleted run {doomed} and 3 job(s)"]
    app.get(f"/runs/{doomed}/", status=404)
    app.get(f"/runs/{kept}/", status=200)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Job)) == 1


def test_delete_unknown_run_fails(cli):
    result = cli("delete-run", "no-such-run", expect=1)
    assert "not found" in result.err and result.out == ""


# ---- dedupe -------------------------------------------------------------------------------

def test_dedupe_finds_nothing_to_merge(app, cli):
    post_job(app, run_name(user="alice"), 1)
    post_job(app, run_name(user="bob"), 1)
    result = cli("dedupe", "alice-%")
    assert result.out == ""
    assert "1 run(s) match 'alice-%': 0 duplicate run name(s), 0 duplicate job id(s)" \
        in result.err
    assert "2 run(s) match" in cli("dedupe", "%", "--dry-run").err
