"""The Location of a created artifact is a header: a run name or job id beyond Latin-1 is
percent-encoded there (issue #18, item 7: the 500 schemathesis found on
PUT /runs/{name}/artifacts/{path}). Raw, gunicorn refused the response of the first PUT
(the 201; a replacing PUT has no Location, hence "once"); webtest's lint refuses it too.
The JSON href is unchanged. SQLite and PostgreSQL."""
from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from tests.factories import job_body

NAME = "d\u00e9j\u00e0 vu.log"
RUN = "teuthology-2024-01-15_20:00:03-rados-\u0100\U000e7ff9-distro-default-smithi"


@pytest.fixture
def storage_kind():
    return "local"


@pytest.mark.parametrize("job_id", [None, "7\u2603"])
def test_location_of_an_artifact_of_a_run_named_beyond_latin1(app, job_id):
    app.post(f"/runs/{quote(RUN)}/jobs/", json.dumps(job_body(job_id or "1")))
    scope = f"/runs/{quote(RUN, safe=':')}" + (f"/jobs/{quote(job_id)}" if job_id else "")
    path = f"{scope}/artifacts/{quote(NAME)}"
    created = app.put(path, b"one\n", status=201)
    assert created.headers["Location"] == f"http://paddles.test{path}"
    assert created.json["href"] == ("http://paddles.test/runs/" + RUN
                                    + (f"/jobs/{job_id}" if job_id else "")
                                    + "/artifacts/d%C3%A9j%C3%A0%20vu.log")
    assert app.get(created.headers["Location"][len("http://paddles.test"):]).body == b"one\n"
    replaced = app.put(path, b"two\n", status=200)
    assert "Location" not in replaced.headers


def test_location_keeps_latin1_and_ascii_as_they_were(app):
    """Names a header could carry before are sent as before, byte for byte."""
    run = "teuthology-2024-01-15_20:00:03-caf\u00e9-main-distro-default-smithi"
    app.post(f"/runs/{quote(run)}/jobs/", json.dumps(job_body("1")))
    created = app.put(f"/runs/{quote(run)}/artifacts/a%20b.log", b"x\n", status=201)
    assert created.headers["Location"] == f"http://paddles.test/runs/{run}/artifacts/a%20b.log"
