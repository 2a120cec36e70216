"""JSON request bodies sent with `Transfer-Encoding: chunked` (no Content-Length), as curl
and HTTP clients send a streamed body: read whole by WireMiddleware, within the route's
body limit (413 beyond it, without reading more than the limit and one byte), on every JSON
route. The same through a real gunicorn: tests/deploy/test_request_bodies.py."""
from __future__ import annotations

import io
import json

import pytest
import webtest

from paddles.app import make_app
from paddles.settings import load_settings
from tests.factories import run_name

RUN = run_name()


class CountingInput(io.RawIOBase):
    """A decoded chunked body as gunicorn hands it over (ends with b""), counting what the
    app reads; `endless` never ends."""

    def __init__(self, data: bytes = b"", endless: bool = False):
        self._data = io.BytesIO(data)
        self._endless = endless
        self.consumed = 0

    def read(self, size=-1):
        if self._endless:
            chunk = b" " * (size if size is not None and size >= 0 else 1 << 16)
        else:
            chunk = self._data.read(size)
        self.consumed += len(chunk)
        return chunk


def chunked(app, method: str, path: str, body, **kw):
    """A request whose body has no Content-Length, only `Transfer-Encoding: chunked`."""
    req = webtest.TestRequest.blank(path, method=method)
    req.environ["wsgi.input"] = io.BytesIO(body) if isinstance(body, bytes) else body
    req.environ.pop("CONTENT_LENGTH", None)
    req.environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    req.environ["wsgi.input_terminated"] = True
    return app.do_request(req, status=kw.pop("status", None), expect_errors=True)


def dumps(value) -> bytes:
    return json.dumps(value).encode()


def test_chunked_job_post_and_put_are_read(app):
    resp = chunked(app, "POST", f"/runs/{RUN}/jobs/",
                   dumps({"job_id": "1", "status": "queued", "description": "rados/basic"}))
    assert resp.status_int == 200, resp.body
    assert resp.json == {"job_id": "1"}
    resp = chunked(app, "PUT", f"/runs/{RUN}/jobs/1", dumps({"status": "pass",
                                                             "success": True}))
    assert resp.status_int == 200, resp.body
    job = app.get(f"/runs/{RUN}/jobs/1/").json
    assert (job["status"], job["success"], job["description"]) == ("pass", True,
                                                                   "rados/basic")


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/runs/", {"name": RUN}),
    ("POST", "/nodes/", {"name": "smithi001.front.sepia.ceph.com", "machine_type": "smithi",
                         "up": True}),
    ("POST", "/events/", {"message": "osd.3 thrashed"}),
])
def test_every_json_route_takes_a_chunked_body(app, method, path, body):
    resp = chunked(app, method, path, dumps(body))
    assert resp.status_int in (200, 201), resp.body


def test_chunked_get_body_is_read_within_the_limit(app):
    """/queue/pop_queue/ reads a JSON body on GET."""
    app.post("/queue/", dumps({"queue": "smithi"}), status=200)
    resp = chunked(app, "GET", "/queue/pop_queue/", dumps({"queue": "smithi"}))
    assert resp.status_int in (200, 204), resp.body
    big = CountingInput(endless=True)
    resp = chunked(app, "GET", "/queue/pop_queue/", big)
    assert resp.status_int == 413
    assert big.consumed == 64 * 1024 + 1


def test_chunked_body_over_the_limit_is_413_after_limit_plus_one_bytes(app):
    body = CountingInput(endless=True)
    resp = chunked(app, "POST", f"/runs/{RUN}/jobs/", body)
    limit = 16 * 1024 ** 2
    assert resp.status_int == 413
    assert resp.json == {"message": f"request body is larger than {limit} bytes, the limit "
                                    "for /runs/{name}/jobs/"}
    assert resp.headers["Connection"] == "close"
    assert body.consumed == limit + 1
    assert app.get("/runs/").json == []


def test_chunked_body_at_a_configured_limit(database_url, session_factory, tmp_path):
    settings = load_settings(environ={}, database_url=database_url, data_dir=str(tmp_path),
                             body_limits="/runs/{name}/jobs/=100")
    app = webtest.TestApp(make_app(settings, session_factory=session_factory))
    body = dumps({"job_id": "1", "description": ""})
    exact = body[:-2] + b"x" * (100 - len(body)) + b'"}'
    assert chunked(app, "POST", f"/runs/{RUN}/jobs/", exact).status_int == 200
    over = body[:-2] + b"x" * (101 - len(body)) + b'"}'
    over = over.replace(b'"1"', b'"2"')
    assert chunked(app, "POST", f"/runs/{RUN}/jobs/", over).status_int == 413
    assert [j["job_id"] for j in app.get(f"/runs/{RUN}/jobs/").json] == ["1"]


def test_empty_chunked_body_is_the_usual_400(app):
    resp = chunked(app, "PUT", f"/runs/{RUN}/jobs/1", b"")
    assert resp.status_int == 400
    assert resp.json == {"message": "could not decode JSON body"}


class BrokenInput(io.RawIOBase):
    """A chunked body the client abandons: gunicorn raises NoMoreData (an IOError)."""

    def read(self, size=-1):
        raise OSError("No more data after: b'{\"status\"'")


def test_chunked_body_cut_short_is_400_and_nothing_is_written(app):
    app.post(f"/runs/{RUN}/jobs/", dumps({"job_id": "1", "status": "queued"}), status=200)
    resp = chunked(app, "PUT", f"/runs/{RUN}/jobs/1", BrokenInput())
    assert resp.status_int == 400
    assert resp.json["message"].startswith("request body ended early")
    assert app.get(f"/runs/{RUN}/jobs/1/").json["status"] == "queued"
