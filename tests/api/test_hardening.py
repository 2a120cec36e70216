"""Regression tests for the inputs fuzzing found answering 500, and for names that could
walk a path. Each runs on SQLite and PostgreSQL (the `app` fixture)."""
from __future__ import annotations

import pytest

RUN = "teuthology-2024-01-15_20:00:03-rados-main-distro-default-smithi"


def _job(app, job_id="1", **fields):
    return app.post_json(f"/runs/{RUN}/jobs/", {"job_id": job_id, **fields})


# ---- URLs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "/runs/a%00b/", "/nodes/a%00b/", "/runs/branch/%00/", "/jobs/?description=%00",
    "/nodes/?machine_type=%00", "/exports/runs.csv?branch=%00", "/events/?run=a%00",
    f"/runs/{RUN}/jobs/1%00/",
])
def test_nul_in_url_is_400(app, url):
    """PostgreSQL refused the NUL inside the WHERE clause: a 500."""
    resp = app.get(url, status=400)
    assert resp.json == {"message": "request URL must not contain NUL characters"}


def _raw_get(app, path: str, query: str = ""):
    """A GET with PATH_INFO and QUERY_STRING as a server would pass them (PEP 3333: the
    path's bytes as latin-1), which webtest cannot send."""
    from io import BytesIO

    import orjson

    env = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query,
           "SERVER_NAME": "paddles.test", "SERVER_PORT": "80", "wsgi.url_scheme": "http",
           "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.input": BytesIO(b""), "CONTENT_LENGTH": "0"}
    seen = {}
    body = b"".join(app.app(env, lambda status, headers, exc=None: seen.update(s=status)))
    return int(seen["s"].split()[0]), orjson.loads(body)


@pytest.mark.parametrize("path,query", [("/runs/\xff/", ""), ("/runs/\xed\xb3\xbf/", ""),
                                        ("/runs/", "count=%ff"),
                                        ("/jobs/", "description=%ED%B3%BF")])
def test_url_not_utf8_is_400(app, path, query):
    assert _raw_get(app, path, query) == (400, {"message": "request URL is not valid UTF-8"})


# ---- dates at the edges of the calendar ----------------------------------------------------

@pytest.mark.parametrize("url", [
    "/runs/date/0000-00-00/", "/runs/date/10000-01-01/", "/runs/date/from/0000-01-01/to/2024-01-01/",
    "/runs/branch/x/?since=0000-00-00",
])
def test_impossible_day_is_400(app, url):
    assert app.get(url, status=400).json == {"message": "date format must match %Y-%m-%d"}


@pytest.mark.parametrize("url", [
    "/runs/date/9999-12-31/", "/runs/date/from/0001-01-01/to/9999-12-31/",
    "/exports/runs.csv?until=9999-12-31", "/jobs/?posted_before=9999-12-31",
])
def test_last_day_of_the_calendar_is_served(app, url):
    """The day after 9999-12-31 overflowed: a 500."""
    _job(app)
    app.get(url, status=200)


@pytest.mark.parametrize("method,url,body,key", [
    ("GET", "/exports/runs.csv?since=0001-01-01T00:00:00%2B01:00", None, "since"),
    ("POST", "/queue/", {"queue": "q", "paused_until": "0001-01-01T00:00:00+05:00"},
     "paused_until"),
    ("POST", "/queue/", {"queue": "q", "paused_until": "9999-12-31T23:59:59-05:00"},
     "paused_until"),
    ("POST", "/nodes/", {"name": "n1", "locked_since": "9999-12-31T23:59:59-05:00"},
     "locked_since"),
    ("PUT", f"/runs/{RUN}/jobs/1/", {"updated": "9999-12-31T23:59:59-05:00"}, "updated"),
])
def test_time_utc_cannot_hold_is_400(app, method, url, body, key):
    _job(app)
    if body is None:
        resp = app.get(url, status=400)
    else:
        resp = app.request(url, method=method, json=body, expect_errors=True)
    assert resp.status_int == 400
    assert resp.json == {"message": f"{key} is out of range"}


