"""Parsing on upload: subunit v2 (written here with python-subunit's StreamResultToBytes),
JUnit XML (from a real pytest run, and hand-made), dstat CSV; the tests and timeline routes;
files that fail to parse are stored with parse_status "error". SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import subprocess
import sys
import textwrap

import pytest
from subunit.v2 import StreamResultToBytes

from tests.factories import job_body

from .conftest import DATA, row_counts

T0 = dt.datetime(2024, 1, 15, 20, 0, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def storage_kind():
    return "local"  # parsing does not depend on the blob backend


def _at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def subunit_stream() -> bytes:
    """A tempest-like run on two workers: every status, attachments, tags, a hung test."""
    out = io.BytesIO()
    w = StreamResultToBytes(out)
    text = "text/plain; charset=utf8"

    def test(test_id, status, start, stop, worker, attachments=()):
        tags = {worker} if worker else None
        w.status(test_id=test_id, test_status="inprogress", timestamp=_at(start), test_tags=tags)
        for name, data in attachments:
            w.status(test_id=test_id, file_name=name, file_bytes=data, mime_type=text, eof=True,
                     timestamp=_at(stop))
        if status is not None:
            w.status(test_id=test_id, test_status=status, timestamp=_at(stop), test_tags=tags)

    test("tempest.api.compute.test_servers.ServersTest.test_create[id-1,smoke]", "success",
         0, 1.5, "worker-0", [("pythonlogging", b"INFO created server\n")])
    test("tempest.api.compute.test_servers.ServersTest.test_delete[id-2]", "fail", 0.25, 3,
         "worker-1", [("traceback", b'Traceback (most recent call last):\n  File "t.py", '
                                    b'line 3, in test_delete\nAssertionError: 404 != 204\n')])
    test("tempest.api.volume.test_volumes.VolumesTest.test_attach", "skip", 1.5, 1.5,
         "worker-0", [("reason", b"Cinder multiattach is not enabled")])
    test("tempest.api.network.test_ports.PortsTest.test_known_bug", "xfail", 3, 4, "worker-1")
    test("tempest.api.network.test_ports.PortsTest.test_fixed_bug", "uxsuccess", 4, 4.5,
         "worker-1")
    test("tempest.api.image.test_images.ImagesTest.test_hang", None, 5, None, "worker-0")
    w.status(test_id="tempest.api.listed.only", test_status="exists", timestamp=_at(6))
    out.write(b"some stdout between packets\n")  # non-subunit bytes are tolerated
    return out.getvalue()


def test_subunit_stream_is_parsed_into_test_cases(app, job_url, job):
    run, job_id = job
    data = subunit_stream()
    art = app.put(f"{job_url}/artifacts/tempest.subunit", data, status=201).json
    assert (art["kind"], art["parse_status"], art["parse_error"]) == ("subunit", "ok", None)
    body = app.get(f"{job_url}/tests/").json
    assert body["counts"] == {"pass": 1, "fail": 1, "skip": 1, "error": 1, "xfail": 1,
                              "uxsuccess": 1, "total": 6}
    tests = {t["test_id"].rsplit(".", 1)[-1]: t for t in body["tests"]}
    assert set(tests) == {"test_create[id-1,smoke]", "test_delete[id-2]", "test_attach",
                          "test_known_bug", "test_fixed_bug", "test_hang"}
    ok = tests["test_create[id-1,smoke]"]
    assert ok == {
        "job_id": job_id, "status": "pass",
        "test_id": "tempest.api.compute.test_servers.ServersTest.test_create[id-1,smoke]",
        "start": "2024-01-15 20:00:00", "stop": "2024-01-15 20:00:01.500000", "duration": 1.5,
        "worker": "worker-0", "tags": ["worker-0"], "message": None,
        "details_artifact": f"http://paddles.test{job_url}/artifacts/tempest.subunit"}
    failed = tests["test_delete[id-2]"]
    assert (failed["status"], failed["worker"], failed["duration"]) == ("fail", "worker-1", 2.75)
    assert failed["message"] == "AssertionError: 404 != 204"
    assert tests["test_attach"]["message"] == "Cinder multiattach is not enabled"
    assert tests["test_known_bug"]["status"] == "xfail"
    assert tests["test_fixed_bug"]["status"] == "uxsuccess"
    hung = tests["test_hang"]
    assert (hung["status"], hung["stop"], hung["message"]) == (
        "error", None, "test started but never finished")
    # attachments on request, ?status= filters (counts stay the job's)
    detailed = app.get(f"{job_url}/tests/?status=fail&details=true").json
    assert detailed["counts"]["total"] == 6
    [only] = detailed["tests"]
    assert only["details"]["traceback"].endswith("AssertionError: 404 != 204\n")
    assert "details" not in app.get(f"{job_url}/tests/?status=pass").json["tests"][0]
    assert app.get(f"{job_url}/tests/?status=broken", status=400).json["message"] \
        .startswith("status must be one of pass, fail")
    assert len(app.get(f"{job_url}/tests/?count=2&page=2").json["tests"]) == 2


def test_gzip_subunit_is_parsed_and_replacing_replaces_the_tests(app, job_url, session):
    app.put(f"{job_url}/artifacts/tempest.subunit.gz", gzip.compress(subunit_stream()),
            headers={"Content-Encoding": "gzip"}, status=201)
    assert app.get(f"{job_url}/tests/").json["counts"]["total"] == 6
    out = io.BytesIO()
    StreamResultToBytes(out).status(test_id="only.one", test_status="success", timestamp=T0)
    app.put(f"{job_url}/artifacts/tempest.subunit.gz", gzip.compress(out.getvalue()),
            headers={"Content-Encoding": "gzip"}, status=200)
    assert [t["test_id"] for t in app.get(f"{job_url}/tests/").json["tests"]] == ["only.one"]
    app.delete(f"{job_url}/artifacts/tempest.subunit.gz", status=204)
    assert app.get(f"{job_url}/tests/").json["counts"]["total"] == 0
    assert row_counts(session)["test_cases"] == 0


def test_damaged_subunit_is_stored_with_the_reason(app, job_url):
    data = subunit_stream()
    damaged = data[:60] + b"\xb3\x20\x01garbage" + data[60:200]
    art = app.put(f"{job_url}/artifacts/broken.subunit", damaged, status=201).json
    assert art["kind"] == "subunit" and art["parse_status"] == "error"
    assert art["parse_error"].startswith("subunit: ")
    assert app.get(f"{job_url}/artifacts/broken.subunit").body == damaged
    forced = app.put(f"{job_url}/artifacts/notes.txt?kind=subunit", b"plain text\n").json
    assert forced["parse_error"] == "subunit: no subunit v2 test events found"


@pytest.fixture(scope="module")
def pytest_junit(tmp_path_factory) -> bytes:
    """JUnit XML written by a real pytest run of a small generated test file."""
    where = tmp_path_factory.mktemp("junit")
    (where / "test_sample.py").write_text(textwrap.dedent('''
        import pytest

        def test_passes():
            assert 1 + 1 == 2

        def test_fails():
            print("captured output")
            assert [1, 2] == [1, 3], "lists differ"

        @pytest.mark.skip(reason="no cluster here")
        def test_skipped():
            pass

        @pytest.mark.xfail(reason="known bug 12345")
        def test_expected_failure():
            raise RuntimeError("still broken")

        @pytest.fixture
        def broken():
            raise OSError("fixture could not start")

        def test_errors(broken):
            pass
    '''))
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "--junitxml", str(where / "junit.xml"), "-o", "junit_family=xunit2",
                    "-o", "junit_logging=system-out",
                    str(where / "test_sample.py")], cwd=where, capture_output=True, timeout=60)
    return (where / "junit.xml").read_bytes()


def test_junit_from_pytest(app, job_url, pytest_junit):
    art = app.put(f"{job_url}/artifacts/junit.xml", pytest_junit,
                  headers={"Content-Type": "application/xml"}, status=201).json
    assert (art["kind"], art["parse_status"]) == ("junit", "ok")
    body = app.get(f"{job_url}/tests/").json
    assert body["counts"] == {"pass": 1, "fail": 1, "skip": 1, "error": 1, "xfail": 1,
                              "uxsuccess": 0, "total": 5}
    tests = {t["test_id"]: t for t in app.get(f"{job_url}/tests/?details=1").json["tests"]}
    assert set(tests) == {f"test_sample.{n}" for n in (
        "test_passes", "test_fails", "test_skipped", "test_expected_failure", "test_errors")}
    failed = tests["test_sample.test_fails"]
    assert failed["status"] == "fail" and "lists differ" in failed["message"]
    assert "captured output" in failed["details"]["system-out"]
    assert tests["test_sample.test_skipped"]["message"] == "no cluster here"
    assert tests["test_sample.test_expected_failure"]["status"] == "xfail"
    assert tests["test_sample.test_errors"]["status"] == "error"
    assert isinstance(tests["test_sample.test_passes"]["duration"], float)


def test_hand_made_junit_with_errors_and_skips(app, job_url):
    data = (DATA / "junit-errors.xml").read_bytes()
    assert app.put(f"{job_url}/artifacts/reports/api.xml", data).json["kind"] == "junit"
    body = app.get(f"{job_url}/tests/?details=yes").json
    assert body["counts"] == {"pass": 2, "fail": 1, "skip": 1, "error": 2, "xfail": 0,
                              "uxsuccess": 0, "total": 6}
    tests = {t["test_id"].rsplit(".", 1)[-1]: t for t in body["tests"]}
    created = tests["test_pool_create"]
    assert (created["start"], created["stop"], created["duration"]) == (
        "2024-01-15 20:10:00", "2024-01-15 20:10:05.125000", 5.125)
    assert body["tests"][0]["test_id"].endswith("test_pool_create")  # timed tests first
    deleted = tests["test_pool_delete"]
    assert deleted["message"] == "AssertionError: 404 != 204"
    assert deleted["details"]["system-out"] == "DELETE /api/pool/rbd-test -> 404"
    assert deleted["details"]["failure"].startswith("Traceback")
    assert tests["test_pool_quota"]["message"] == "quota needs a second OSD host"
    rgw = tests["test_create_bucket"]
    assert (rgw["status"], rgw["message"]) == ("error", "ConnectionError: rgw did not answer")
    assert rgw["details"]["system-err"] == "rgw: failed to bind 8000"
    assert tests["test_list_buckets"]["message"] == "setUpClass failed"


@pytest.mark.parametrize("body,kind,error", [
    (b"<testsuite><testcase name='a'/><testcase name='b'>", "junit",
     "junit: ParseError: no element found"),
    (b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
     b'<testsuite><testcase name="&b;"/></testsuite>', "junit", "junit: DTDForbidden"),
    (b"<html><body>not a report</body></html>", None, None),
])
def test_bad_xml_is_stored_not_500(app, job_url, body, kind, error):
    art = app.put(f"{job_url}/artifacts/report.xml", body, status=201).json
    if error is None:
        assert (art["kind"], art["parse_status"]) == ("log", None)
    else:
        assert art["kind"] == kind and art["parse_status"] == "error"
        assert art["parse_error"].startswith(error)


def test_dstat_csv_gives_a_timeline(app, job_url):
    data = (DATA / "dstat.csv").read_bytes()
    art = app.put(f"{job_url}/artifacts/dstat.csv", data, status=201).json
    assert (art["kind"], art["parse_status"], art["content_type"]) == ("dstat", "ok", "text/csv")
    timeline = app.get(f"{job_url}/timeline/").json
    assert timeline["artifact"] == f"http://paddles.test{job_url}/artifacts/dstat.csv"
    columns, rows = timeline["columns"], timeline["rows"]
    assert columns[:4] == ["time", "total cpu usage/usr", "total cpu usage/sys",
                           "total cpu usage/idl"]
    assert "memory usage/used" in columns and "dsk/total/writ" in columns
    assert columns[-2:] == ["system/int", "system/csw"]
    assert len(rows) == 40 and all(len(r) == len(columns) for r in rows)
    assert rows[0][:2] == ["2023-12-31 23:59:50", 20.106]
    assert rows[9][0] == "2023-12-31 23:59:59" and rows[10][0] == "2024-01-01 00:00:00"


def test_timeline_errors(app, job_url):
    assert app.get(f"{job_url}/timeline/", status=404).json == {
        "message": "no parsed dstat artifact for this job"}
    art = app.put(f"{job_url}/artifacts/d.csv?kind=dstat", b"a,b\n1,2\n").json
    assert art["parse_error"].startswith("dstat: no column header row")
    assert app.get("/runs/nope/jobs/1/timeline/", status=404).json == {"message": "job not found"}


def test_run_tests_cover_every_job_with_counts(app, job, session):
    run, _ = job
    app.post(f"/runs/{run}/jobs/", json.dumps(job_body("2", status="running")))
    app.put(f"/runs/{run}/jobs/1/artifacts/tempest.subunit", subunit_stream())
    app.put(f"/runs/{run}/jobs/2/artifacts/junit.xml", (DATA / "junit-errors.xml").read_bytes())
    app.put(f"/runs/{run}/artifacts/run-level.subunit", subunit_stream())
    body = app.get(f"/runs/{run}/tests/").json
    assert body["counts"] == {"pass": 4, "fail": 3, "skip": 3, "error": 4, "xfail": 2,
                              "uxsuccess": 2, "total": 18}
    by_job = {}
    for test in body["tests"]:
        by_job[test["job_id"]] = by_job.get(test["job_id"], 0) + 1
    assert by_job == {"1": 6, "2": 6, None: 6}
    run_level = [t for t in body["tests"] if t["job_id"] is None][0]
    assert run_level["details_artifact"] == \
        f"http://paddles.test/runs/{run}/artifacts/run-level.subunit"
    assert [t["job_id"] for t in app.get(f"/runs/{run}/tests/?status=error").json["tests"]] \
        .count("2") == 2
    assert app.get("/runs/nope/tests/", status=404).json == {"message": "run not found"}


def test_job_and_run_documents_keep_their_upstream_keys(app, job_url, job):
    run, _ = job
    job_keys, run_keys = set(app.get(job_url).json), set(app.get(f"/runs/{run}/").json)
    app.put(f"{job_url}/artifacts/tempest.subunit", subunit_stream())
    assert set(app.get(job_url).json) == job_keys
    assert set(app.get(f"/runs/{run}/").json) == run_keys


def test_deleting_the_job_removes_its_artifacts_and_tests(app, job_url, job, session):
    app.put(f"{job_url}/artifacts/tempest.subunit", subunit_stream())
    app.put(f"{job_url}/artifacts/dstat.csv", (DATA / "dstat.csv").read_bytes())
    app.delete(job_url)
    counts = row_counts(session)
    assert (counts["artifacts"], counts["test_cases"]) == (0, 0)
    assert counts["blobs"] == 2  # left for `paddles purge`
