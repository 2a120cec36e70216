import datetime as dt

from tests.commands.conftest import job_statuses, recomputed, set_job_fields, stored
from tests.factories import post_job, put_job, run_name


def when(**delta) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(**delta)


def wire(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def make_lab(app, db_engine):
    """Two runs; returns (run_a, run_b, the (run, job_id) pairs that are stale)."""
    a, b = run_name(), run_name()
    post_job(app, a, 1, status="running")
    put_job(app, a, 1, updated=wire(when(hours=-2)))           # stale running
    post_job(app, a, 2, status="running")                       # fresh running
    post_job(app, a, 3, status="waiting")
    put_job(app, a, 3, updated=wire(when(minutes=-31)))         # stale waiting
    post_job(app, a, 4)                                         # unknown ...
    set_job_fields(db_engine, a, 4, updated=None, posted=when(days=-1))  # ... null updated, old
    post_job(app, a, 5, status="running")
    put_job(app, a, 5, updated=wire(when(days=1)))              # future: not stale
    post_job(app, a, 6, status="queued")
    set_job_fields(db_engine, a, 6, updated=when(days=-20), posted=when(days=-20))  # old queued
    post_job(app, a, 7, status="queued")                        # fresh queued
    post_job(app, a, 8, status="pass")
    put_job(app, a, 8, updated=wire(when(days=-30)))            # finished: never expires
    post_job(app, a, 9)
    set_job_fields(db_engine, a, 9, updated=None)                # null updated, recent posted
    post_job(app, b, 1, status="running")
    post_job(app, b, 2, status="waiting")
    for job in (1, 2):
        put_job(app, b, job, updated=wire(when(hours=-3)))
    stale = {(a, "1"), (a, "3"), (a, "4"), (a, "6"), (b, "1"), (b, "2")}
    return a, b, stale


def expired_in(result) -> set[tuple[str, str]]:
    out = set()
    for line in result.lines:
        if not line.startswith("run "):
            run, job_id, _ = line.split(" ", 1)[0].split("/")
            out.add((run, job_id))
    return out


def test_expires_exactly_the_stale_jobs_and_keeps_counters_exact(app, db_engine, session, cli):
    a, b, stale = make_lab(app, db_engine)
    before = job_statuses(session)

    result = cli("expire-jobs")

    assert expired_in(result) == stale
    after = job_statuses(session)
    assert {key for key in after if after[key] != before[key]} == stale
    assert all(after[key] == "dead" for key in stale)
    assert stored(session) == recomputed(session)
    assert f"run {b}: running -> finished dead" in result.lines
    summary = app.get(f"/runs/{b}/").json
    assert summary["status"] == "finished dead" and summary["results"]["dead"] == 2
    assert app.get(f"/runs/{a}/").json["status"] == "running"
    assert "expired 6 job(s) in 2 run(s)" in result.err
    # Nothing is stale any more.
    assert cli("expire-jobs").lines == []


def test_dry_run_reports_the_same_and_changes_nothing(app, db_engine, session, cli):
    _a, _b, stale = make_lab(app, db_engine)
    jobs_before, runs_before = job_statuses(session), stored(session)

    dry = cli("expire-jobs", "--dry-run")

    assert expired_in(dry) == stale
    assert "would expire 6 job(s)" in dry.err and "nothing was changed" in dry.err
    assert job_statuses(session) == jobs_before
    assert stored(session) == runs_before
    assert cli("expire-jobs").lines == dry.lines


def test_windows_come_from_the_options(app, db_engine, session, cli):
    run = run_name()
    post_job(app, run, 1, status="running")
    put_job(app, run, 1, updated=wire(when(minutes=-10)))
    post_job(app, run, 2, status="queued")
    set_job_fields(db_engine, run, 2, updated=when(days=-3), posted=when(days=-3))

    assert cli("expire-jobs").lines == []
    assert expired_in(cli("expire-jobs", "-r", "5", "-q", "4")) == {(run, "1")}
    assert expired_in(cli("expire-jobs", "--queued", "2")) == {(run, "2")}
    assert app.get(f"/runs/{run}/").json["status"] == "finished dead"
    assert stored(session) == recomputed(session)


def test_bad_window_is_a_usage_error(cli, capsys):
    import pytest
    with pytest.raises(SystemExit) as exc:
        cli("expire-jobs", "-r", "0")
    assert exc.value.code == 2


def test_a_job_refreshed_while_expiry_waits_for_the_run_lock_survives(
        app, db_engine, session, cli, backend):
    """expire-jobs decides under the run row lock that job writes take (PostgreSQL)."""
    import threading
    import time

    import pytest
    from sqlalchemy import select, update

    from paddles.models import Job, Run
    if backend != "postgresql":
        pytest.skip("SQLite serialises writers with its database lock instead")
    run = run_name()
    post_job(app, run, 1, status="running")
    put_job(app, run, 1, updated=wire(when(hours=-2)))
    results = []
    with db_engine.connect() as conn:
        trans = conn.begin()  # a job write in progress: run row locked, job refreshed
        run_id = conn.execute(select(Run.id).where(Run.name == run).with_for_update()).scalar()
        conn.execute(update(Job).where(Job.run_id == run_id).values(updated=when()))
        worker = threading.Thread(target=lambda: results.append(cli("expire-jobs")))
        worker.start()
        time.sleep(0.3)
        assert worker.is_alive()  # waiting for the run lock
        trans.commit()
    worker.join(30)
    assert results and results[0].lines == []
    assert job_statuses(session) == {(run, "1"): "running"}
    assert stored(session) == recomputed(session)
