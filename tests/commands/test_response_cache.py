"""The admin commands change runs behind the web app's back: its cache must see it."""
from __future__ import annotations

import dataclasses
import datetime as dt

import webtest
from sqlalchemy import update

from paddles.app import make_app
from paddles.models import Run
from tests.commands.conftest import set_job_fields
from tests.factories import post_job, put_job, run_name

DOCS = ("/runs/{run}/", "/runs/{run}/jobs/")


def test_cli_changes_are_seen_through_the_cache(app, settings, session_factory, db_engine,
                                                cli):
    fresh = webtest.TestApp(make_app(dataclasses.replace(settings, response_cache_size=0),
                                     session_factory=session_factory))

    def assert_same(run):
        for path in DOCS:
            url = path.format(run=run)
            got, want = app.get(url, status="*"), fresh.get(url, status="*")
            assert (got.status_int, got.body) == (want.status_int, want.body), url

    run = run_name()
    for j in ("1", "2"):
        post_job(app, run, job_id=j, status="queued", name=run)
    put_job(app, run, "1", status="running")
    old = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    set_job_fields(db_engine, run, "1", updated=old)
    with db_engine.begin() as conn:  # behind the services' back, as a new version
        conn.execute(update(Run).where(Run.name == run)
                     .values(count_pass=5, version=Run.version + 1))
    for path in DOCS:
        app.get(path.format(run=run))  # cached

    cli("expire-jobs")
    assert app.get(f"/runs/{run}/jobs/?status=dead").json[0]["job_id"] == "1"
    assert_same(run)
    cli("set-status")
    assert app.get(f"/runs/{run}/").json["results"]["pass"] == 0
    assert_same(run)
    cli("delete-run", run)
    app.get(f"/runs/{run}/", status=404)
    assert_same(run)
