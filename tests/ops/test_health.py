"""/health, /ready and /metrics, the request log and X-Request-ID, on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import os
import logging
import re

import webtest

from paddles.app import make_app
from paddles.dispatch import Dispatcher
from paddles.logs import JsonFormatter
from paddles.metrics import route_template
from paddles.settings import load_settings
from tests.deploy.conftest import free_port
from tests.factories import run_name


def test_health_is_ok_without_the_database(app):
    assert app.get("/health/").json == {"status": "ok"}
    assert app.get("/health").json == {"status": "ok"}


def test_ready_when_the_schema_is_current(app):
    body = app.get("/ready/").json
    assert body["database"] == "ok" and body["migrations"] == "current"
    assert re.fullmatch(r"\w+", body["revision"])


def test_ready_is_503_on_an_empty_database(tmp_path):
    url = "sqlite:///" + str(tmp_path / "empty.db")
    app = webtest.TestApp(make_app(load_settings(environ={}, database_url=url,
                                                 data_dir=str(tmp_path))))
    resp = app.get("/ready/", status=503)
    assert "schema is at revision none" in resp.json["message"]
    assert "paddles migrate" in resp.json["message"]
    assert app.get("/health/").status_int == 200  # alive, only not ready


def test_ready_is_503_when_the_database_is_unreachable(tmp_path):
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nothing"
    app = webtest.TestApp(make_app(load_settings(environ={}, database_url=url,
                                                 data_dir=str(tmp_path))))
    resp = app.get("/ready/", status=503)
    assert resp.json["message"].startswith("database unreachable: ")
    assert resp.headers["Retry-After"]
    scrape = app.get("/metrics/").text  # a scrape still answers, saying the DB is down
    assert "paddles_database_up 0.0" in scrape


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def test_metrics_count_requests_by_route_template(app):
    run = run_name()
    before = _samples(app.get("/metrics/").text)
    app.post_json(f"/runs/{run}/jobs/", {"job_id": "1", "status": "queued"})
    for _ in range(3):
        app.get(f"/runs/{run}/jobs/1/")
    app.get(f"/runs/{run}/jobs/2/", status=404)
    app.get("/runs/branch/main/suite/rados/")
    resp = app.get("/metrics/")
    assert resp.headers["Content-Type"].startswith("text/plain")
    after = _samples(resp.text)

    def delta(key):
        return after.get(key, 0) - before.get(key, 0)

    job = 'route="/runs/{name}/jobs/{job_id}/"'
    assert delta(f'paddles_http_requests_total{{method="GET",{job},status="200"}}') == 3
    assert delta(f'paddles_http_requests_total{{method="GET",{job},status="404"}}') == 1
    assert delta('paddles_http_requests_total{method="POST",route="/runs/{name}/jobs/",'
                 'status="200"}') == 1
    assert delta('paddles_http_requests_total{method="GET",'
                 'route="/runs/{filter}/{value}/.../",status="200"}') == 1
    assert delta(f'paddles_http_request_duration_seconds_count{{method="GET",{job}}}') == 4
    assert run not in resp.text  # never a raw path as a label
    assert after["paddles_database_up"] == 1
    assert after["paddles_events_latest_id"] >= 1


def test_metrics_show_event_backlog_and_webhook_failures(app, settings, session_factory):
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    app.post_json("/subscriptions/", {"url": dead, "types": ["job.*"]}, status=201)
    run = run_name()
    app.post_json(f"/runs/{run}/jobs/", {"job_id": "1", "status": "queued"})
    app.put_json(f"/runs/{run}/jobs/1/", {"status": "running"})
    first = _samples(app.get("/metrics/").text)
    assert first["paddles_events_backlog"] >= 2
    assert first['paddles_webhook_subscriptions{state="enabled"}'] == 1
    fast = load_settings(environ={}, database_url=settings.database_url, webhook_timeout=0.5,
                         webhook_backoff_base=30)
    dispatcher = Dispatcher(fast, concurrency=2)
    try:
        dispatcher.step()
    finally:
        dispatcher.close()
    second = _samples(app.get("/metrics/").text)
    assert second["paddles_events_backlog"] == 0  # fanned out
    assert second['paddles_webhook_deliveries{status="pending"}'] >= 2  # to be retried
    assert second["paddles_webhook_consecutive_failures"] >= 1


def test_route_templates_are_bounded():
    assert route_template("/runs/x/jobs/1/artifacts/logs/a b.log") == \
        "/runs/{name}/jobs/{job_id}/artifacts/{path}"
    assert route_template("/runs/branch") == "/runs/branch/"
    assert route_template("/runs/branch/main") == "/runs/branch/{value}/"
    assert route_template("/nodes/lock_many") == "/nodes/lock_many/"
    assert route_template("/ready") == "/ready/"
    assert route_template("/no/such/thing") == "unmatched"


def test_request_id_is_honoured_and_returned(app):
    resp = app.get("/runs/", headers={"X-Request-ID": "teuthology-42"})
    assert resp.headers["X-Request-ID"] == "teuthology-42"
    generated = app.get("/runs/").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    # an id that could forge log lines is replaced
    bad = app.get("/runs/", headers={"X-Request-ID": "a b\tc"}).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", bad)
    assert app.options("/runs/", headers={"X-Request-ID": "opt-1"}).headers["X-Request-ID"] \
        == "opt-1"


def test_one_access_line_per_request(app, caplog):
    run = run_name()
    with caplog.at_level(logging.INFO, logger="paddles.access"):
        app.post_json(f"/runs/{run}/jobs/", {"job_id": "3"}, headers={"X-Request-ID": "rid-7"})
    lines = [r for r in caplog.records if r.name == "paddles.access"]
    assert len(lines) == 1
    fields = lines[0].fields
    assert fields["method"] == "POST" and fields["status"] == 200
    assert fields["route"] == "/runs/{name}/jobs/" and fields["path"] == f"/runs/{run}/jobs"
    assert fields["request_id"] == "rid-7" and fields["duration_ms"] > 0
    text = lines[0].getMessage()
    assert "POST" in text and "rid-7" in text and "route=/runs/{name}/jobs/" in text
    entry = json.loads(JsonFormatter().format(lines[0]))
    assert entry["logger"] == "paddles.access" and entry["request_id"] == "rid-7"
    assert entry["status"] == 200 and entry["level"] == "INFO"


def test_a_scrape_merges_worker_files_even_while_a_worker_creates_its_own(
        app, tmp_path, monkeypatch):
    """Under gunicorn every worker keeps its counts in PROMETHEUS_MULTIPROC_DIR. A worker
    that has just started creates its file empty and sizes it a moment later; a scrape in
    between answered 500 (struct.error) once, after a SIGHUP. It now leaves that file out."""
    import subprocess
    import sys

    count = ("from prometheus_client import Counter\n"
             "Counter('paddles_probe', 'a worker count', ['w']).labels('a').inc(3)\n")
    subprocess.run([sys.executable, "-c", count], check=True,
                   env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    (tmp_path / "counter_424242.db").touch()  # a worker between creating and sizing it
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    scrape = _samples(app.get("/metrics/").text)
    assert scrape['paddles_probe_total{w="a"}'] == 3.0
    assert "paddles_database_up" in scrape