def test_run_name_timestamp_utc_cannot_hold_gets_defaults():
    from paddles.run_names import parse_run_name

    parsed = parse_run_name("u-0001-01-01_00:00:00-rados-main-distro-default-smithi",
                            "Asia/Tokyo")
    assert parsed.scheduled is None and parsed.user == ""


# ---- JSON bodies ----------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    b'{"job_id": "2", "description": "\\ud800"}',       # lone surrogate in a string
    b'{"job_id": "2", "overrides": {"\\udc00": 1}}',    # ... in a key of a JSON field
    b'{"job_id": "2", "overrides": 1e400}',             # a double's overflow
    b'{"job_id": "2", "overrides": -1E+999}',
    b'{"job_id": "2", "description": "\xff"}',          # not UTF-8
])
def test_job_body_that_cannot_be_stored_is_400(app, raw):
    resp = app.post(f"/runs/{RUN}/jobs/", raw, status=400)
    assert resp.json == {"message": "could not decode JSON body"}
    app.get(f"/runs/{RUN}/", status=404)  # nothing half-written


@pytest.mark.parametrize("raw", [b'{"message": "\\ud800"}', b'{"message": 1e400}'])
def test_event_body_that_cannot_be_rendered_is_400(app, raw):
    app.post("/events/", raw, status=400)


def test_event_integers_beyond_64_bits_are_400(app):
    """A message of 2**80 was stored, then rendering the event was a 500 (events are served
    by re-encoding them; job JSON fields keep the client's text and any integer)."""
    resp = app.post("/events/", b'{"message": {"n": 1208925819614629174706176}}', status=400)
    assert resp.json == {"message": "message has an integer beyond 64 bits"}
    app.post("/events/", b'{"message": "m", "data": {"n": -9223372036854775809}}', status=400)
    app.post("/events/", b'{"message": 18446744073709551615}', status=201)
    _job(app, "2", overrides={"big": 10**40})
    assert app.get(f"/runs/{RUN}/jobs/2/").json["overrides"] == {"big": 10**40}


@pytest.mark.parametrize("value", [5, "text", True, [1, 2]])
def test_bare_json_values_round_trip(app, value):
    _job(app, "9", overrides=value)
    assert app.get(f"/runs/{RUN}/jobs/9/").json["overrides"] == value


@pytest.mark.parametrize("content_type", ["multipart/form-data",
                                          "multipart/form-data; boundary=xyz",
                                          "application/x-www-form-urlencoded"])
def test_json_body_under_a_form_content_type(app, content_type):
    """A multipart type without a boundary made webob's form parsing a 500; the body is JSON
    whatever the Content-Type (spec 1)."""
    resp = app.request("/runs/", method="POST", body=b'{"name": "r1"}',
                       headers={"Content-Type": content_type})
    assert resp.status_int == 200
    app.get("/runs/r1/", status=200)


# ---- names that could walk a path ------------------------------------------------------------

@pytest.mark.parametrize("name", ["..", ".", "../../etc/passwd", "/abs", "a/b", "a\\b",
                                  "a\tb", "a\x00b"])
def test_run_name_that_is_no_path_segment_is_400(app, name):
    app.post_json("/runs/", {"name": name}, status=400)
    assert app.get("/runs/").json == []


@pytest.mark.parametrize("segment", ["..", "."])
def test_job_post_under_dot_run_is_400(app, segment):
    # sent raw: a client would normalise the dots away
    resp = app.post(f"/runs/x/jobs/", b'{"job_id": "1"}',
                    extra_environ={"PATH_INFO": f"/runs/{segment}/jobs/"}, expect_errors=True)
    assert resp.status_int == 400, resp.body
    assert app.get("/runs/").json == []


@pytest.mark.parametrize("job_id", ["..", ".", "a/b", "a\\b", "a\nb"])
def test_job_id_that_is_no_path_segment_is_400(app, job_id):
    resp = app.post_json(f"/runs/{RUN}/jobs/", {"job_id": job_id}, status=400)
    assert "job_id" in resp.json["message"]


def test_node_name_with_slash_is_400(app):
    app.post_json("/nodes/", {"name": "a/b"}, status=400)


