"""The per-process cache of GET /runs/NAME/ and job lists, runs.version, and ETags.

The invariant: whatever writes a run or its jobs, the next GET from a caching app is what an
app without a cache answers. Two apps on one database (each with its own cache, as two
processes have) must agree after writes through either.
"""
from __future__ import annotations

import datetime as dt
import gzip
import json
import tracemalloc

import pytest
import webob
import webtest
from sqlalchemy import select, update

from paddles.app import make_app
from paddles.cache import ENTRY_OVERHEAD, ResponseCache, etag_of
from paddles.db import begin_write, make_engine, make_session_factory
from paddles.models import Job, Run
from paddles.services import jobs as job_service
from paddles.services import runs as run_service
from tests.factories import post_job, put_job, run_name

DOCS = ("/runs/{run}/", "/runs/{run}/jobs/", "/runs/{run}/jobs/?status=running",
        "/runs/{run}/jobs/?fields=job_id,status,updated")


def version_of(session_factory, run) -> int | None:
    with session_factory() as s:
        return s.scalar(select(Run.version).where(Run.name == run))


def warm(app, run):
    """Fill the app's cache with every document of the run, and the run lists; return the
    run's documents."""
    for url in LISTS:
        app.get(url)
    return {path: app.get(path.format(run=run), status="*") for path in DOCS}


# run lists: each run's summary is kept by its run's state (paddles/rendered_runs.py)
LISTS = ("/runs/", "/runs/?count=1", "/runs/?fields=name,status,results", "/runs/queued/",
         "/runs/branch/main/suite/rados/", "/runs/status/queued/")


def assert_same(app, fresh, run):
    for url in (*(path.format(run=run) for path in DOCS), *LISTS):
        got, want = app.get(url, status="*"), fresh.get(url, status="*")
        assert (got.status_int, got.body) == (want.status_int, want.body), url


def heartbeat(app, run, job, expect=200, **body):
    return app.put(f"/runs/{run}/jobs/{job}/", json.dumps(body), status=expect)


def make_run(app, jobs=3):
    run = run_name()
    for j in range(1, jobs + 1):
        post_job(app, run, job_id=str(j), status="queued", name=run)
    return run


# ---- every write path moves the version and is seen through the cache ---------------------

WRITES = {
    "job POST": lambda app, run: post_job(app, run, job_id="9", status="queued", name=run),
    "job POST without id": lambda app, run: post_job(app, run, status="queued"),
    "status PUT": lambda app, run: put_job(app, run, "1", status="running"),
    "finish PUT": lambda app, run: put_job(app, run, "2", status="pass", success=True),
    "field PUT": lambda app, run: put_job(app, run, "1", description="changed"),
    "first-job sha1 PUT": lambda app, run: put_job(app, run, "1", sha1="f" * 40),
    "heartbeat PUT": lambda app, run: heartbeat(app, run, "3", name=run, job_id="3"),
    "empty heartbeat PUT": lambda app, run: put_job(app, run, "3"),
    "job DELETE": lambda app, run: app.delete(f"/runs/{run}/jobs/2/"),
    "run DELETE": lambda app, run: app.delete(f"/runs/{run}/"),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_every_api_write_is_seen_through_the_cache(app, fresh, session_factory, write):
    run = make_run(app)
    warm(app, run)
    before = version_of(session_factory, run)
    WRITES[write](app, run)
    after = version_of(session_factory, run)
    assert after is None if write == "run DELETE" else after > before
    assert_same(app, fresh, run)


def test_refused_writes_leave_the_version_alone(app, session_factory):
    run = make_run(app)
    before = version_of(session_factory, run)
    heartbeat(app, run, "7", expect=404, name=run, job_id="7")  # of a missing job
    put_job(app, run, "7", expect=404, status="running")
    post_job(app, run, job_id="1", expect=400)  # already exists
    app.put(f"/runs/{run}/jobs/1/", json.dumps({"status": "bogus"}), status=400)
    app.get(f"/runs/{run}/")
    assert version_of(session_factory, run) == before


def _age_jobs(session_factory, run):
    with session_factory.begin() as s:
        run_id = s.scalar(select(Run.id).where(Run.name == run))
        s.execute(update(Job).where(Job.run_id == run_id)
                  .values(updated=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)))


def test_expire_jobs_is_seen_through_the_cache(app, fresh, session_factory):
    run = make_run(app)
    put_job(app, run, "1", status="running")
    _age_jobs(session_factory, run)  # (behind the services' back: a new state to cache)
    warm(app, run)
    before = version_of(session_factory, run)
    with session_factory.begin() as s:
        begin_write(s)
        expired, _ = job_service.expire_stale_jobs(s)
    assert expired
    assert version_of(session_factory, run) > before
    assert app.get(f"/runs/{run}/").json["results"]["dead"] == 3
    assert_same(app, fresh, run)


