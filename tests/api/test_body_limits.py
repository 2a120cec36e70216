"""Request body limits per route (paddles/limits.py): 413 JSON before anything is read or
written, configurable with body_limits / PADDLES_BODY_LIMITS."""
from __future__ import annotations

import pytest
import webtest

from paddles import limits
from paddles.app import make_app
from paddles.settings import load_settings

RUN = "teuthology-2024-01-15_20:00:03-rados-main-distro-default-smithi"


def _app(database_url, session_factory, tmp_path, **overrides):
    settings = load_settings(environ={}, database_url=database_url, data_dir=str(tmp_path),
                             **overrides)
    return webtest.TestApp(make_app(settings, session_factory=session_factory))


def _padded(size: int, **fields) -> bytes:
    """A job body of exactly `size` bytes."""
    import json
    base = json.dumps({**fields, "description": ""}).encode()
    return base[:-2] + b"x" * (size - len(base)) + b'"}'


def test_defaults_are_small_for_json_and_large_for_uploads():
    table = limits.BodyLimits(load_settings(environ={}, database_url="sqlite://")).table
    assert table["/runs/"] == 16 * 1024 ** 2
    assert table["/runs/{name}/jobs/"] == 16 * 1024 ** 2
    assert table["/runs/{name}/jobs/{job_id}/"] == 16 * 1024 ** 2
    assert table["/nodes/"] == 64 * 1024
    assert table["/runs/{name}/jobs/{job_id}/artifacts/{path}"] == 2 * 1024 ** 3


def test_job_body_over_its_limit_is_413_and_nothing_is_written(app):
    limit = 16 * 1024 ** 2
    app.post(f"/runs/{RUN}/jobs/", _padded(limit, job_id="1"), status=200)
    resp = app.post(f"/runs/{RUN}/jobs/", _padded(limit + 1, job_id="2"), status=413)
    assert resp.json == {"message": f"request body is larger than {limit} bytes, the limit "
                                    "for /runs/{name}/jobs/"}
    assert resp.headers["Connection"] == "close"
    assert [j["job_id"] for j in app.get(f"/runs/{RUN}/jobs/").json] == ["1"]


def test_run_post_over_its_limit_is_413(app):
    body = b'{"name": "r1", "pad": "' + b"x" * (16 * 1024 ** 2) + b'"}'
    assert app.post("/runs/", body, status=413).json["message"].endswith("/runs/")
    assert app.get("/runs/").json == []


def test_node_post_has_a_smaller_limit_than_jobs(app):
    body = b'{"name": "n1", "pad": "' + b"x" * (64 * 1024) + b'"}'
    assert app.post("/nodes/", body, status=413).json["message"].endswith("/nodes/")


def test_limits_are_configurable(database_url, session_factory, tmp_path):
    app = _app(database_url, session_factory, tmp_path,
               body_limits="/runs/{name}/jobs/=100,/runs/{name}/jobs/{job_id}/artifacts/{path}=1K")
    app.post(f"/runs/{RUN}/jobs/", _padded(100, job_id="1"), status=200)
    app.post(f"/runs/{RUN}/jobs/", _padded(101, job_id="2"), status=413)
    app.put(f"/runs/{RUN}/jobs/1/artifacts/a.log", b"x" * 1024, status=201)
    resp = app.put(f"/runs/{RUN}/jobs/1/artifacts/b.log", b"x" * 1025, status=413)
    assert "1024" in resp.json["message"]
    names = [a["name"] for a in app.get(f"/runs/{RUN}/jobs/1/artifacts/").json]
    assert names == ["a.log"]


def test_limit_applies_to_get_bodies_too(app):
    """/queue/pop_queue/ reads a JSON body on GET: it is bounded like the POST."""
    resp = app.request("/queue/pop_queue/", method="GET",
                       body=b'{"queue": "' + b"q" * (64 * 1024) + b'"}', expect_errors=True)
    assert resp.status_int == 413


def test_environment_variable_and_config_file(tmp_path):
    settings = load_settings(environ={"PADDLES_BODY_LIMITS": "/events/=2M"},
                             database_url="sqlite://")
    assert limits.BodyLimits(settings).table["/events/"] == 2 * 1024 ** 2
    cfg = tmp_path / "config.py"
    cfg.write_text('paddles = {"body_limits": "/nodes/=10K"}\n')
    settings = load_settings(cfg, environ={}, database_url="sqlite://")
    assert limits.BodyLimits(settings).table["/nodes/"] == 10 * 1024


@pytest.mark.parametrize("text,message", [
    ("/nope/=1K", "'/nope/' is not a route"), ("/runs/=lots", "is not a size"),
    ("/runs/", "is not ROUTE=SIZE")])
def test_bad_setting_is_a_clear_error(text, message):
    with pytest.raises(ValueError, match=message):
        limits.parse_body_limits(text)


@pytest.mark.parametrize("text,size", [("10", 10), ("10K", 10240), ("2m", 2 * 1024 ** 2),
                                       ("1G", 1024 ** 3), ("3KiB", 3072)])
def test_sizes(text, size):
    assert limits.parse_size(text) == size