@pytest.mark.parametrize("path", ["../x", "a/../../b", "a%2F..%2F..%2Fb",
                                  "a%00b", "..%2Fx", "C:%5Cx", "a%5C..%5Cb"])
def test_artifact_path_traversal_is_400(app, path):
    _job(app)
    url = f"/runs/{RUN}/jobs/1/artifacts/{path}"
    resp = app.put(url, b"data", expect_errors=True)
    assert resp.status_int == 400, (path, resp.body)
    assert app.get(f"/runs/{RUN}/jobs/1/artifacts/").json == []


@pytest.mark.parametrize("filename", ["/etc/passwd", "../x", "a/../../b"])
def test_multipart_file_name_traversal_is_400(app, filename):
    _job(app)
    resp = app.post(f"/runs/{RUN}/jobs/1/artifacts/", upload_files=[("file", filename, b"x")],
                    expect_errors=True)
    assert resp.status_int == 400, (filename, resp.body)
    assert app.get(f"/runs/{RUN}/jobs/1/artifacts/").json == []


def test_paired_surrogate_escape_is_one_character(app):
    app.post(f"/runs/{RUN}/jobs/", b'{"job_id": "1", "description": "ok \\ud83d\\ude00"}')
    assert app.get(f"/runs/{RUN}/jobs/1/").json["description"] == "ok \U0001F600"


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE", "PATCH"])
@pytest.mark.parametrize("url", ["/runs/branch/main/", "/runs/branch/", "/runs/queued/",
                                 "/runs/date/from/2024-01-01/to/2024-01-02/",
                                 "/runs/suite/rados/status/running/"])
def test_writes_on_filter_routes_are_405(app, method, url):
    resp = app.request(url, method=method, body=b"{}", expect_errors=True)
    assert resp.status_int == 405, resp.body
    assert resp.json == {"message": "method not allowed"}
    assert resp.headers["Allow"] == "GET, HEAD"


def test_unlock_many_with_nul_in_a_name_is_400(app):
    """Found by the fuzz: the NUL reached PostgreSQL's IN (...) list."""
    resp = app.post_json("/nodes/unlock_many/", {"names": ["a\x00b"], "locked_by": "me"},
                         status=400)
    assert resp.json == {"message": "names must not contain NUL characters"}


@pytest.mark.parametrize("content_type", ["\x01bad", "text/plain\x7f", "text/pl\xe9in", "nonsense"])
def test_upload_content_type_that_is_no_media_type_is_400(app, content_type):
    """It was stored, then sent back as the download's Content-Type header."""
    _job(app)
    resp = app.put(f"/runs/{RUN}/jobs/1/artifacts/a.log", b"x", expect_errors=True,
                   extra_environ={"CONTENT_TYPE": content_type})
    assert resp.status_int == 400
    assert resp.json == {"message": "Content-Type must be a media type such as text/plain"}
    assert app.get(f"/runs/{RUN}/jobs/1/artifacts/").json == []


def test_upload_content_type_with_parameters_is_kept(app):
    _job(app)
    app.put(f"/runs/{RUN}/jobs/1/artifacts/a.log", b"x",
            headers={"Content-Type": "text/plain; charset=latin-1"}, status=201)
    resp = app.get(f"/runs/{RUN}/jobs/1/artifacts/a.log")
    assert resp.headers["Content-Type"] == "text/plain; charset=latin-1"


@pytest.mark.parametrize("depth, status", [(63, 200), (64, 400)])
def test_a_body_nested_deeper_than_64_levels_is_400(app, depth, status):
    """The body itself is the first level: overrides nested `depth` more."""
    overrides: dict = {}
    for _ in range(depth - 1):
        overrides = {"a": overrides}
    resp = app.post_json(f"/runs/{RUN}/jobs/", {"job_id": "1", "overrides": overrides},
                         status=status)
    if status == 400:
        assert resp.json == {"message": "JSON body is nested deeper than 64 levels"}
        app.get(f"/runs/{RUN}/", status=404)
    else:
        assert app.get(f"/runs/{RUN}/jobs/1/").json["overrides"] == overrides
