"""Spec 12.10-12.13: concurrent job and run writes, on separate connections, committed for real.

Every thread has its own WSGI app (as gunicorn workers would) over the shared engine, and all
threads are released together by a barrier so the requests really overlap.
"""
from __future__ import annotations

import json
import random

from sqlalchemy import func, select

from paddles.models import Job, Run
from tests.concurrency.threads import THREADS, run_together
from tests.factories import job_body, run_name
from tests.services.test_run_status import JOB_STATUSES, recompute, stored



def outcome(resp):
    return resp.status_int, resp.json


def test_same_job_id_posted_concurrently(settings, session_factory, session):
    name = run_name()
    body = json.dumps(job_body(7, status="queued"))
    results = run_together(settings, session_factory, lambda app, i: outcome(
        app.post(f"/runs/{name}/jobs/", body, expect_errors=True)))
    codes = sorted(code for code, _ in results)
    assert codes == [200] + [400] * (THREADS - 1), results
    assert [b for c, b in results if c == 200] == [{"job_id": "7"}]
    for code, body in results:
        if code == 400:
            assert body == {"message": "job with job_id 7 already exists"}
    assert session.scalar(select(func.count()).select_from(Job)) == 1
    assert session.scalar(select(func.count()).select_from(Run)) == 1
    assert stored(session) == recompute(session)


def test_jobs_without_id_posted_concurrently_to_a_new_run(settings, session_factory, session):
    name = run_name()
    per_thread = 3

    def work(app, i):
        out = []
        for _ in range(per_thread):
            resp = app.post(f"/runs/{name}/jobs/", json.dumps(job_body(status="queued")),
                            expect_errors=True)
            out.append(outcome(resp))
        return out

    results = [r for batch in run_together(settings, session_factory, work) for r in batch]
    assert all(code == 200 for code, _ in results), results
    ids = [body["job_id"] for _, body in results]
    assert len(set(ids)) == len(ids) == THREADS * per_thread
    assert session.scalar(select(func.count()).select_from(Run)) == 1
    assert sorted(session.scalars(select(Job.job_id))) == sorted(ids)
    assert stored(session)[name]["counts"]["queued"] == THREADS * per_thread
    assert stored(session) == recompute(session)


def test_concurrent_status_puts_keep_counters_exact(settings, session_factory, session, app):
    name = run_name()
    for job_id in range(1, 51):
        app.post(f"/runs/{name}/jobs/", json.dumps({"job_id": job_id, "status": "queued",
                                                    "sha1": "a" * 40}))

    def work(thread_app, i):
        rng = random.Random(i)
        codes = []
        for _ in range(20):
            job_id = rng.randint(1, 50)
            body = ({"status": rng.choice(JOB_STATUSES)} if rng.random() < 0.8
                    else {"success": rng.choice([True, False, None])})
            resp = thread_app.put(f"/runs/{name}/jobs/{job_id}/", json.dumps(body),
                                  expect_errors=True)
            codes.append(resp.status_int)
        return codes

    codes = [c for batch in run_together(settings, session_factory, work) for c in batch]
    assert set(codes) == {200}, codes
    expected = recompute(session)
    assert stored(session) == expected
    assert expected[name]["counts"]["total"] == 50
    summary = app.get(f"/runs/{name}/").json
    assert summary["status"] == expected[name]["status"]


def test_concurrent_puts_and_deletes_across_runs(settings, session_factory, session, app):
    names = [run_name() for _ in range(2)]
    for name in names:
        for job_id in range(1, 11):
            app.post(f"/runs/{name}/jobs/", json.dumps({"job_id": job_id, "status": "running"}))

    def work(thread_app, i):
        rng = random.Random(100 + i)
        codes = []
        for _ in range(12):
            name, job_id = rng.choice(names), rng.randint(1, 12)
            roll = rng.random()
            if roll < 0.6:
                resp = thread_app.put(f"/runs/{name}/jobs/{job_id}/",
                                      json.dumps({"status": rng.choice(JOB_STATUSES)}),
                                      expect_errors=True)
            elif roll < 0.8:
                resp = thread_app.delete(f"/runs/{name}/jobs/{job_id}/", expect_errors=True)
            else:
                resp = thread_app.post(f"/runs/{name}/jobs/",
                                       json.dumps({"job_id": job_id, "status": "queued"}),
                                       expect_errors=True)
            codes.append(resp.status_int)
        return codes

    codes = [c for batch in run_together(settings, session_factory, work) for c in batch]
    assert set(codes) <= {200, 400, 404}, codes
    assert stored(session) == recompute(session)


def test_same_run_created_concurrently(settings, session_factory, session):
    name = run_name()
    results = run_together(settings, session_factory, lambda app, i: outcome(
        app.post("/runs/", json.dumps({"name": name}), expect_errors=True)))
    codes = sorted(code for code, _ in results)
    assert codes == [200] + [400] * (THREADS - 1), results
    for code, body in results:
        if code == 400:
            assert body == {"message": f"run with name {name} already exists"}
    assert session.scalar(select(func.count()).select_from(Run)) == 1


def test_run_created_by_post_run_and_job_posts_at_once(settings, session_factory, session):
    """Implicit creation (job POST) racing explicit creation (run POST): one run, no 5xx."""
    name = run_name()

    def work(app, i):
        if i % 2:
            return outcome(app.post("/runs/", json.dumps({"name": name}), expect_errors=True))
        return outcome(app.post(f"/runs/{name}/jobs/", json.dumps({"job_id": i}),
                                expect_errors=True))

    results = run_together(settings, session_factory, work)
    assert all(code in (200, 400) for code, _ in results), results
    assert [code for i, (code, _) in enumerate(results) if i % 2 == 0] == [200] * (THREADS // 2)
    assert session.scalar(select(func.count()).select_from(Run)) == 1
    assert session.scalar(select(func.count()).select_from(Job)) == THREADS // 2
    assert stored(session) == recompute(session)
