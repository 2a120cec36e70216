"""Export fixtures: an app with its blob store in a temporary directory, data made through
the API (and, for the many-rows tests, inserted in bulk), and the standard readers.

Every test here runs on SQLite and PostgreSQL (the `database_url` fixture)."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from paddles.models import Job, JobStatus, Run
from paddles.models.base import sortable_job_id
from paddles.settings import load_settings

UTC = dt.timezone.utc


@pytest.fixture
def settings(database_url, tmp_path):
    return load_settings(environ={}, database_url=database_url, address="http://paddles.test",
                         default_latest_runs_count=25, data_dir=str(tmp_path / "data"))


def csv_rows(body: bytes) -> list[dict]:
    """The standard reader: RFC 4180, header row, UTF-8."""
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))


def jsonl_rows(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.decode("utf-8").splitlines()]


def iso(wire: str | None) -> str | None:
    """A wire time (`2024-01-15 20:00:03[.f]`, naive UTC) as the exports write it."""
    if wire is None:
        return None
    return dt.datetime.fromisoformat(wire).isoformat() + "Z"


def cell(value) -> str:
    """What the CSV holds for a JSON value."""
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def attachment_name(resp) -> str:
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename=")
    return disposition.split('filename="', 1)[1].split('"', 1)[0]


def bulk_jobs(engine, run_name: str, n: int) -> None:
    """`n` jobs in one run, inserted many rows per statement, with the run's counters and
    status kept as the job service keeps them (all pass)."""
    now = dt.datetime(2024, 1, 15, 21, 0, tzinfo=UTC)
    with engine.begin() as conn:
        run_id = conn.scalar(select(Run.id).where(Run.name == run_name))
        rows = [{"run_id": run_id, "job_id": str(i), "sort_key": sortable_job_id(str(i)),
                 "status": JobStatus.PASS, "success": True, "description": f"job {i}, \"x\"",
                 "targets": {f"ubuntu@smithi{i:03d}.front": "ssh-ed25519 AAAA"},
                 "posted": now, "started": now, "updated": now, "duration": i}
                for i in range(1, n + 1)]
        for start in range(0, n, 1000):
            conn.execute(insert(Job), rows[start:start + 1000])
        conn.execute(update(Run).where(Run.id == run_id).values(
            count_pass=n, count_total=n, status="finished pass", started=now, updated=now))


# ---- test results as tempest and pytest write them ------------------------------------------

T0 = dt.datetime(2024, 1, 15, 20, 0, 0, tzinfo=UTC)
AWKWARD_ID = 'tempest.api.compute.test_ünïcode.ServersTest.test_a,b["quoted"][id-1,smoke]'


def _at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def tempest_stream() -> bytes:
    """subunit v2 from python-subunit's StreamResultToBytes: two workers, every status,
    attachments (one with ANSI colours), awkward ids, a test that never finished."""
    from subunit.v2 import StreamResultToBytes

    out = io.BytesIO()
    w = StreamResultToBytes(out)
    text = "text/plain; charset=utf8"

    def test(test_id, status, start, stop, worker, attachments=()):
        tags = {worker} if worker else None
        w.status(test_id=test_id, test_status="inprogress", timestamp=_at(start),
                 test_tags=tags)
        for name, data in attachments:
            w.status(test_id=test_id, file_name=name, file_bytes=data.encode(), mime_type=text,
                     eof=True, timestamp=_at(stop if stop is not None else start))
        if status is not None:
            w.status(test_id=test_id, test_status=status, timestamp=_at(stop), test_tags=tags)

    test("tempest.api.compute.test_servers.ServersTest.test_create[id-1,smoke]", "success",
         0, 1.5, "worker-0", [("pythonlogging", "INFO \x1b[32mcreated\x1b[0m server é\n")])
    test(AWKWARD_ID, "fail", 0.25, 3, "worker-1",
         [("traceback", 'Traceback (most recent call last):\n  File "t.py", line 3\n'
                        'AssertionError: 404 != 204, "détail"\n')])
    test("tempest.api.volume.test_volumes.VolumesTest.test_attach", "skip", 1.5, 1.5,
         "worker-0", [("reason", "Cinder multiattach is not enabled")])
    test("tempest.api.network.test_ports.PortsTest.test_known_bug", "xfail", 3, 4, "worker-1")
    test("tempest.api.network.test_ports.PortsTest.test_fixed_bug", "uxsuccess", 4, 4.5,
         "worker-1")
    test("tempest.scenario.test_hang (tempest.scenario.TestScenario)", None, 5, None,
         "worker-0")
    return out.getvalue()


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testsuite name="pytest" tests="4" failures="1" errors="1" skipped="1">
    <testcase classname="tests.test_rgw.TestBucket" name="test_create" time="0.125"
              timestamp="2024-01-15T20:10:00"/>
    <testcase classname="tests.test_rgw.TestBucket" name="test_acl" time="1.5"
              timestamp="2024-01-15T20:10:01">
      <failure message="assert 'private' == &quot;public&quot;, über"
      >tests/test_rgw.py:12: in test_acl
    assert acl == "public"
E   AssertionError</failure>
      <system-out>captured, stdout
line 2</system-out>
    </testcase>
    <testcase classname="tests.test_rgw.TestBucket" name="test_setup" time="0.01">
      <error message="fixture 'rgw' not found">E fixture 'rgw' not found</error>
    </testcase>
    <testcase classname="tests.test_rgw" name="test_later" time="0">
      <skipped message="needs a multisite setup"/>
    </testcase>
  </testsuite>
</testsuites>
"""

RUN_JUNIT = """<testsuite name="teardown"><testcase classname="teuthology.nuke" name="test_nuke"
 time="2.0" timestamp="2024-01-15T19:59:00Z"/></testsuite>
"""


def upload_results(app, run: str) -> None:
    """Job 1: a tempest subunit stream; job 2: pytest JUnit; the run itself: one JUnit."""
    from tests.factories import job_body

    for job_id in ("1", "2"):
        app.post(f"/runs/{run}/jobs/", json.dumps(job_body(job_id, status="running")))
    app.put(f"/runs/{run}/jobs/1/artifacts/tempest.subunit", tempest_stream(), status=201)
    app.put(f"/runs/{run}/jobs/2/artifacts/junit.xml", JUNIT.encode(), status=201)
    app.put(f"/runs/{run}/artifacts/nuke.xml", RUN_JUNIT.encode(), status=201)


DATA_DSTAT = (Path(__file__).parents[1] / "artifacts" / "data" / "dstat.csv").read_bytes()
