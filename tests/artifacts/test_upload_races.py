"""Concurrent uploads of one artifact PATH (issue #18, item 7): every PUT is a clean create,
replace or no-op, never a deadlock (503) nor a 404 for a job that exists.

The PostgreSQL interleavings are forced, not hoped for: a transaction of the test holds the
events' advisory lock, which every writing request takes last, at commit (so a request can
be held with its rows written and uncommitted), and a statement hook holds one request just
before a chosen statement. Progress is read from pg_stat_activity. On SQLite writers are
serialised (BEGIN IMMEDIATE), so neither interleaving exists there; the plain barrier test
runs on both.
"""
from __future__ import annotations

import threading
import time

import pytest
import webtest
from sqlalchemy import event, text

from paddles.app import make_app

from paddles.services.events import ADVISORY_KEY
from tests.concurrency.threads import run_together

NAME = "shared.log"


@pytest.fixture
def storage_kind():
    return "local"


def test_concurrent_puts_of_one_path(settings, session_factory, app, job_url):
    """Eight PUTs released together, two contents: one creates, the others replace or find
    it unchanged; the path ends with one of the two contents."""
    bodies = [b"first\n", b"second\n"]

    def work(client, i):
        resp = client.put(f"{job_url}/artifacts/{NAME}", bodies[i % 2], expect_errors=True)
        return resp.status_int

    statuses = run_together(settings, session_factory, work)
    assert sorted(statuses) == [200] * 7 + [201], statuses
    assert app.get(f"{job_url}/artifacts/{NAME}").body in bodies
    assert [a["name"] for a in app.get(f"{job_url}/artifacts/").json] == [NAME]


# ---- forced interleavings (PostgreSQL) ------------------------------------------------------

def _postgres_only(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers: the interleaving cannot happen")


def _wait_for(engine, condition, timeout=20.0):
    """Until a backend of this database waits for a lock in a statement LIKE `condition`."""
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            if conn.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query LIKE :q"), {"q": condition}
                    ).scalar():
                return
            conn.rollback()
            time.sleep(0.02)
    raise AssertionError(f"no request came to wait in {condition!r}")


class _Request(threading.Thread):
    """One request in a thread, on its own app (made beforehand: making a Pecan app resets
    the context of requests in flight), held by `held` if given; .result() once done."""

    def __init__(self, client, call, held=None):
        super().__init__(daemon=True)
        self._client = client
        self._call = call
        self.status = None
        if held is not None:
            held.thread = self
        self.start()

    def run(self):
        self.status = self._call(self._client).status_int

    def result(self):
        self.join(timeout=30)
        assert not self.is_alive(), "request still blocked"
        return self.status


class _HoldBefore:
    """Hold `thread` before its `nth` statement containing every one of `parts`."""

    def __init__(self, engine, parts, nth):
        self.engine, self.parts, self.nth = engine, parts, nth
        self.thread = None
        self.seen = 0
        self.reached = threading.Event()
        self.go = threading.Event()
        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, conn, cursor, statement, params, context, executemany):
        if threading.current_thread() is not self.thread:
            return
        if all(part in statement for part in self.parts):
            self.seen += 1
            if self.seen == self.nth:
                self.reached.set()
                assert self.go.wait(30)

    def remove(self):
        self.go.set()
        event.remove(self.engine, "before_cursor_execute", self._before)


def _clients(settings, session_factory, n):
    return iter([webtest.TestApp(make_app(settings, session_factory=session_factory))
                 for _ in range(n)])


@pytest.fixture
def hold_commits(db_engine):
    """hold() makes every writing request wait at its commit until release()."""
    conn = db_engine.connect()
    state = {}

    def hold():
        state["tx"] = conn.begin()
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_KEY})

    def release():
        state.pop("tx").rollback()

    yield hold, release
    if "tx" in state:
        release()
    conn.close()


def _second_find(db_engine):
    """The upload's SELECT of the artifact row FOR UPDATE after its INSERT hit the name."""
    return _HoldBefore(db_engine, ("FROM artifacts", "FOR UPDATE"), nth=2)


def test_puts_of_one_path_do_not_deadlock(settings, session_factory, db_engine, database_url,
                                          app, job_url, hold_commits):
    """A created the row (uncommitted); B, finding none, inserted too and waited for A; A
    committed and B went to lock the row A made; C, which had found and locked that row,
    waited for the blob row B held: a deadlock, one of them a 503. Blob rows are now locked
    before artifact rows, by every upload."""
    _postgres_only(database_url)
    hold, release = hold_commits
    url = f"{job_url}/artifacts/{NAME}"
    clients = _clients(settings, session_factory, 3)
    held = _second_find(db_engine)
    try:
        hold()
        a = _Request(next(clients), lambda c: c.put(url, b"A\n", expect_errors=True))
        _wait_for(db_engine, "%pg_advisory_xact_lock%")
        b = _Request(next(clients),
                     lambda c: c.put(url, b"BC\n", expect_errors=True), held)
        _wait_for(db_engine, "INSERT INTO artifacts%")
        release()
        assert held.reached.wait(30)  # A committed; B about to lock A's row
        assert a.result() == 201
        c = _Request(next(clients), lambda c: c.put(url, b"BC\n", expect_errors=True))
        _wait_for(db_engine, "%INTO blobs%")  # C waits for the blob row B holds
        held.go.set()
        assert (b.result(), c.result()) == (200, 200)
    finally:
        held.remove()
    assert app.get(url).body == b"BC\n"


def test_put_racing_a_delete_of_its_path(settings, session_factory, db_engine, database_url,
                                         app, job_url, hold_commits):
    """B's INSERT met A's row; before B could lock it, a DELETE took it away. B answered 404
    "job not found" for a job that exists; it now inserts again."""
    _postgres_only(database_url)
    hold, release = hold_commits
    url = f"{job_url}/artifacts/{NAME}"
    clients = _clients(settings, session_factory, 3)
    held = _second_find(db_engine)
    try:
        hold()
        a = _Request(next(clients), lambda c: c.put(url, b"A\n", expect_errors=True))
        _wait_for(db_engine, "%pg_advisory_xact_lock%")
        b = _Request(next(clients),
                     lambda c: c.put(url, b"B\n", expect_errors=True), held)
        _wait_for(db_engine, "INSERT INTO artifacts%")
        release()
        assert held.reached.wait(30)
        assert a.result() == 201
        app.delete(url, status=204)
        held.go.set()
        assert b.result() == 201
    finally:
        held.remove()
    assert app.get(url).body == b"B\n"
    assert [a["name"] for a in app.get(f"{job_url}/artifacts/").json] == [NAME]