def test_set_status_and_reparse_are_seen_through_the_cache(app, fresh, session_factory):
    run = make_run(app)
    with session_factory.begin() as s:  # drift, as a crashed old server could leave it
        s.execute(update(Run).where(Run.name == run).values(count_queued=0, user="x",
                                                            version=Run.version + 1))
    warm(app, run)
    before = version_of(session_factory, run)
    with session_factory.begin() as s:
        begin_write(s)
        assert run_service.recompute_run_status(s)
    middle = version_of(session_factory, run)
    assert middle > before
    assert_same(app, fresh, run)
    with session_factory.begin() as s:
        begin_write(s)
        run_service.reparse_run_names(s)
    assert version_of(session_factory, run) > middle
    assert app.get(f"/runs/{run}/").json["user"] == "teuthology"
    assert_same(app, fresh, run)


def test_admin_delete_run_is_seen_through_the_cache(app, session_factory):
    run = make_run(app)
    warm(app, run)
    with session_factory.begin() as s:
        begin_write(s)
        run_service.delete_run_and_jobs(s, run)
    app.get(f"/runs/{run}/", status=404)
    app.get(f"/runs/{run}/jobs/", status=404)


def test_a_re_created_run_is_not_served_from_the_cache(app, fresh):
    run = run_name()
    post_job(app, run, job_id="1", status="queued", description="first life")
    warm(app, run)
    app.delete(f"/runs/{run}/")
    post_job(app, run, job_id="1", status="queued", description="second life")
    assert app.get(f"/runs/{run}/").json["jobs"][0]["description"] == "second life"
    assert_same(app, fresh, run)


def test_two_apps_with_their_own_caches_see_each_others_writes(app, fresh, settings,
                                                               database_url):
    """Two caches over one database, each with its own engine: two processes in one."""
    engine = make_engine(database_url)
    try:
        other = webtest.TestApp(make_app(settings,
                                         session_factory=make_session_factory(engine)))
        run = make_run(app)
        warm(app, run), warm(other, run)
        for writer, reader, write in ((other, app, "status PUT"), (app, other, "finish PUT"),
                                      (other, app, "heartbeat PUT"),
                                      (app, other, "field PUT"), (other, app, "job DELETE")):
            WRITES[write](writer, run)
            assert_same(reader, fresh, run)
            assert_same(writer, fresh, run)
            # one state, one ETag, whichever process rendered it
            assert app.get(f"/runs/{run}/").headers["ETag"] == \
                other.get(f"/runs/{run}/").headers["ETag"]
    finally:
        engine.dispose()


# ---- the cache itself ----------------------------------------------------------------------

def test_a_repeated_get_is_one_statement_and_the_same_bytes(app, queries):
    run = make_run(app, jobs=5)
    first = app.get(f"/runs/{run}/")
    queries.reset()
    second = app.get(f"/runs/{run}/")
    assert queries.count == 1, queries.statements  # the run row: id, posted, version
    statement = queries.statements[0]
    if statement.startswith("EXECUTE"):  # PostgreSQL: the statement prepared on the server
        assert statement.startswith("EXECUTE paddles_run_state(")
        statement = run_service._RUN_STATE.prepare_sql.split(" AS ", 1)[1]
    select_list = statement.split("FROM")[0]
    assert select_list.count(",") == 2, select_list  # those three columns only, no ORM row
    assert second.body == first.body


def test_etag_and_if_none_match(app):
    run = make_run(app)
    for path in DOCS:
        url = path.format(run=run)
        resp = app.get(url)
        etag = resp.headers["ETag"]
        assert etag.startswith('W/"')
        not_modified = app.get(url, headers={"If-None-Match": etag}, status=304)
        assert not_modified.body == b"" and not_modified.headers["ETag"] == etag
        strong = etag[2:]  # a strong copy of the tag compares equal weakly
        app.get(url, headers={"If-None-Match": f'"nope", {strong}'}, status=304)
        app.get(url, headers={"If-None-Match": '"nope"'}, status=200)
        app.head(url, headers={"If-None-Match": etag}, status=304)
    etags = {app.get(p.format(run=run)).headers["ETag"] for p in DOCS}
    assert len(etags) == len(DOCS)  # each variant its own tag
    old = app.get(f"/runs/{run}/").headers["ETag"]
    put_job(app, run, "1", status="running")
    resp = app.get(f"/runs/{run}/", headers={"If-None-Match": old}, status=200)
    assert resp.headers["ETag"] != old
    app.get("/runs/no-such-run/", headers={"If-None-Match": "*"}, status=404)


