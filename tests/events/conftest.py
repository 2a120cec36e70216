"""Event fixtures: settings with short timers, event readers, a local webhook receiver and a
real gunicorn server (gunicorn_config.py, as tests/deploy starts it).

Every test here runs on SQLite and PostgreSQL (the `database_url` fixture).
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import webtest

from paddles.app import make_app
from paddles.settings import load_settings
from tests.deploy.conftest import free_port, gunicorn_process

FAST = dict(events_keepalive=0.3, events_poll_interval=0.05, events_stream_max_seconds=2.0,
            webhook_timeout=0.5, webhook_backoff_base=0.05, webhook_backoff_max=0.2,
            dispatch_poll_interval=0.05)


@pytest.fixture
def settings(database_url, tmp_path):
    return load_settings(environ={}, database_url=database_url, address="http://paddles.test",
                         default_latest_runs_count=25, data_dir=str(tmp_path / "data"), **FAST)


@pytest.fixture
def app(settings, session_factory):
    return webtest.TestApp(make_app(settings, session_factory=session_factory))


def new_events(app, since: int = 0, **params) -> list[dict]:
    """Every event after `since`, through the replay route's cursor."""
    out: list[dict] = []
    while True:
        page = app.get("/events/", {"since": since, "limit": 1000, **params}).json
        out += page["events"]
        if page["next"] == since or not page["events"]:
            return out
        since = page["next"]


def latest(app) -> int:
    events = new_events(app)
    return events[-1]["id"] if events else 0


def types_after(app, since: int) -> list[str]:
    return [e["type"] for e in new_events(app, since)]


# ---- a webhook receiver ---------------------------------------------------------------------

class Receiver:
    """http.server in a thread. `plan(attempt, request) -> status or "timeout"` decides each
    answer; every request is kept, with whether its signatures verify."""

    def __init__(self, secret: str):
        self.secret = secret.encode()
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.plan = lambda attempt, request: 200
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = {"headers": dict(self.headers), "body": body,
                           "json": json.loads(body), "time": time.monotonic(),
                           "signed": receiver.verify(self.headers, body)}
                with receiver.lock:
                    receiver.requests.append(request)
                    attempt = sum(1 for r in receiver.requests
                                  if r["headers"]["X-Paddles-Delivery"]
                                  == request["headers"]["X-Paddles-Delivery"])
                if receiver.delay:
                    time.sleep(receiver.delay)
                answer = receiver.plan(attempt, request)
                if answer == "timeout":
                    time.sleep(1.5)  # longer than webhook_timeout
                    answer = 200
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def verify(self, headers, body: bytes) -> bool:
        def mac(data):
            return "sha256=" + hmac.new(self.secret, data, hashlib.sha256).hexdigest()
        stamp = headers["X-Paddles-Timestamp"]
        return (hmac.compare_digest(headers["X-Paddles-Signature"], mac(body))
                and hmac.compare_digest(headers["X-Paddles-Timestamp-Signature"],
                                        mac(stamp.encode() + b"." + body))
                and abs(time.time() - int(stamp)) < 60)

    def event_ids(self) -> list[int]:
        with self.lock:
            return [r["json"]["event"]["id"] for r in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


SECRET = "s3cret-s3cret-s3cret"


@pytest.fixture
def receiver():
    rec = Receiver(SECRET)
    yield rec
    rec.close()


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# ---- real processes -------------------------------------------------------------------------

def server_env(database_url: str, tmp_path, **extra) -> dict:
    env = dict(os.environ, PADDLES_DATABASE_URL=database_url,
               PADDLES_DATA_DIR=str(tmp_path / "data"), PADDLES_LOG_LEVEL="warning",
               PADDLES_ACCESS_LOG="/dev/null")
    env.pop("PADDLES_CONFIG", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def gunicorn(database_url, db_engine, tmp_path):
    """Start gunicorn with the repo's gunicorn_config.py: gunicorn(**env) -> (base, proc)."""
    with contextlib.ExitStack() as stack:
        def start(**extra):
            port = free_port()
            env = server_env(database_url, tmp_path, **{
                "PADDLES_BIND": f"127.0.0.1:{port}", "PADDLES_WORKERS": 1,
                "PADDLES_EVENTS_KEEPALIVE": 0.3, "PADDLES_EVENTS_POLL_INTERVAL": 0.05, **extra})
            return stack.enter_context(gunicorn_process(env))

        yield start
