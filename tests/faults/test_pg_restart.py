"""PostgreSQL restarts (cleanly, and by crash) under a concurrent write load.

Writers report runs and jobs the way teuthology does (POST the run, POST each job, PUT its
result) against paddles under gunicorn, while the test restarts the database twice: a fast
`pg_ctl restart`, then a crash (`pg_ctl stop -m immediate`, which kills every PostgreSQL
process and makes the next start recover from the WAL) with the server down for a while.
Requests during an outage must answer 503 with Retry-After, none may hang (every client has
a timeout, and none may hit it), no 500, and every write acknowledged with a 2xx, before or
after, must be in the database afterwards. An event-stream follower reconnecting with
Last-Event-ID across the restarts must see the job.created event of every acknowledged job,
in id order, and no event of a job that does not exist.
"""
from __future__ import annotations

import collections
import json
import threading
import time

import pytest
import requests
from sqlalchemy import text

from tests.factories import run_name
from tests.faults.conftest import call, gunicorn, wait_time

pytestmark = [pytest.mark.faults, pytest.mark.slow]

WRITERS = 6
CLIENT_TIMEOUT = 20.0  # seconds; far above any answer paddles should give


class Writer(threading.Thread):
    """One teuthology-like reporter: its own run, a job after another, each PUT to pass."""

    def __init__(self, base: str, run: str, halt: threading.Event):
        super().__init__(daemon=True)
        self.base, self.run_name, self.halt = base, run, halt
        self.run_acked = False
        self.jobs_acked: set[str] = set()  # POSTed with a 2xx
        self.results_acked: set[str] = set()  # PUT status=pass with a 2xx
        self.statuses: collections.Counter = collections.Counter()
        self.timeline: list[tuple[float, float, bool]] = []  # (sent, answered, 2xx)
        self.bad: list[str] = []  # answers breaking the contract (503 without Retry-After...)
        self.latencies: list[float] = []
        self.latencies_503: list[float] = []

    def request(self, session, method, path, body, *, retried: bool = False) -> int | str:
        sent = time.monotonic()
        status, resp = call(session, method, self.base + path, body, CLIENT_TIMEOUT)
        done = time.monotonic()
        self.statuses[status] += 1
        self.timeline.append((sent, done, isinstance(status, int) and status < 300))
        if isinstance(status, int) and status < 300:
            self.latencies.append(done - sent)
        elif status == 503:
            self.latencies_503.append(done - sent)
        if status == 503 and not (resp.headers.get("Retry-After", "").isdigit()
                                  and resp.json().get("message")):
            self.bad.append(f"503 without Retry-After or message: {resp.headers} {resp.text}")
        # a retry of a write whose 503 came after all (a commit whose answer was lost) may
        # find it done: "already exists" is then the right answer
        redone = retried and status == 400 and resp.json()["message"].endswith("already exists")
        if isinstance(status, int) and status >= 400 and status != 503 and not redone:
            self.bad.append(f"{method} {path}: {status} {resp.text}")
        return status

    def run(self):
        session = requests.Session()
        attempts = 0
        while not self.run_acked and not self.halt.is_set():
            status = self.request(session, "POST", "/runs/", {"name": self.run_name},
                                  retried=attempts > 0)
            attempts += 1
            self.run_acked = status == 200
            if status == 400:  # created by an attempt that was not acknowledged
                break
            if status != 200:
                time.sleep(0.05)
        number = 0
        while not self.halt.is_set():
            number += 1
            job_id = str(number)
            if self.request(session, "POST", f"/runs/{self.run_name}/jobs/",
                            {"job_id": job_id, "status": "running",
                             "description": f"rados/thrash/{job_id}"}) == 200:
                self.jobs_acked.add(job_id)
            else:
                # unacknowledged: it may or may not have committed; a new id either way
                time.sleep(0.05)
                continue
            if self.request(session, "PUT", f"/runs/{self.run_name}/jobs/{job_id}/",
                            {"status": "pass", "success": True}) == 200:
                self.results_acked.add(job_id)
            else:
                time.sleep(0.05)


class Follower(threading.Thread):
    """An event-stream client (job.created), reconnecting with Last-Event-ID as EventSource
    does whenever its stream ends or fails."""

    def __init__(self, base: str):
        super().__init__(daemon=True)
        self.base = base
        self.halt = threading.Event()
        self.last = 0
        self.ids: list[int] = []
        self.created: set[tuple[str, str]] = set()
        self.connects: collections.Counter = collections.Counter()

    def run(self):
        while not self.halt.is_set():
            try:
                with requests.get(f"{self.base}/events/stream", stream=True, timeout=(5, 20),
                                  params={"type": "job.created"},
                                  headers={"Last-Event-ID": str(self.last),
                                           "Accept": "text/event-stream"}) as resp:
                    self.connects[resp.status_code] += 1
                    if resp.status_code == 200:
                        self._read(resp)
            except requests.RequestException as exc:
                self.connects[type(exc).__name__] += 1
            self.halt.wait(0.3)

    def _read(self, resp):
        for line in resp.iter_lines():
            if line.startswith(b"id: "):
                self.last = int(line[4:])
            elif line.startswith(b"data: "):
                event = json.loads(line[6:])
                self.ids.append(event["id"])
                self.created.add((event["run"], event["job"]))
            if self.halt.is_set():
                return


