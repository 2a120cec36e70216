"""/exports/runs/NAME/tests.{csv,json,junit.xml,subunit}: compared with /runs/NAME/tests/,
read back with csv, json, ElementTree and python-subunit (ByteStreamToStreamResult), and
uploaded again so paddles' own parsers read the exports back."""
from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pytest
import subunit
import testtools

from paddles.services.exports import TEST_COLUMNS
from paddles.writers.junit import split_test_id
from paddles.writers.subunit import SUBUNIT_STATUS
from tests.factories import post_job, post_run, run_name

from .conftest import AWKWARD_ID, cell, csv_rows, iso, upload_results


@pytest.fixture
def run(app):
    name = run_name()
    upload_results(app, name)
    return name


def _api_tests(app, run, **params) -> list[dict]:
    query = "&".join(f"{k}={v}" for k, v in {"details": "true", **params}.items())
    return app.get(f"/runs/{run}/tests/?{query}").json["tests"]


def _export_order(tests: list[dict]) -> list[dict]:
    """Run-level test cases first, then by job_id (numeric here), each by start time."""
    return sorted(tests, key=lambda t: (t["job_id"] is not None, int(t["job_id"] or 0),
                                        t["start"] is None, t["start"] or ""))


def _expected_row(test: dict) -> dict:
    return {"job_id": test["job_id"], "test_id": test["test_id"], "status": test["status"],
            "start": iso(test["start"]), "stop": iso(test["stop"]),
            "duration": test["duration"], "worker": test["worker"], "tags": test["tags"],
            "message": test["message"], "details_artifact": test["details_artifact"]}


def test_csv_and_json_match_the_api(app, run):
    api = _export_order(_api_tests(app, run))
    assert len(api) == 6 + 4 + 1
    expected = [_expected_row(t) for t in api]
    data = app.get(f"/exports/runs/{run}/tests.json").json
    assert data == expected
    assert [t["job_id"] for t in data] == [None] + ["1"] * 6 + ["2"] * 4
    body = app.get(f"/exports/runs/{run}/tests.csv").body
    assert body.split(b"\r\n", 1)[0].decode() == ",".join(TEST_COLUMNS)
    assert csv_rows(body) == [{k: cell(v) for k, v in row.items()} for row in expected]
    assert AWKWARD_ID in {r["test_id"] for r in csv_rows(body)}


def test_status_filter(app, run):
    failed = app.get(f"/exports/runs/{run}/tests.json?status=fail").json
    assert {(t["job_id"], t["test_id"]) for t in failed} == {
        ("1", AWKWARD_ID), ("2", "tests.test_rgw.TestBucket.test_acl")}
    root = ET.fromstring(app.get(f"/exports/runs/{run}/tests.junit.xml?status=skip").body)
    assert (root.get("tests"), root.get("skipped")) == ("2", "2")
    assert app.get(f"/exports/runs/{run}/tests.csv?status=broken", status=400) \
        .json["message"].startswith("status must be one of pass, fail")
    assert app.get(f"/exports/runs/{run}/tests.csv?gzip=1", status=400).json["message"] \
        .startswith("unknown parameter 'gzip'")


def test_junit_has_one_testsuite_per_job(app, run):
    api = _export_order(_api_tests(app, run))
    resp = app.get(f"/exports/runs/{run}/tests.junit.xml")
    assert resp.headers["Content-Type"] == "application/xml"
    root = ET.fromstring(resp.body)  # well-formed, ANSI escapes and all
    assert root.tag == "testsuites" and root.get("name") == run
    assert (root.get("tests"), root.get("failures"), root.get("errors"),
            root.get("skipped")) == ("11", "3", "2", "3")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["run", "1", "2"]
    for suite in suites:
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        assert props["run"] == run
        assert props.get("job_id") == (None if suite.get("name") == "run" else suite.get("name"))
    job1 = {c.get("classname") + "." + c.get("name"): c for c in suites[1].iter("testcase")}
    assert (suites[1].get("tests"), suites[1].get("failures"), suites[1].get("errors"),
            suites[1].get("skipped")) == ("6", "2", "1", "2")
    assert list(job1) == [t["test_id"] for t in api if t["job_id"] == "1"]
    failing = job1[AWKWARD_ID]
    assert failing.find("failure").get("message") == 'AssertionError: 404 != 204, "détail"'
    assert failing.find("failure").text.startswith("Traceback (most recent call last):")
    assert split_test_id(AWKWARD_ID) == ("tempest.api.compute.test_ünïcode.ServersTest",
                                         'test_a,b["quoted"][id-1,smoke]')
    created = job1["tempest.api.compute.test_servers.ServersTest.test_create[id-1,smoke]"]
    assert created.get("time") == "1.5" and created.get("timestamp") == "2024-01-15T20:00:00Z"
    assert created.find("system-out").text == \
        "[pythonlogging]\nINFO \ufffd[32mcreated\ufffd[0m server é\n"
    assert job1["tempest.api.network.test_ports.PortsTest.test_known_bug"] \
        .find("skipped").get("type") == "pytest.xfail"
    job2 = {c.get("name"): c for c in suites[2].iter("testcase")}
    assert job2["test_acl"].find("system-out").text == "captured, stdout\nline 2"
    assert job2["test_setup"].find("error").get("message") == "fixture 'rgw' not found"


