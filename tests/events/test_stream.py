"""GET /events/stream against a real gunicorn (the repo's gunicorn_config.py): resume after a
disconnect loses nothing, keep-alives flow, streams leave threads for other requests, and
SIGTERM ends open streams at once."""
from __future__ import annotations

import dataclasses
import http.client
import json
import signal
import time
import urllib.request
from urllib.parse import urlsplit

import webtest

from paddles.app import make_app
from tests.events.conftest import wait_until


class SSEClient:
    """A raw Server-Sent Events reader: events (id, data) and comments, as they come."""

    def __init__(self, base: str, path: str, last_event_id: int | None = None):
        url = urlsplit(base)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.conn.request("GET", path, headers=headers)
        self.resp = self.conn.getresponse()
        self.events: list[dict] = []
        self.comments: list[str] = []
        self.retry = None

    def read_until(self, predicate, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        current: dict = {}
        while not predicate(self):
            remaining = deadline - time.monotonic()
            assert remaining > 0, "stream did not deliver in time"
            self.conn.sock.settimeout(remaining)
            line = self.resp.readline()
            if not line:
                return  # the server ended the stream
            line = line.decode().rstrip("\n")
            if line == "":
                if "data" in current:
                    self.events.append({"id": int(current["id"]),
                                        **json.loads(current["data"])})
                current = {}
            elif line.startswith(":"):
                self.comments.append(line[1:].strip())
            else:
                field, _, value = line.partition(": ")
                if field == "retry":
                    self.retry = int(value)
                else:
                    current[field] = value

    def ids(self) -> list[int]:
        return [e["id"] for e in self.events]

    def close(self) -> None:
        self.conn.sock.close()  # an abrupt disconnect, as a dropped network would do
        self.conn.close()


def _post(base: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _message(base, i):
    return _post(base, "/events/", {"message": i})["id"]


def test_resume_after_a_disconnect_loses_nothing(gunicorn, backend):
    # PostgreSQL: no polling, keep-alives 2 s apart: only a NOTIFY can wake the stream in time
    pg = backend == "postgresql"
    base, _ = gunicorn(PADDLES_EVENTS_POLL_INTERVAL=30 if pg else 0.05,
                       PADDLES_EVENTS_KEEPALIVE=2 if pg else 0.3)
    before = [_message(base, i) for i in range(3)]  # replayed from since=0

    first = SSEClient(base, "/events/stream?since=0&type=message")
    assert first.resp.status == 200
    assert first.resp.getheader("Content-Type") == "text/event-stream; charset=utf-8"
    first.read_until(lambda c: len(c.events) == 3)
    live = [_message(base, i) for i in range(3, 6)]  # while connected: pushed live
    first.read_until(lambda c: len(c.events) == 6, timeout=1.0)
    first.read_until(lambda c: "keep-alive" in c.comments)  # idle: comments flow
    assert first.retry == 2000
    first.close()

    missed = [_message(base, i) for i in range(6, 10)]  # while disconnected
    # the EventSource reconnect: same URL, Last-Event-ID the last id it saw
    second = SSEClient(base, "/events/stream?since=0&type=message",
                       last_event_id=first.ids()[-1])
    second.read_until(lambda c: len(c.events) == 4)
    more = [_message(base, i) for i in range(10, 12)]
    second.read_until(lambda c: len(c.events) == 6)
    second.close()

    received = first.ids() + second.ids()
    assert received == before + live + missed + more  # each once, in order
    assert [e["data"]["message"] for e in first.events + second.events] == list(range(12))


def test_a_stream_without_since_starts_at_the_newest_event(gunicorn):
    base, _ = gunicorn()
    _message(base, "old")
    client = SSEClient(base, "/events/stream")
    client.read_until(lambda c: bool(c.comments))  # the opening comment: it is listening
    new = _message(base, "new")
    client.read_until(lambda c: len(c.events) == 1)
    assert client.ids() == [new]
    client.close()


def test_streams_leave_threads_for_other_requests_and_are_bounded(gunicorn):
    """One worker, 4 threads: 2 streams at most (half), the other threads keep serving."""
    base, _ = gunicorn(PADDLES_THREADS=4)
    streams = [SSEClient(base, "/events/stream") for _ in range(2)]
    for s in streams:
        s.read_until(lambda c: bool(c.comments))
    third = SSEClient(base, "/events/stream")
    assert third.resp.status == 503 and third.resp.getheader("Retry-After") == "5"
    assert "too many open event streams" in json.loads(third.resp.read())["message"]
    started = time.monotonic()
    for _ in range(20):
        with urllib.request.urlopen(base + "/runs/", timeout=5) as resp:
            assert resp.status == 200
    assert time.monotonic() - started < 5
    streams[0].close()
    # the slot comes back once the server notices the disconnect (its next keep-alive write)
    assert wait_until(lambda: _stream_status(base) == 200, timeout=10)
    streams[1].close()


def _stream_status(base) -> int:
    client = SSEClient(base, "/events/stream")
    status = client.resp.status
    client.close()
    return status


def test_streams_end_after_their_time_limit_and_on_sigterm(gunicorn):
    base, proc = gunicorn(PADDLES_EVENTS_STREAM_MAX_SECONDS=1.5, PADDLES_GRACEFUL_TIMEOUT=30)
    client = SSEClient(base, "/events/stream")
    client.read_until(lambda c: False, timeout=5)  # returns when the server ends it
    assert "time limit reached; reconnect with Last-Event-ID" in client.comments
    client.close()  # (a kept-alive connection would hold gunicorn's stop for 2 s)

    client = SSEClient(base, "/events/stream")
    client.read_until(lambda c: bool(c.comments))
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    client.read_until(lambda c: False, timeout=10)
    assert "server stopping; reconnect with Last-Event-ID" in client.comments
    client.close()
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 5  # not the 30 s graceful timeout


def test_stream_in_process(settings, session_factory):
    """The same generator under webtest: Last-Event-ID wins over since; filters apply."""
    settings = dataclasses.replace(settings, events_stream_max_seconds=0.2)
    app = webtest.TestApp(make_app(settings, session_factory=session_factory))
    ids = [app.post("/events/", json.dumps({"message": i}), status=201).json["id"]
           for i in range(3)]
    body = app.get("/events/stream?since=0", headers={"Last-Event-ID": str(ids[0])}).text
    assert [int(line[4:]) for line in body.splitlines() if line.startswith("id: ")] == ids[1:]
    assert "id: " not in app.get("/events/stream?since=0&type=run.*").text
    assert app.head("/events/stream").status_int == 200
    assert app.get("/events/stream?since=x", status=400).json["message"].startswith("since")


def test_postgresql_wakes_readers_with_notify_at_commit(db_engine, session_factory):
    from paddles.db import begin_write
    from paddles.notify import Waker
    from paddles.services import events as event_service

    waker = Waker(db_engine, poll_interval=30.0)
    try:
        if db_engine.dialect.name != "postgresql":
            assert not waker.listening
            started = time.monotonic()
            assert waker.wait(waker.version(), 0.2) is False  # SQLite: a poll interval
            assert time.monotonic() - started >= 0.19
            return
        assert waker.wait_listening(5)
        version = waker.version()
        with session_factory() as session:
            begin_write(session)
            event_service.record_event(session, "message", {"message": 1}, subject="events")
            event_service.flush_events(session)
            assert waker.wait(version, 0.3) is False  # not before the commit
            started = time.monotonic()
            session.commit()
        assert waker.wait(version, 5) is True
        assert time.monotonic() - started < 1  # NOTIFY, not the 30 s poll interval
    finally:
        waker.stop()


def test_forgetting_a_database_stops_its_listen_thread(db_engine, database_url):
    """A database going away (a throwaway one, at the end of a test session) takes its
    waker with it: no thread keeps retrying a database that no longer exists."""
    from paddles import notify

    waker = notify.get_waker(db_engine, poll_interval=30.0)
    assert notify.get_waker(db_engine, poll_interval=30.0) is waker  # one per database
    notify.forget(database_url)
    assert notify.get_waker(db_engine, poll_interval=30.0) is not waker
    notify.forget(database_url)
    if waker._thread is not None:
        waker._thread.join(10)
        assert not waker._thread.is_alive()