def _outage(writers, after: float) -> tuple[float, float]:
    """Seconds from the first unanswered-or-failed request sent at or after `after` to the
    first 2xx answered after it: what clients saw of one outage."""
    timeline = sorted(t for w in writers for t in w.timeline if t[0] >= after)
    first_fail = next((sent for sent, _, ok in timeline if not ok), None)
    if first_fail is None:
        return 0.0, 0.0
    recovered = min((done for sent, done, ok in timeline if ok and sent > first_fail),
                    default=float("nan"))
    return first_fail - after, recovered - first_fail


def test_writes_survive_postgresql_restarts(pg_cluster, pg_db, tmp_path):
    # keep-alives every second: the follower notices the end of the test promptly
    with gunicorn(pg_cluster.url(), tmp_path, PADDLES_EVENTS_KEEPALIVE="1") as server:
        follower = Follower(server.base)
        follower.start()
        halt = threading.Event()
        writers = [Writer(server.base, run_name(suite=f"faults{n}"), halt)
                   for n in range(WRITERS)]
        for writer in writers:
            writer.start()
        time.sleep(2)

        restart_at = time.monotonic()
        pg_cluster.restart("fast")  # sessions terminated, shutdown checkpoint, start
        restart_took = time.monotonic() - restart_at
        time.sleep(2)

        crash_at = time.monotonic()
        pg_cluster.stop("immediate")  # every PostgreSQL process killed: a crash
        time.sleep(1.5)  # down: connections refused
        pg_cluster.start()  # crash recovery replays the WAL
        crash_down = time.monotonic() - crash_at
        recovered = wait_time(lambda: any(t[0] > crash_at + crash_down and t[2]
                                          for w in writers for t in w.timeline[-5:]), 20)
        time.sleep(2)
        halt.set()
        for writer in writers:
            writer.join(CLIENT_TIMEOUT + 10)
        assert not any(w.is_alive() for w in writers)
        acked_jobs = {(w.run_name, job) for w in writers for job in w.jobs_acked}
        streamed_all = wait_time(lambda: acked_jobs <= follower.created, 20)
        follower.halt.set()
        follower.join(25)
        log = server.log_text()

    with pg_db.connect() as conn:
        rows = conn.execute(text(
            "SELECT r.name, j.job_id, j.status FROM jobs j JOIN runs r ON r.id = j.run_id"
        )).all()
        runs = dict(conn.execute(text("SELECT name, count_total FROM runs")).all())
        counts = dict(conn.execute(text(
            "SELECT r.name, count(j.id) FROM runs r LEFT JOIN jobs j ON j.run_id = r.id "
            "GROUP BY r.name")).all())
    status_of = {(run, job): status for run, job, status in rows}
    acknowledged = found = 0
    for w in writers:
        acknowledged += w.run_acked + len(w.jobs_acked) + len(w.results_acked)
        found += w.run_acked and w.run_name in runs
        found += sum((w.run_name, job) in status_of for job in w.jobs_acked)
        found += sum(status_of.get((w.run_name, job)) == "pass" for job in w.results_acked)
    statuses = sum((w.statuses for w in writers), collections.Counter())
    latencies = sorted(x for w in writers for x in w.latencies)
    latencies_503 = sorted(x for w in writers for x in w.latencies_503) or [0.0]
    report = {
        "acknowledged": acknowledged, "found": found,
        "answers": {str(k): v for k, v in sorted(statuses.items(), key=str)},
        "restart_fast_s": round(restart_took, 2),
        "client_outage_restart_s": round(_outage(writers, restart_at)[1], 2),
        "crash_down_s": round(crash_down, 2),
        "client_outage_crash_s": round(_outage(writers, crash_at)[1], 2),
        "events_streamed": len(follower.ids),
        "stream_connects": {str(k): v for k, v in follower.connects.items()},
        "latency_2xx_p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
        "latency_2xx_max_ms": round(1000 * latencies[-1], 1),
        "latency_503_p50_ms": round(1000 * latencies_503[len(latencies_503) // 2], 1),
        "latency_503_max_ms": round(1000 * latencies_503[-1], 1),
    }
    print("\nPostgreSQL restart fault:", json.dumps(report))
    assert recovered, report
    assert acknowledged == found, report
    assert statuses[500] == 0 and statuses["timeout"] == 0, report
    assert statuses["connection error"] == 0, report
    assert statuses[503] > 0, report  # the outages were seen, and answered as such
    assert not [b for w in writers for b in w.bad], [b for w in writers for b in w.bad][:5]
    assert acknowledged > 20, report  # there was a load (hundreds on an idle machine)
    # run counters agree with the jobs that exist (no half-applied job write)
    assert runs and all(runs[name] == counts[name] for name in runs), (runs, counts)
    # the event stream: every acknowledged job's event, once, in order, none for a rolled-back
    # write; the follower had to reconnect across the restarts
    assert streamed_all, acked_jobs - follower.created
    assert follower.ids == sorted(set(follower.ids))
    assert follower.created <= set(status_of), follower.created - set(status_of)
    assert follower.connects[200] >= 2, follower.connects
    assert "Traceback" not in log, log[log.find("Traceback"):][:3000]