def test_junit_read_back_by_paddles_gives_the_same_tests(app, run):
    body = app.get(f"/exports/runs/{run}/tests.junit.xml").body
    again = run_name()
    post_job(app, again, "1", status="running")
    app.put(f"/runs/{again}/jobs/1/artifacts/export.xml", body, status=201)

    def key(t):
        return (t["test_id"], t["status"] if t["status"] != "uxsuccess" else "fail",
                t["start"], t["duration"], t["message"] if t["status"] != "uxsuccess" else None)

    back = sorted(key(t) for t in _api_tests(app, again))
    original = sorted(key(t) for t in _api_tests(app, run))
    fixed = [(i, s, st, d, None if i.endswith("test_fixed_bug") else m)
             for i, s, st, d, m in back]
    assert fixed == original


def _read_subunit(data: bytes) -> list[dict]:
    """python-subunit's reader with testtools' StreamToDict, as subunit tools use them."""
    tests: list[dict] = []
    result = testtools.StreamToDict(tests.append)
    result.startTestRun()
    subunit.ByteStreamToStreamResult(io.BytesIO(data)).run(result)
    result.stopTestRun()
    return tests


def test_subunit_read_back_with_python_subunit(app, run):
    api = _export_order(_api_tests(app, run))
    resp = app.get(f"/exports/runs/{run}/tests.subunit")
    assert resp.headers["Content-Type"] == "application/vnd.subunit.v2"
    assert resp.body[:1] == b"\xb3"
    tests = _read_subunit(resp.body)
    assert [t["id"] for t in tests] == [t["test_id"] for t in api]
    for got, want in zip(tests, api):
        assert got["status"] == SUBUNIT_STATUS[want["status"]]
        assert got["tags"] == set(want["tags"])
        start, stop = got["timestamps"]
        assert iso(want["start"]) == (start.isoformat().replace("+00:00", "Z")
                                      if start else None)
        if want["stop"] is not None:
            assert stop.isoformat().replace("+00:00", "Z") == iso(want["stop"])
        details = {name: content.as_text() for name, content in got["details"].items()}
        if want["details"]:
            assert details == want["details"]
        elif want["message"]:
            assert details == {("reason" if want["status"] in ("skip", "xfail")
                                else "traceback"): want["message"]}


def test_subunit_read_back_by_paddles_gives_the_same_tests(app, run):
    body = app.get(f"/exports/runs/{run}/tests.subunit").body
    again = run_name()
    post_job(app, again, "1", status="running")
    art = app.put(f"/runs/{again}/jobs/1/artifacts/export.subunit", body, status=201).json
    assert (art["kind"], art["parse_status"]) == ("subunit", "ok")
    original = {t["test_id"]: t for t in _api_tests(app, run)}
    back = {t["test_id"]: t for t in _api_tests(app, again)}
    assert set(back) == set(original)
    for test_id, want in original.items():
        got = back[test_id]
        assert got["status"] == ("fail" if want["status"] == "error" else want["status"])
        assert (got["start"], got["tags"], got["worker"]) == \
            (want["start"], want["tags"], want["worker"])
        if want["stop"] is not None:
            assert (got["stop"], got["duration"]) == (want["stop"], want["duration"])
        attached = {("reason" if want["status"] in ("skip", "xfail") else "traceback"):
                    want["message"]} if want["message"] else {}
        assert got["details"] == (want["details"] or attached)
        # paddles takes a subunit test's message from its traceback or reason attachment;
        # JUnit's failure and error texts travel as attachments of their own name
        keeps_message = not want["details"] or {"traceback", "reason"} & set(want["details"])
        assert got["message"] == (want["message"] if keeps_message else None)


def test_empty_and_unknown_runs(app):
    name = run_name()
    post_run(app, name)
    assert app.get(f"/exports/runs/{name}/tests.csv").body.decode() == \
        ",".join(TEST_COLUMNS) + "\r\n"
    assert app.get(f"/exports/runs/{name}/tests.json").json == []
    root = ET.fromstring(app.get(f"/exports/runs/{name}/tests.junit.xml").body)
    assert (root.tag, root.get("tests"), list(root)) == ("testsuites", "0", [])
    assert app.get(f"/exports/runs/{name}/tests.subunit").body == b""
    for fmt in ("csv", "json", "junit.xml", "subunit"):
        assert app.get(f"/exports/runs/nope/tests.{fmt}", status=404).json == \
            {"message": "run not found"}
