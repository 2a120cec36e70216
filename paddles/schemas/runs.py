"""Run and job bodies (spec 3, 6.2): the writable job keys and the run names of URLs."""
from __future__ import annotations

from typing import Any

from ..models import Job
from .common import (BOOL, INT, JSONF, TEXT, Field, check_name, convert, parse_object,
                     parse_updated, require_key, stored)

JOB_FIELDS: dict[str, Field] = {
    "archive_path": stored(Job.archive_path), "description": TEXT, "duration": INT,
    "email": stored(Job.email), "failure_reason": TEXT, "flavor": stored(Job.flavor),
    "job_id": stored(Job.job_id), "kernel": JSONF, "last_in_suite": BOOL,
    "machine_type": stored(Job.machine_type), "name": stored(Job.name), "nuke_on_error": BOOL,
    "os_type": stored(Job.os_type), "os_version": stored(Job.os_version), "overrides": JSONF,
    "owner": stored(Job.owner), "pid": stored(Job.pid), "roles": JSONF,
    "sentry_event": stored(Job.sentry_event), "status": Field("status"), "success": BOOL,
    "branch": stored(Job.branch), "seed": INT, "sha1": stored(Job.sha1),
    "subset": stored(Job.subset), "suite": stored(Job.suite),
    "suite_branch": stored(Job.suite_branch), "suite_path": stored(Job.suite_path),
    "suite_relpath": stored(Job.suite_relpath), "suite_repo": stored(Job.suite_repo),
    "suite_sha1": stored(Job.suite_sha1), "targets": Field("object"), "tasks": JSONF,
    "timestamp": Field("datetime"), "teuthology_branch": stored(Job.teuthology_branch),
    "verbose": BOOL, "pcp_grafana_url": TEXT, "priority": INT, "user": stored(Job.user),
    "queue": stored(Job.queue), "package_source": stored(Job.package_source),
}
JOB_KEYS = tuple(JOB_FIELDS) + ("updated",)


def parse_run_name(name: str) -> str:
    """A run name taken from the URL where it creates the run (a job POST)."""
    return check_name("run name", name, 512)


def parse_run_body(raw: bytes) -> str:
    name = require_key(parse_object(raw), "name")
    return check_name("name", name, 512)


def parse_job_body(raw: bytes, *, timezone: str, allow_empty: bool = True) -> dict[str, Any]:
    """A job body reduced to known keys with wire types checked and converted."""
    body = parse_object(raw, allow_empty=allow_empty)
    clean: dict[str, Any] = {}
    for key, value in body.items():
        key = str(key).replace("-", "_")
        if key == "updated":
            clean[key] = None if value is None else parse_updated(value, timezone)
            continue
        field = JOB_FIELDS.get(key)
        if field is None:
            continue  # unknown keys are silently ignored
        clean[key] = convert(key, field, value)
    return clean
