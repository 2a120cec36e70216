"""Run and job bodies (spec 3, 6.2): the writable job keys and the run names of URLs."""
from __future__ import annotations

from typing import Any

from .common import (BOOL, INT, JSONF, TEXT, Field, check_name, convert, parse_object,
                     parse_updated, require_key, string)

JOB_FIELDS: dict[str, Field] = {
    "archive_path": string(512), "description": TEXT, "duration": INT, "email": string(128),
    "failure_reason": TEXT, "flavor": string(128), "job_id": string(32), "kernel": JSONF,
    "last_in_suite": BOOL, "machine_type": string(32), "name": string(512), "nuke_on_error": BOOL,
    "os_type": string(32), "os_version": string(16), "overrides": JSONF, "owner": string(128),
    "pid": string(32), "roles": JSONF, "sentry_event": string(128), "status": Field("status"),
    "success": BOOL, "branch": string(128), "seed": INT, "sha1": string(40), "subset": string(32),
    "suite": string(256), "suite_branch": string(128), "suite_path": string(256),
    "suite_relpath": string(256), "suite_repo": string(256), "suite_sha1": string(40),
    "targets": Field("object"), "tasks": JSONF, "timestamp": Field("datetime"),
    "teuthology_branch": string(64), "verbose": BOOL, "pcp_grafana_url": TEXT, "priority": INT,
    "user": string(64), "queue": string(32), "package_source": string(32),
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
