"""The write benchmark's bodies (bench/write_bodies.py) have teuthology's shape and are
what the API accepts: a create is ~2.5 KB with three targets that link three nodes, the
final report carries config and summary."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from sqlalchemy import func, select

from paddles.models import Job, job_nodes

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import write_bodies

RUN = "teuthology-2026-12-05_10:00:00-rados-main-distro-default-smithi"


def test_create_body_is_teuthology_sized_with_three_targets():
    for job_id in (1, 17, 300):
        body = write_bodies.create_body(RUN, job_id)
        assert 2300 <= len(json.dumps(body)) <= 2800
        assert body["status"] == "queued" and body["job_id"] == str(job_id)
        hosts = {key.split("@", 1)[1] for key in body["targets"]}
        assert len(hosts) == 3
        for key in ("description", "overrides", "roles", "tasks", "sha1", "machine_type"):
            assert body[key]


def test_finish_body_is_config_plus_summary():
    passed, failed = write_bodies.finish_body(RUN, 1), write_bodies.finish_body(RUN, 7)
    assert (passed["status"], passed["success"]) == ("pass", True)
    assert (failed["status"], failed["success"]) == ("fail", False)
    assert failed["failure_reason"] and "duration" in passed
    assert passed["targets"] == write_bodies.create_body(RUN, 1)["targets"]


def test_the_api_takes_the_bodies(app, session):
    for n in range(write_bodies.NODE_COUNT):
        app.post("/nodes/", json.dumps({"name": write_bodies.node_name(n),
                                        "machine_type": "smithi", "up": True}))
    for job_id in (1, 2, 7):
        app.post(f"/runs/{RUN}/jobs/", json.dumps(write_bodies.create_body(RUN, job_id)))
        app.put(f"/runs/{RUN}/jobs/{job_id}/",
                json.dumps(write_bodies.running_body(RUN, job_id)))
        app.put(f"/runs/{RUN}/jobs/{job_id}/",
                json.dumps(write_bodies.finish_body(RUN, job_id)))
    run = app.get(f"/runs/{RUN}/").json
    assert run["results"]["pass"] == 2 and run["results"]["fail"] == 1
    links = session.scalar(select(func.count()).select_from(job_nodes)
                           .join(Job, Job.id == job_nodes.c.job_id))
    assert links == 9
    assert app.get(f"/nodes/{write_bodies.node_name(3)}/jobs/").json


def test_no_two_bodies_share_a_value():
    """Each body is built anew (the load generator sends them as they come, uncopied)."""
    first = write_bodies.finish_body(RUN, 1)
    first["overrides"]["ceph"]["conf"]["osd"]["debug osd"] = 0
    first["roles"][0].append("osd.9")
    first["targets"].clear()
    assert write_bodies.finish_body(RUN, 1)["overrides"]["ceph"]["conf"]["osd"]["debug osd"] \
        == 20
    assert write_bodies.create_body(RUN, 1)["roles"][0][-1] == "client.0"
    assert len(write_bodies.create_body(RUN, 1)["targets"]) == 3


class Recorder:
    """A load generator's client that keeps what it was asked to send."""

    def __init__(self):
        self.sent = []

    def request(self, method, path, body=None):
        self.sent.append((method, path, body))
        return 200, b"{}"


def test_each_client_posts_its_runs_jobs_in_order_then_reports_them():
    import threading
    owner = write_bodies.Slots()
    create = write_bodies.creates(lambda slot, n: (f"{RUN}-{slot}-{(n - 1) // 2}", n), owner)
    clients = [Recorder() for _ in range(3)]

    def client(c):
        for _ in range(4):
            create(c, None)
    threads = [threading.Thread(target=client, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:  # one client's runs, each run's jobs one after another
        runs = [path.split("/")[2] for _, path, _ in c.sent]
        assert runs[0] == runs[1] != runs[2] == runs[3]
        assert [body["job_id"] for _, _, body in c.sent] == ["1", "2", "3", "4"]
        assert {method for method, _, _ in c.sent} == {"POST"}
    jobs = write_bodies.posted(lambda slot, n: (f"{RUN}-{slot}-{(n - 1) // 2}", n), owner)
    assert len(jobs) == 12 and jobs == sorted(jobs)
    assert {(path.split("/")[2], int(body["job_id"])) for c in clients
            for _, path, body in c.sent} == set(jobs)

    report, recorder = write_bodies.reports(jobs, write_bodies.running_body), Recorder()
    for i in range(len(jobs)):
        report(recorder, i)
    assert [path for _, path, _ in recorder.sent] == [
        f"/runs/{run}/jobs/{job}/" for run, job in jobs]
    floor = write_bodies.reports(jobs, write_bodies.finish_body,
                                 lambda run, job: ("PUT", "/update/0"))
    floor(recorder, 0)
    assert recorder.sent[-1][:2] == ("PUT", "/update/0")
    assert recorder.sent[-1][2]["status"] in ("pass", "fail")
