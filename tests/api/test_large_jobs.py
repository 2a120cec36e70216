"""Large teuthology job documents (issue #18 item 4): a job config of several MB (overrides
with tens of thousands of keys, a long description) is stored and served back whole; the
job and run body limit is 16 MiB (paddles/limits.py)."""
from __future__ import annotations

import json

from tests.factories import job_body, run_name


def big_job(job_id: str, size: int) -> dict:
    """A job body of about `size` bytes: 200 KB of description, the rest overrides keys."""
    body = job_body(job_id, status="running")
    body["description"] = "rados/thrash/{" + ",".join(
        f"clusters/fixed-{i}.yaml" for i in range(10_000))[:200_000] + "}"
    conf: dict = {}
    body["overrides"] = {"ceph": {"conf": {"osd": conf}}, "admin_socket": {"branch": "main"}}
    i = 0
    while len(json.dumps(body)) < size:
        for _ in range(5000):
            conf[f"debug option {i:06d}"] = [i, f"value-{i}", {"nested": i % 7 == 0}]
            i += 1
    return body


def test_5mb_job_round_trips_through_job_run_and_job_list(app):
    run = run_name()
    body = big_job("1", 5 * 1000 * 1000)
    raw = json.dumps(body).encode()
    assert len(raw) > 5 * 1000 * 1000
    assert len(body["overrides"]["ceph"]["conf"]["osd"]) > 40_000
    assert app.post(f"/runs/{run}/jobs/", raw, status=200).json == {"job_id": "1"}
    # a second write of the whole document (teuthology PUTs the config again)
    body["status"] = "pass"
    body["success"] = True
    app.put(f"/runs/{run}/jobs/1/", json.dumps(body).encode(), status=200)

    def same(got: dict) -> None:
        for key, value in body.items():
            assert got[key] == value, key

    same(app.get(f"/runs/{run}/jobs/1/").json)
    same(app.get(f"/runs/{run}/").json["jobs"][0])
    listed = app.get(f"/runs/{run}/jobs/").json
    assert len(listed) == 1
    same(listed[0])
    # and the same bytes again from the response cache
    same(app.get(f"/runs/{run}/", headers={"Accept-Encoding": "gzip"}).json["jobs"][0])