def test_head_of_a_cached_run(app):
    run = make_run(app)
    got = app.get(f"/runs/{run}/")
    head = app.head(f"/runs/{run}/")
    assert head.body == b"" and head.content_type == got.content_type == "application/json"
    assert head.headers["ETag"] == got.headers["ETag"]


def test_cache_off_still_answers_with_etags(fresh, app):
    run = make_run(app)
    etag = fresh.get(f"/runs/{run}/").headers["ETag"]
    fresh.get(f"/runs/{run}/", headers={"If-None-Match": etag}, status=304)


def test_cache_is_bounded_in_bytes_and_least_recently_used_goes_first():
    entry = 100 + ENTRY_OVERHEAD  # what a 100-byte body costs in the bound
    cache = ResponseCache(10 * entry)
    for i in range(10):
        cache.put(i, b"x" * 100)
    assert cache.size == 10 * entry and len(cache) == 10
    assert cache.get(0) is not None  # 0 is now the most recently used
    cache.put(10, b"y" * 100)
    assert cache.get(1) is None and cache.get(0) is not None and cache.size == 10 * entry
    cache.put("big", b"z" * (10 * entry // 8 + 1))  # over an eighth of the bound: not kept
    assert cache.get("big") is None
    cache.put(10, b"w" * 50)  # replacing an entry accounts for the old one
    assert cache.size == 10 * entry - 50
    off = ResponseCache(0)
    off.put("a", b"1")
    assert off.get("a") is None and off.size == 0


def test_etag_is_the_key_and_nothing_else():
    assert etag_of(("run", 1, "t", 2)) == etag_of(("run", 1, "t", 2))
    assert etag_of(("run", 1, "t", 2)) != etag_of(("run", 1, "t", 3))


def test_openapi_describes_the_etags(app):
    paths = app.get("/openapi.json").json["paths"]
    for path in ("/runs/{name}/", "/runs/{name}/jobs/"):
        get = paths[path]["get"]
        assert "ETag" in get["responses"]["304"]["headers"]
        assert "ETag" in get["responses"]["200"]["headers"]
        assert any(p["name"] == "If-None-Match" and p["in"] == "header"
                   for p in get["parameters"])


def test_a_job_changed_alone_through_the_orm_bumps_its_run(app, session_factory):
    """Services touch the run on every job write today; the flush hook does not rely on it."""
    run = make_run(app)
    before = version_of(session_factory, run)
    with session_factory.begin() as s:  # the run not loaded: an UPDATE of its version
        job = s.scalar(select(Job).join(Run).where(Run.name == run, Job.job_id == "1"))
        job.description = "edited"
    assert version_of(session_factory, run) == before + 1
    with session_factory.begin() as s:  # the run loaded (unchanged): bumped in its flush
        loaded = s.scalar(select(Run).where(Run.name == run))
        job = s.scalar(select(Job).where(Job.run_id == loaded.id, Job.job_id == "2"))
        s.delete(job)
    assert version_of(session_factory, run) == before + 2
    with session_factory.begin() as s:  # nothing really changed: no bump
        loaded = s.scalar(select(Run).where(Run.name == run))
        loaded.user = loaded.user
    assert version_of(session_factory, run) == before + 2


# ---- gzip for clients that take it ----------------------------------------------------------

def raw_get(app, url, **headers):
    """The response as the WSGI app sends it (webtest would decode a gzip body itself)."""
    return webob.Request.blank(url, headers=headers).get_response(app.app)


@pytest.mark.parametrize("path", DOCS[:2])
def test_a_client_that_takes_gzip_gets_the_same_document_gzipped(app, fresh, path):
    run = make_run(app, jobs=5)
    url = path.format(run=run)
    plain = raw_get(app, url)
    assert "Content-Encoding" not in plain.headers and plain.headers["Vary"] == "Accept-Encoding"
    for attempt in ("first, from the cache's body", "second, kept gzipped"):
        packed = raw_get(app, url, **{"Accept-Encoding": "gzip, deflate"})  # as requests asks
        assert packed.status_int == 200 and packed.headers["Content-Encoding"] == "gzip"
        assert packed.headers["Vary"] == "Accept-Encoding"
        assert packed.headers["ETag"] == plain.headers["ETag"]  # the same document
        assert int(packed.headers["Content-Length"]) == len(packed.body) < len(plain.body) / 4
        assert gzip.decompress(packed.body) == plain.body == fresh.get(url).body
    uncached = raw_get(fresh, url, **{"Accept-Encoding": "gzip"})
    assert uncached.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(uncached.body) == plain.body
    # webtest clients (and requests) see the JSON either way
    assert app.get(url, headers={"Accept-Encoding": "gzip"}).json == plain.json


def test_gzip_first_asked_on_a_miss_is_kept_and_follows_writes(app, fresh):
    run = make_run(app, jobs=5)
    url = f"/runs/{run}/"
    first = raw_get(app, url, **{"Accept-Encoding": "gzip"})  # nothing cached yet
    assert gzip.decompress(first.body) == fresh.get(url).body
    put_job(app, run, "2", status="running")
    after = raw_get(app, url, **{"Accept-Encoding": "gzip"})
    assert after.headers["ETag"] != first.headers["ETag"]
    assert gzip.decompress(after.body) == fresh.get(url).body
    assert json.loads(gzip.decompress(after.body))["jobs"][1]["status"] == "running"


@pytest.mark.parametrize("header", [None, "", "identity", "gzip;q=0", "deflate, br",
                                    "*;q=0", "gzip;q=nope"])
def test_clients_that_do_not_take_gzip_get_it_plain(app, header):
    run = make_run(app, jobs=5)
    resp = raw_get(app, f"/runs/{run}/", **({} if header is None else
                                            {"Accept-Encoding": header}))
    assert "Content-Encoding" not in resp.headers and resp.json["name"] == run


def test_a_small_document_is_not_gzipped_and_304_still_varies(app):
    run = make_run(app, jobs=1)
    url = f"/runs/{run}/jobs/?status=running"  # no running job: []
    small = raw_get(app, url, **{"Accept-Encoding": "gzip"})
    assert small.body == b"[]" and "Content-Encoding" not in small.headers
    etag = small.headers["ETag"]
    not_modified = raw_get(app, url, **{"Accept-Encoding": "gzip", "If-None-Match": etag})
    assert not_modified.status_int == 304 and not_modified.body == b""
    assert not_modified.headers["Vary"] == "Accept-Encoding"


def test_head_with_gzip_has_the_headers_of_the_get(app):
    run = make_run(app, jobs=5)
    url = f"/runs/{run}/"
    get = raw_get(app, url, **{"Accept-Encoding": "gzip"})
    head = webob.Request.blank(url, method="HEAD", headers={"Accept-Encoding": "gzip"}) \
        .get_response(app.app)
    assert head.status_int == 200 and head.body == b""
    assert head.headers["Content-Encoding"] == "gzip" and head.headers["ETag"] == get.headers["ETag"]


def test_the_cache_counts_the_gzip_form_in_its_bound():
    body = json.dumps([{"job_id": str(i), "status": "pass"} for i in range(200)]).encode()
    cache = ResponseCache(len(body) * 9)
    assert cache.put("a", body) == (body, None) and cache.size == len(body) + ENTRY_OVERHEAD
    packed, coding = cache.get("a", gzip_ok=True)
    assert coding == "gzip" and gzip.decompress(packed) == body
    assert cache.size == len(body) + len(packed) + ENTRY_OVERHEAD
    assert cache.get("a", gzip_ok=True)[0] is packed  # compressed once
    assert cache.get("a") == (body, None)
    cache.put("a", body)  # replaced: the old gzip form goes with it
    assert cache.size == len(body) + ENTRY_OVERHEAD
    found = cache.put("b", body, gzip_ok=True)  # a miss for a gzip client keeps both at once
    assert found[1] == "gzip" and cache.size == 2 * (len(body) + ENTRY_OVERHEAD) + len(found[0])
    assert cache.get("b", gzip_ok=True)[0] is found[0]
    small = ResponseCache(1000)
    assert small.put("s", b"[]", gzip_ok=True) == (b"[]", None) \
        and small.size == 2 + ENTRY_OVERHEAD
    for i in range(10):  # eviction takes an entry's gzip form with it
        cache.put(i, body, gzip_ok=True)
    assert cache.size <= cache.max_bytes and len(cache) < 12


def test_entry_overhead_is_what_an_entry_costs_besides_its_body():
    """The bound counts ENTRY_OVERHEAD per entry: measured here for the keys the cache holds
    most of (a job's rendering: ("job", id, row version), paddles/rendered_jobs.py)."""
    cache = ResponseCache(1 << 30)
    bodies = [b"x" * 3000 for _ in range(2000)]  # not traced: only what the cache adds is
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i, body in enumerate(bodies):
            cache.put(("job", 10_000_000 + i, str(3_000_000_000 + i)), body)
        per_entry = (tracemalloc.get_traced_memory()[0] - before) / len(cache)
    finally:
        tracemalloc.stop()
    assert ENTRY_OVERHEAD / 2 <= per_entry <= ENTRY_OVERHEAD * 3 / 2, per_entry
