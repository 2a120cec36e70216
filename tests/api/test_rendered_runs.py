"""Run lists render each run's summary once per state of the run (paddles/rendered_runs.py);
the answer is the bytes an app without a cache gives (tests/api/test_response_cache.py checks
that after every kind of write)."""
from __future__ import annotations

import pytest

from paddles import serializers
from paddles.cache import ResponseCache
from tests.factories import post_job, put_job, run_name


@pytest.fixture
def renders(monkeypatch):
    """The names of the runs whose summaries are rendered."""
    names: list[str] = []
    summary = serializers.run_summary

    def counted(run, settings):
        names.append(run.name)
        return summary(run, settings)
    monkeypatch.setattr(serializers, "run_summary", counted)
    return names


def test_only_the_runs_that_changed_are_rendered_again(app, fresh, renders):
    runs = [run_name() for _ in range(3)]
    for run in runs:
        post_job(app, run, job_id="1", status="queued", name=run)
    first = app.get("/runs/").body  # (with the runs other tests left: the newest 25)
    assert set(runs) <= set(renders)
    renders.clear()
    assert app.get("/runs/").body == first
    assert renders == []
    put_job(app, runs[1], "1", status="running")
    got = app.get("/runs/").body
    assert renders == [runs[1]]
    assert got == fresh.get("/runs/").body


def test_a_list_cut_to_fields_is_rendered_each_time(app, renders):
    run = run_name()
    post_job(app, run, job_id="1", status="queued", name=run)
    for _ in range(2):
        assert app.get("/runs/?fields=name,status&count=1").json == [{"name": run,
                                                                      "status": "queued"}]
    assert renders == [run, run]


def test_put_many_keeps_what_put_keeps_under_one_lock():
    cache = ResponseCache(8000)
    cache.put_many([(("a",), b"x" * 100), (("b",), b"y" * 1001), (("c",), b"z" * 10)])
    assert cache.get_many([("a",), ("b",), ("c",)]) == [b"x" * 100, None, b"z" * 10]
    one = ResponseCache(8000)  # the same entries one by one cost the same
    for key, body in ((("a",), b"x" * 100), (("b",), b"y" * 1001), (("c",), b"z" * 10)):
        one.put(key, body)
    assert cache.size == one.size
    cache.put_many([(("a",), b"w" * 50)])  # replaced, counted once
    assert cache.get_many([("a",)]) == [b"w" * 50]
    assert cache.size == one.size - 50
    cache.put_many([((n,), b"v" * 900) for n in range(20)])  # over the bound: oldest go
    assert cache.size <= 8000
    assert cache.get_many([("a",), (19,)]) == [None, b"v" * 900]
