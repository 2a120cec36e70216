"""Uploads and downloads: round trips, dedupe, gzip, ranges, conditional GETs, limits,
interrupted uploads. Each test runs on SQLite and PostgreSQL, with local and S3 storage."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os

import pytest

from tests.factories import job_body

from .conftest import (FailingInput, blob_bytes, row_counts, spool_files, stored_blobs,
                       wsgi_call)

TEXT = b"2024-01-15T20:00:03.123 INFO:teuthology.run:Running task ceph...\n" * 200


def _put(app, url, body, status=201, **headers):
    return app.put(url, body, headers=headers, status=status)


# ---- round trips ----------------------------------------------------------------------------

def test_text_round_trip_is_byte_exact(app, job_url, store):
    resp = _put(app, f"{job_url}/artifacts/teuthology.log", TEXT,
                **{"Content-Type": "text/plain; charset=utf-8"})
    sha = hashlib.sha256(TEXT).hexdigest()
    assert resp.json["sha256"] == sha and resp.json["size"] == len(TEXT)
    assert resp.json["kind"] == "log" and resp.json["parse_status"] is None
    assert resp.headers["Location"] == resp.json["href"] \
        == f"http://paddles.test{job_url}/artifacts/teuthology.log"
    got = app.get(f"{job_url}/artifacts/teuthology.log")
    assert got.body == TEXT
    assert got.headers["ETag"] == f'"{sha}"'
    assert got.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert got.headers["Accept-Ranges"] == "bytes"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert stored_blobs(store) == [sha]
    assert blob_bytes(store, sha) == TEXT


def test_binary_round_trip_over_several_chunks(app, job_url, store):
    # not 0xB3 first: extras.md makes any upload that starts so `subunit` (1 in 256 of these)
    data = b"\x00" + os.urandom(3 * 1024 * 1024 + 16)
    resp = _put(app, f"{job_url}/artifacts/cores/ceph-osd.core", data)
    assert resp.json["kind"] == "binary"
    assert resp.json["content_type"] == "application/octet-stream"
    assert app.get(f"{job_url}/artifacts/cores/ceph-osd.core").body == data


def test_head_has_the_headers_and_no_body(app, job_url):
    _put(app, f"{job_url}/artifacts/a.log", TEXT)
    resp = app.head(f"{job_url}/artifacts/a.log")
    assert resp.status_int == 200 and resp.body == b""
    assert resp.headers["Content-Length"] == str(len(TEXT))
    assert resp.headers["ETag"] == f'"{hashlib.sha256(TEXT).hexdigest()}"'


def test_empty_artifact_is_200_not_204(app, job_url):
    assert _put(app, f"{job_url}/artifacts/empty.log", b"").json["size"] == 0
    resp = app.get(f"{job_url}/artifacts/empty.log")
    assert resp.status_int == 200 and resp.body == b""


def test_path_with_slashes_and_odd_characters(app, job_url):
    name = "remote/smithi001/log/ceph-osd.0 (copy) [1]+%.log.gz"
    quoted = "remote/smithi001/log/ceph-osd.0%20(copy)%20%5B1%5D%2B%25.log.gz"
    _put(app, f"{job_url}/artifacts/{quoted}", b"x")
    assert [a["name"] for a in app.get(f"{job_url}/artifacts/").json] == [name]
    assert app.get(f"{job_url}/artifacts/{quoted}").body == b"x"
    # names that collide with controller attributes are just names
    for odd in ("get_all", "_lookup", "post", "delete", "_route"):
        _put(app, f"{job_url}/artifacts/{odd}", odd.encode())
        assert app.get(f"{job_url}/artifacts/{odd}").body == odd.encode()


def test_form_content_type_is_not_parsed_as_a_form(app, job_url):
    """curl --data-binary sends application/x-www-form-urlencoded: the body stays the body."""
    body = b"a=1&b=2\n" * 1000
    resp = _put(app, f"{job_url}/artifacts/query.log", body,
                **{"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.json["content_type"] == "text/plain; charset=utf-8"  # the form type means nothing
    assert app.get(f"{job_url}/artifacts/query.log").body == body


# ---- replace, no-op, dedupe -------------------------------------------------------------------

def test_same_bytes_again_is_a_noop_200_and_new_bytes_replace(app, job_url, session, store):
    first = _put(app, f"{job_url}/artifacts/a.log", TEXT).json
    again = _put(app, f"{job_url}/artifacts/a.log", TEXT, status=200).json
    assert again == first  # nothing changed, not even `created`
    replaced = _put(app, f"{job_url}/artifacts/a.log", b"other\n", status=200).json
    assert replaced["sha256"] == hashlib.sha256(b"other\n").hexdigest()
    assert app.get(f"{job_url}/artifacts/a.log").body == b"other\n"
    assert row_counts(session)["artifacts"] == 1
    # the replaced blob stays until `paddles purge` collects it
    assert len(stored_blobs(store)) == 2


def test_dedupe_two_jobs_one_blob(app, job, store, session):
    run, _ = job
    app.post(f"/runs/{run}/jobs/", json.dumps(job_body("2", status="running")))
    for job_id in ("1", "2"):
        _put(app, f"/runs/{run}/jobs/{job_id}/artifacts/console.log", TEXT)
    _put(app, f"/runs/{run}/artifacts/copy-of-console.log", TEXT)  # run level too
    assert stored_blobs(store) == [hashlib.sha256(TEXT).hexdigest()]
    counts = row_counts(session)
    assert counts["artifacts"] == 3 and counts["blobs"] == 1


def test_run_and_job_artifacts_are_separate(app, job):
    run, job_id = job
    _put(app, f"/runs/{run}/artifacts/summary.yaml", b"run: level\n")
    _put(app, f"/runs/{run}/jobs/{job_id}/artifacts/summary.yaml", b"job: level\n")
    assert app.get(f"/runs/{run}/artifacts/summary.yaml").body == b"run: level\n"
    assert app.get(f"/runs/{run}/jobs/{job_id}/artifacts/summary.yaml").body == b"job: level\n"
    run_list = app.get(f"/runs/{run}/artifacts/").json
    assert [(a["name"], a["href"]) for a in run_list] == [
        ("summary.yaml", f"http://paddles.test/runs/{run}/artifacts/summary.yaml")]


def test_delete_is_204_then_404(app, job_url):
    _put(app, f"{job_url}/artifacts/a.log", TEXT)
    resp = app.delete(f"{job_url}/artifacts/a.log", status=204)
    assert resp.body == b""
    assert app.get(f"{job_url}/artifacts/a.log", status=404).json == {
        "message": "artifact not found"}
    assert app.delete(f"{job_url}/artifacts/a.log", status=404).json["message"] \
        == "artifact not found"
    assert app.get(f"{job_url}/artifacts/").json == []


# ---- gzip ---------------------------------------------------------------------------------------

def test_gzip_is_stored_as_is_and_decompressed_for_clients_without_gzip(app, job_url, store):
    packed = gzip.compress(TEXT * 20)
    resp = _put(app, f"{job_url}/artifacts/teuthology.log", packed,
                **{"Content-Encoding": "gzip", "Content-Type": "text/plain"})
    assert resp.json["content_encoding"] == "gzip" and resp.json["kind"] == "log"
    assert resp.json["sha256"] == hashlib.sha256(packed).hexdigest()
    assert blob_bytes(store, resp.json["sha256"]) == packed  # stored compressed
    plain = app.get(f"{job_url}/artifacts/teuthology.log")
    assert plain.body == TEXT * 20
    assert "Content-Encoding" not in plain.headers
    assert plain.headers["Vary"] == "Accept-Encoding"
    # (webtest decodes gzip responses itself: ask the WSGI app directly)
    status, headers, body = wsgi_call(app.app, "GET", f"{job_url}/artifacts/teuthology.log",
                                      io.BytesIO(), content_length=None,
                                      headers={"Accept-Encoding": "br, gzip;q=0.8"})
    assert status == 200 and headers["Content-Encoding"] == "gzip" and body == packed
    assert headers["Content-Length"] == str(len(packed))
    refused = app.get(f"{job_url}/artifacts/teuthology.log",
                      headers={"Accept-Encoding": "gzip;q=0"})
    assert refused.body == TEXT * 20


def test_multi_member_gzip_decompresses_whole(app, job_url):
    packed = gzip.compress(b"first member\n") + gzip.compress(b"second member\n")
    _put(app, f"{job_url}/artifacts/two.log", packed, **{"Content-Encoding": "gzip"})
    assert app.get(f"{job_url}/artifacts/two.log").body == b"first member\nsecond member\n"


@pytest.mark.parametrize("body", [b"not gzip at all", gzip.compress(TEXT)[:-20], b""])
def test_body_that_is_not_whole_gzip_is_400_and_nothing_stored(app, job_url, store, session,
                                                               body):
    resp = _put(app, f"{job_url}/artifacts/bad.log", body, status=400,
                **{"Content-Encoding": "gzip"})
    assert "gzip" in resp.json["message"]
    assert stored_blobs(store) == [] and spool_files(store) == []
    assert row_counts(session)["artifacts"] == 0


def test_unknown_content_encoding_is_400(app, job_url):
    resp = _put(app, f"{job_url}/artifacts/a.log", b"x", status=400,
                **{"Content-Encoding": "br"})
    assert resp.json["message"].startswith("unsupported Content-Encoding")


# ---- ranges and conditional GETs --------------------------------------------------------------

@pytest.mark.parametrize("header,start,end", [
    ("bytes=0-9", 0, 10), ("bytes=10-19", 10, 20), ("bytes=100-", 100, None),
    ("bytes=-25", -25, None), ("bytes=0-999999", 0, None), ("bytes=-999999", 0, None),
    ("bytes = 5 - 6", 5, 7)])
def test_range_is_206(app, job_url, header, start, end):
    _put(app, f"{job_url}/artifacts/a.log", TEXT)
    resp = app.get(f"{job_url}/artifacts/a.log", headers={"Range": header}, status=206)
    expected = TEXT[start:end]
    assert resp.body == expected
    first = start % len(TEXT)
    assert resp.headers["Content-Range"] == \
        f"bytes {first}-{first + len(expected) - 1}/{len(TEXT)}"
    assert resp.headers["Content-Length"] == str(len(expected))


@pytest.mark.parametrize("header", [f"bytes={len(TEXT)}-", f"bytes={len(TEXT) + 5}-9999999",
                                    "bytes=-0"])
def test_unsatisfiable_range_is_416(app, job_url, header):
    _put(app, f"{job_url}/artifacts/a.log", TEXT)
    resp = app.get(f"{job_url}/artifacts/a.log", headers={"Range": header}, status=416)
    assert resp.headers["Content-Range"] == f"bytes */{len(TEXT)}"
    assert "range not satisfiable" in resp.json["message"]


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "lines=1-2", "bytes=9-1", "bytes=x-"])
def test_ranges_we_do_not_serve_give_the_whole_file(app, job_url, header):
    _put(app, f"{job_url}/artifacts/a.log", TEXT)
    assert app.get(f"{job_url}/artifacts/a.log", headers={"Range": header},
                   status=200).body == TEXT


def test_if_range_with_another_etag_gives_the_whole_file(app, job_url):
    sha = _put(app, f"{job_url}/artifacts/a.log", TEXT).json["sha256"]
    assert app.get(f"{job_url}/artifacts/a.log",
                   headers={"Range": "bytes=0-1", "If-Range": '"old"'}).status_int == 200
    assert app.get(f"{job_url}/artifacts/a.log",
                   headers={"Range": "bytes=0-1", "If-Range": f'"{sha}"'}).status_int == 206


def test_range_of_gzip_for_a_gzip_client_counts_stored_bytes(app, job_url):
    packed = gzip.compress(TEXT)
    _put(app, f"{job_url}/artifacts/a.log", packed, **{"Content-Encoding": "gzip"})
    status, headers, body = wsgi_call(app.app, "GET", f"{job_url}/artifacts/a.log",
                                      io.BytesIO(), content_length=None,
                                      headers={"Range": "bytes=0-9", "Accept-Encoding": "gzip"})
    assert (status, headers["Content-Encoding"], body) == (206, "gzip", packed[:10])


def test_if_none_match_gives_304(app, job_url):
    sha = _put(app, f"{job_url}/artifacts/a.log", TEXT).json["sha256"]
    for header in (f'"{sha}"', sha, f'W/"{sha}"', f'"nope", "{sha}"', "*"):
        resp = app.get(f"{job_url}/artifacts/a.log", headers={"If-None-Match": header},
                       status=304)
        assert resp.body == b"" and resp.headers["ETag"] == f'"{sha}"'
    assert app.get(f"{job_url}/artifacts/a.log", headers={"If-None-Match": '"other"'},
                   status=200).body == TEXT


# ---- multipart ----------------------------------------------------------------------------------

def test_multipart_post_one_or_more_files(app, job_url, store):
    subunit_like = b"\xb3" + os.urandom(100)
    resp = app.post(f"{job_url}/artifacts/", upload_files=[
        ("file", "console.log", TEXT), ("file", "bin/data.bin", b"\x00\x01\x02")],
        params={"comment": "form fields are ignored"}, status=201)
    assert [(a["name"], a["size"]) for a in resp.json] == [("console.log", len(TEXT)),
                                                           ("bin/data.bin", 3)]
    assert app.get(f"{job_url}/artifacts/bin/data.bin").body == b"\x00\x01\x02"
    again = app.post(f"{job_url}/artifacts/", upload_files=[("file", "console.log", TEXT)],
                     status=200)
    assert again.json[0]["sha256"] == resp.json[0]["sha256"]
    one = app.post(f"{job_url}/artifacts/?kind=binary",
                   upload_files=[("f", "s.bin", subunit_like)], status=201)
    assert one.json[0]["kind"] == "binary"
    assert spool_files(store) == []


def test_multipart_errors(app, job_url, store, session):
    assert app.post(f"{job_url}/artifacts/", params={"a": "b"}, status=415).json["message"] \
        .startswith("POST takes a multipart/form-data body")
    no_file = app.post(f"{job_url}/artifacts/", params={"a": "b"},
                       content_type="multipart/form-data", status=400)
    assert no_file.json["message"].startswith("no file in the multipart body")
    twice = app.post(f"{job_url}/artifacts/", upload_files=[
        ("file", "a.log", b"1"), ("file", "a.log", b"2")], status=400)
    assert twice.json["message"] == "the same file name twice in one upload"
    bad = app.post(f"{job_url}/artifacts/", upload_files=[
        ("file", "ok.log", b"1"), ("file", "/etc/passwd", b"2")], status=400)
    assert bad.json["message"] == "artifact path must be relative"
    garbage = app.post(f"{job_url}/artifacts/", b"--x\r\nnonsense",
                       content_type="multipart/form-data; boundary=x", status=400)
    assert garbage.json["message"].startswith(("bad multipart body", "multipart body ended"))
    assert row_counts(session)["artifacts"] == 0
    assert stored_blobs(store) == [] and spool_files(store) == []


# ---- validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path,message", [
    ("../escape", "artifact path must not contain '.' or '..' segments"),
    ("a/%2e%2e/b", "artifact path must not contain '.' or '..' segments"),
    ("a/./b", "artifact path must not contain '.' or '..' segments"),
    ("a%2F..%2Fb", "artifact path must not contain '.' or '..' segments"),
    ("..%5Cwindows", "artifact path must not contain '.' or '..' segments"),
    ("a%00b", "request URL must not contain NUL characters"),  # refused before routing
    ("%5Cabs", "artifact path must be relative"),
    ("C:%5Cboot.ini", "artifact path must be relative"),
    ("tab%09name", "artifact path must not contain control characters"),
    ("x" * 1025, "artifact path is longer than 1024 bytes"),
])
def test_bad_paths_are_400(app, job_url, path, message):
    for method in ("put", "get", "delete"):
        resp = getattr(app, method)(f"{job_url}/artifacts/{path}", status=400,
                                    **({"params": b"x"} if method == "put" else {}))
        assert resp.json == {"message": message}


def test_bad_kind_is_400(app, job_url):
    assert app.put(f"{job_url}/artifacts/a.log?kind=pdf", b"x", status=400).json["message"] \
        == "kind must be one of subunit, junit, dstat, log, binary"


def test_missing_run_or_job_is_404(app, job):
    run, _ = job
    assert app.put(f"/runs/{run}/jobs/99/artifacts/a.log", b"x", status=404).json == {
        "message": "job not found"}
    assert app.put("/runs/no-such-run/artifacts/a.log", b"x", status=404).json == {
        "message": "run not found"}
    assert app.get(f"/runs/{run}/jobs/99/artifacts/", status=404).json == {
        "message": "job not found"}


def test_methods_not_served_are_405(app, job_url):
    _put(app, f"{job_url}/artifacts/a.log", TEXT)
    resp = app.post(f"{job_url}/artifacts/a.log", b"x", status=405)
    assert resp.headers["Allow"] == "GET, HEAD, PUT, DELETE"
    assert app.put(f"{job_url}/artifacts/", b"x", status=405).headers["Allow"] \
        == "GET, HEAD, POST"


# ---- limits and interrupted uploads -----------------------------------------------------------

def _nothing_stored(store, session):
    assert stored_blobs(store) == []
    assert spool_files(store) == []
    assert row_counts(session) == {"artifacts": 0, "blobs": 0, "test_cases": 0}


def test_413_at_the_limit_with_nothing_stored(make_client, job_url, store, session):
    small = make_client(artifacts_max_size=1000)
    assert small.put(f"{job_url}/artifacts/exact.bin", b"x" * 1000, status=201).json["size"] \
        == 1000
    small.delete(f"{job_url}/artifacts/exact.bin", status=204)
    blobs_before = stored_blobs(store)
    resp = small.put(f"{job_url}/artifacts/big.bin", b"x" * 1001, status=413)
    assert resp.json == {"message": "artifact is larger than the 1000 byte limit"}
    assert resp.headers["Connection"] == "close"
    multipart = small.post(f"{job_url}/artifacts/", upload_files=[
        ("file", "a.bin", b"a" * 600), ("file", "b.bin", b"b" * 600)], status=413)
    assert multipart.json["message"] == "artifact is larger than the 1000 byte limit"
    assert stored_blobs(store) == blobs_before and spool_files(store) == []
    assert row_counts(session)["artifacts"] == 0


def test_413_counted_while_streaming_without_content_length(make_client, job_url, store,
                                                            session):
    wsgi = make_client(artifacts_max_size=3 * 1024 * 1024).app
    status, headers, body = wsgi_call(wsgi, "PUT", f"{job_url}/artifacts/big.bin",
                                      io.BytesIO(b"y" * (4 * 1024 * 1024)),
                                      content_length=None, chunked=True)
    assert status == 413 and json.loads(body)["message"].startswith("artifact is larger")
    _nothing_stored(store, session)
    status, _, body = wsgi_call(wsgi, "PUT", f"{job_url}/artifacts/ok.bin",
                                io.BytesIO(b"z" * 5000), content_length=None, chunked=True)
    assert status == 201 and json.loads(body)["size"] == 5000


def test_body_shorter_than_content_length_leaves_nothing(app, job_url, store, session):
    status, headers, body = wsgi_call(app.app, "PUT", f"{job_url}/artifacts/short.log",
                                      io.BytesIO(TEXT), content_length=len(TEXT) + 100)
    assert status == 400
    assert json.loads(body) == {
        "message": f"request body ended after {len(TEXT)} of {len(TEXT) + 100} bytes"}
    assert headers["Connection"] == "close"
    _nothing_stored(store, session)


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_client_disconnecting_mid_stream_leaves_nothing(app, job_url, store, session, method):
    data = os.urandom(3 * 1024 * 1024)
    if method == "PUT":
        path, headers, payload = f"{job_url}/artifacts/cut.bin", {}, data
    else:
        path = f"{job_url}/artifacts/"
        headers = {"Content-Type": "multipart/form-data; boundary=XyZ"}
        payload = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; "
                   b"filename=\"cut.bin\"\r\n\r\n" + data)
    status, _, body = wsgi_call(app.app, method, path, FailingInput(payload),
                                content_length=len(payload) + 5000, headers=headers)
    assert status == 400
    assert json.loads(body)["message"].startswith("upload interrupted after")
    _nothing_stored(store, session)
