"""Realistic teuthology-shaped data, made through the API the way teuthology makes it."""
from __future__ import annotations

import itertools
import json

_seq = itertools.count(1)


def run_name(user="teuthology", when="2024-01-15_20:00:03", suite="rados", branch="main",
             machine_type="smithi", unique=True) -> str:
    tail = f"-{next(_seq)}" if unique else ""
    return f"{user}-{when}-{suite}-{branch}-distro-default-{machine_type}{tail}"


def job_body(job_id=None, **fields) -> dict:
    body = {
        "name": fields.pop("name", "teuthology-run"),
        "description": "rados/thrash/{clusters/fixed-2.yaml msgr/async.yaml}",
        "machine_type": "smithi", "os_type": "ubuntu", "os_version": "22.04",
        "owner": "scheduled_teuthology@teuthology", "suite": "rados", "branch": "main",
        "sha1": "4f1c0e2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e", "flavor": "default",
        "suite_branch": "main", "teuthology_branch": "main", "priority": 70,
        "overrides": {"ceph": {"conf": {"osd": {"debug osd": 20}}}},
        "roles": [["mon.a", "osd.0"], ["mon.b", "osd.1"]],
        "tasks": [{"install": None}, {"ceph": None}],
    }
    if job_id is not None:
        body["job_id"] = job_id
    body.update(fields)
    return body


def post_job(app, run, job_id=None, expect=200, **fields):
    """POST a job (fields override the realistic defaults); `expect` is the HTTP status."""
    resp = app.post(f"/runs/{run}/jobs/", json.dumps(job_body(job_id, **fields)),
                    status=expect)
    return resp.json


def put_job(app, run, job_id, expect=200, **fields):
    return app.put(f"/runs/{run}/jobs/{job_id}/", json.dumps(fields), status=expect).json


def post_run(app, name, expect=200):
    return app.post("/runs/", json.dumps({"name": name}), status=expect).json


def checked_out(engine) -> int:
    """Connections the engine's pool has handed out and not had back, once the process's
    background NOTIFY (pg.run_pooled_soon, after a write's events) has run: that thread
    holds a pooled connection of its own for a moment, whenever it runs."""
    from paddles import pg
    assert pg.wait_soon_idle()
    return engine.pool.checkedout()
