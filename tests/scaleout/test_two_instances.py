"""docs/scaling.md, run: two `paddles serve` instances behind nginx (nginx_paddles.conf), on
one PostgreSQL primary with a streaming replica as PADDLES_DATABASE_READ_URL, artifacts on
an S3 protocol server. The deployment (tests/scaleout/conftest.py) takes some seconds to
start, so one test walks through the steps in order; the last one kills an instance.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
import requests
from sqlalchemy import text

from tests.factories import job_body, run_name
from tests.scaleout.cluster import wait_replayed
from tests.scaleout.conftest import BUCKET, READ_MAX_WAIT

pytestmark = pytest.mark.slow


def test_two_instances_behind_nginx(deployment):
    check_teuthology_writes_and_reads(deployment)
    check_event_stream_sees_writes_through_the_other_instance(deployment)
    check_lock_many_from_both_instances_never_double_allocates(deployment)
    check_artifact_crosses_instances_through_s3(deployment)
    check_read_your_writes_with_the_replica_held_back(deployment)
    check_killing_an_instance_under_write_load_loses_no_acknowledged_write(deployment)


def _requests_served(base: str) -> float:
    """Requests this instance has answered (its /metrics, all its workers)."""
    scrape = requests.get(base + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in scrape.splitlines()
               if line.startswith("paddles_http_requests_total{"))


def _replica_reads(d) -> dict[str, float]:
    found = {"replica": 0.0, "primary": 0.0}
    for instance in d.instances:
        for line in requests.get(instance.base + "/metrics", timeout=10).text.splitlines():
            if line.startswith("paddles_replica_reads_total{"):
                served_by = line.split('served_by="', 1)[1].split('"', 1)[0]
                found[served_by] += float(line.rsplit(" ", 1)[1])
    return found


def check_teuthology_writes_and_reads(d):
    """What teuthology's ResultsReporter and lock server do, through nginx, answered by
    both instances (round robin)."""
    before = [_requests_served(i.base) for i in d.instances]
    http = requests.Session()
    run = run_name()
    assert http.post(f"{d.nginx}/runs/", data=json.dumps({"name": run})).status_code == 200
    for n in range(1, 11):
        resp = http.post(f"{d.nginx}/runs/{run}/jobs/",
                         data=json.dumps(job_body(str(n), name=run, status="queued")))
        assert resp.status_code == 200 and resp.json() == {"job_id": str(n)}
    for n in range(1, 11):
        status = "pass" if n % 3 else "fail"
        assert http.put(f"{d.nginx}/runs/{run}/jobs/{n}/",
                        data=json.dumps({"status": status, "success": status == "pass"})
                        ).status_code == 200
        assert http.get(f"{d.nginx}/runs/{run}/jobs/{n}/").json()["status"] == status
    summary = http.get(f"{d.nginx}/runs/{run}/").json()  # a replica route
    assert summary["results"]["pass"] == 7 and summary["results"]["fail"] == 3
    assert summary["status"] == "finished fail"
    assert run in [r["name"] for r in http.get(f"{d.nginx}/runs/?count=5").json()]
    after = [_requests_served(i.base) for i in d.instances]
    assert all(a - b >= 5 for a, b in zip(after, before)), (before, after)


def _stream(base: str, run: str, seen: list, ready: threading.Event, stop: threading.Event):
    with requests.get(f"{base}/events/stream?type=job.*&run={run}", stream=True,
                      timeout=(5, 10)) as resp:
        assert resp.status_code == 200
        ready.set()
        for line in resp.iter_lines():
            if line.startswith(b"data:"):
                seen.append(json.loads(line[5:]))
            if stop.is_set():
                return


def check_event_stream_sees_writes_through_the_other_instance(d):
    """An SSE stream opened on one instance gets events written through the other:
    LISTEN/NOTIFY on the primary carries them across."""
    for listener, writer in ((d.instances[1], d.instances[0]),
                             (d.instances[0], d.instances[1])):
        run, seen = run_name(), []
        ready, stop = threading.Event(), threading.Event()
        reader = threading.Thread(target=_stream, args=(listener.base, run, seen, ready, stop),
                                  daemon=True)
        reader.start()
        assert ready.wait(10)
        for n in range(1, 4):
            assert requests.post(f"{writer.base}/runs/{run}/jobs/", data=json.dumps(
                {"job_id": str(n), "status": "queued"}), timeout=10).status_code == 200
        deadline = time.monotonic() + 15
        while len(seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()  # the next keep-alive comment (1 s) ends the reader
        assert sorted(e.get("job") for e in seen) == ["1", "2", "3"], seen
        reader.join(15)


def check_lock_many_from_both_instances_never_double_allocates(d):
    machine_type = f"scale{time.monotonic_ns() % 10 ** 6}"
    names = [f"{machine_type}{n:03d}.front.sepia.ceph.com" for n in range(30)]
    for name in names:
        assert requests.post(f"{d.nginx}/nodes/", data=json.dumps(
            {"name": name, "machine_type": machine_type, "up": True, "locked": False,
             "ssh_pub_key": "ssh-ed25519 AAAA test"}), timeout=10).status_code == 200

    def lock_until_short(worker: int) -> list[tuple[str, str]]:
        base = d.instances[worker % 2].base
        owner = f"worker{worker}@teuthology"
        got = []
        http = requests.Session()
        while True:
            resp = http.post(f"{base}/nodes/lock_many/", data=json.dumps(
                {"count": 2, "locked_by": owner, "machine_type": machine_type,
                 "description": f"job {worker}"}), timeout=30)
            if resp.status_code == 503:
                return got
            assert resp.status_code == 200, resp.text
            got += [(node["name"], owner) for node in resp.json()]

    with ThreadPoolExecutor(8) as pool:
        locked = [pair for found in pool.map(lock_until_short, range(8)) for pair in found]
    assert len(locked) == len(names)
    assert sorted(name for name, _ in locked) == names  # each node to one worker only
    with d.primary.connect() as conn:
        stored = dict(conn.execute(text("SELECT name, locked_by FROM nodes WHERE "
                                        "machine_type = :m"), {"m": machine_type}).all())
    assert stored == dict(locked)


def check_artifact_crosses_instances_through_s3(d):
    run = run_name()
    a, b = d.instances
    assert requests.post(f"{a.base}/runs/{run}/jobs/", data=json.dumps({"job_id": "1"}),
                         timeout=10).status_code == 200
    blob = b"".join(b"%06d teuthology.log line\n" % n for n in range(20000))
    url = f"/runs/{run}/jobs/1/artifacts/teuthology.log"
    assert requests.put(a.base + url, data=blob, timeout=30).status_code == 201
    for base in (b.base, d.nginx):
        resp = requests.get(base + url, timeout=30)
        assert resp.status_code == 200 and resp.content == blob
    s3 = boto3.client("s3", endpoint_url=d.s3_endpoint, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert any(key.startswith("blobs/") for key in keys)
    # through nginx as well: the upload streams through (proxy_request_buffering off)
    url2 = f"/runs/{run}/jobs/1/artifacts/again.log"
    assert requests.put(d.nginx + url2, data=blob[::-1], timeout=30).status_code == 201
    assert requests.get(a.base + url2, timeout=30).content == blob[::-1]


def _replay(d, action: str) -> None:
    with d.replica.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"SELECT pg_wal_replay_{action}()"))


def _on_replica(d, run: str) -> int:
    with d.replica.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM runs WHERE name = :r"),
                            {"r": run}).scalar_one()


def check_read_your_writes_with_the_replica_held_back(d):
    """A client writes, then reads a replica route: it sees its write. With the replica's
    replay paused (a replica as far behind as one gets), the reads wait
    PADDLES_DATABASE_READ_MAX_WAIT and the primary answers them; once the replica has
    caught up, it answers them itself."""
    wait_replayed(d.primary, d.replica)
    _replay(d, "pause")
    try:
        before = _replica_reads(d)
        run = run_name()
        assert requests.post(f"{d.nginx}/runs/{run}/jobs/", data=json.dumps(
            {"job_id": "1", "status": "queued"}), timeout=10).status_code == 200
        started = time.monotonic()
        summary = requests.get(f"{d.nginx}/runs/{run}/", timeout=30)
        waited = time.monotonic() - started
        assert summary.status_code == 200 and summary.json()["results"]["queued"] == 1
        assert run in [r["name"] for r in requests.get(f"{d.nginx}/runs/?count=5",
                                                       timeout=30).json()]
        assert _on_replica(d, run) == 0  # the replica really is behind
        after = _replica_reads(d)
        assert after["primary"] - before["primary"] == 2, (before, after)
        assert waited >= READ_MAX_WAIT * 0.9  # it gave the replica its chance first
    finally:
        _replay(d, "resume")
    wait_replayed(d.primary, d.replica)
    before = _replica_reads(d)
    assert requests.put(f"{d.nginx}/runs/{run}/jobs/1/", data=json.dumps(
        {"status": "running"}), timeout=10).status_code == 200
    summary = requests.get(f"{d.nginx}/runs/{run}/", timeout=30).json()
    assert summary["results"]["running"] == 1 and summary["results"]["queued"] == 0
    assert _replica_reads(d)["replica"] - before["replica"] == 1


def check_killing_an_instance_under_write_load_loses_no_acknowledged_write(d):
    """Writers go through nginx while instance A is SIGKILLed (master and workers): every
    write that got a 2xx is stored afterwards, the writes after the kill keep succeeding
    (nginx sends them to B), and only requests in flight on A at the kill can fail."""
    run = run_name()
    victim = d.instances[0]
    lock = threading.Lock()
    created, updated, failed = set(), {}, []
    after_kill = {"ok": 0}
    killed = threading.Event()
    stop = threading.Event()

    def writer(worker: int) -> None:
        http = requests.Session()
        n = 0
        while not stop.is_set():
            n += 1
            job = f"{worker}-{n}"
            try:
                resp = http.post(f"{d.nginx}/runs/{run}/jobs/", data=json.dumps(
                    job_body(job, name=run, status="queued")), timeout=30)
            except requests.RequestException as exc:
                failed.append(("POST", job, repr(exc)))
                continue
            if resp.status_code != 200:
                failed.append(("POST", job, resp.status_code))
                continue
            with lock:
                created.add(job)
                after_kill["ok"] += killed.is_set()
            try:
                resp = http.put(f"{d.nginx}/runs/{run}/jobs/{job}/",
                                data=json.dumps({"status": "running"}), timeout=30)
            except requests.RequestException as exc:
                failed.append(("PUT", job, repr(exc)))
                continue
            if resp.status_code == 200:
                with lock:
                    updated[job] = "running"
                    after_kill["ok"] += killed.is_set()
            else:
                failed.append(("PUT", job, resp.status_code))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        with lock:
            before_kill = len(created)
        victim.kill()
        killed.set()
        time.sleep(3.0)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert before_kill > 0 and after_kill["ok"] > 10, (before_kill, after_kill)
    # in flight on the victim at the kill: at most one request per writer
    assert len(failed) <= len(threads), failed
    with d.primary.connect() as conn:
        stored = dict(conn.execute(text(
            "SELECT j.job_id, j.status FROM jobs j JOIN runs r ON r.id = j.run_id "
            "WHERE r.name = :r"), {"r": run}).all())
    assert created <= set(stored), sorted(created - set(stored))
    assert all(stored[job] == status for job, status in updated.items())
    # and nginx serves on from the survivor, reads and writes alike
    for n in range(10):
        assert requests.get(f"{d.nginx}/runs/{run}/jobs/{sorted(created)[n]}/",
                            timeout=10).status_code == 200
    listed = requests.get(f"{d.nginx}/runs/{run}/jobs/", timeout=30).json()
    assert created <= {job["job_id"] for job in listed}
    print(f"\nkill under load: {len(created)} jobs created ({before_kill} before the kill), "
          f"{len(updated)} updated, {after_kill['ok']} writes acknowledged after it, "
          f"{len(failed)} failed: {failed}", file=sys.stderr)
