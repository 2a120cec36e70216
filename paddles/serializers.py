"""Models to wire dicts: the only place that knows upstream's JSON shapes and quirks."""
from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any
from collections.abc import Iterable, Sequence
from urllib.parse import quote

import orjson
from sqlalchemy import Row

from .models import Artifact, Node, Queue, Run, TestCase, Timeline
from .models.statuses import COUNT_KEYS
from .models.nodes import NodeValues
from .models.runs import RunValues
from .schemas.runs import JOB_FIELDS
from .settings import Settings

RUN_SUMMARY_KEYS = ("name", "href", "user", "status", "results", "jobs_count", "posted",
                    "scheduled", "started", "updated", "branch", "suite", "machine_type",
                    "sha1", "priority", "flavor")
JOB_KEYS = ("log_href",) + tuple(JOB_FIELDS) + ("posted", "started", "updated")
JOB_FIELD_NAMES = JOB_KEYS + ("href",)


def wire_time(value: dt.datetime | None) -> str | None:
    """Naive UTC as Python's str(datetime): no 'T', no zone, fraction only when non-zero."""
    if value is None:
        return None
    if value.tzinfo is not None:
        if value.tzinfo is not dt.UTC:
            value = value.astimezone(dt.UTC)
        value = value.replace(tzinfo=None)
    return str(value)


def run_href(settings: Settings, name: str) -> list[str]:
    # Upstream emits a one-element list (a stray comma in its model); clients rely on it.
    return [f"{settings.address}/runs/{name}/"]


def run_summary(run: Run | RunValues, settings: Settings) -> dict[str, Any]:
    counts = run.counts()
    has_jobs = counts["total"] > 0
    sha1 = run.sha1 if has_jobs else "none"
    flavor = run.flavor if has_jobs else "none"
    results = {key: counts[key] for key in COUNT_KEYS}
    results.update(total=counts["total"], sha1=sha1, flavor=flavor)
    return {
        "name": run.name,
        "href": run_href(settings, run.name),
        "user": run.user,
        "status": run.status.value,
        "results": results,
        "jobs_count": counts["total"],
        "posted": wire_time(run.posted),
        "scheduled": wire_time(run.scheduled),
        "started": wire_time(run.started),
        "updated": wire_time(run.updated),
        "branch": run.branch,
        "suite": run.suite,
        "machine_type": run.machine_type,
        "sha1": sha1,
        "priority": run.priority if has_jobs else None,
        "flavor": flavor,
    }


def run_detail(run: Run | RunValues, jobs: list[Any], settings: Settings) -> dict[str, Any]:
    """The run document: its summary and its jobs in wire form (paddles/rendered_jobs.py)."""
    out = run_summary(run, settings)
    out["jobs"] = jobs
    return out


def _status_value(value) -> str:
    return value.value


_JOB_CONVERTERS = {"json": orjson.Fragment, "object": orjson.Fragment, "status": _status_value,
                   "datetime": wire_time}


@lru_cache(maxsize=16)
def _job_plan(row_fields: tuple[str, ...]) -> tuple[tuple[str, int, Any], ...]:
    """For each wire key of a job: its position in the row and how to convert it."""
    where = {name: i for i, name in enumerate(row_fields)}
    plan = [(key, where[key], _JOB_CONVERTERS.get(field.kind))
            for key, field in JOB_FIELDS.items()]
    plan += [(key, where[key], wire_time) for key in ("posted", "started", "updated")]
    return tuple(plan)


def job_detail(row: Row, settings: Settings) -> dict[str, Any]:
    """A job (spec 6.2) from a row of services.jobs.select_job_rows().

    JSON columns arrive as JSON text and go out as orjson Fragments: never parsed here.
    """
    return _job_detail(row, settings, _job_plan(row._fields))


def _job_detail(row: Row, settings: Settings, plan: tuple[tuple[str, int, Any], ...]
                ) -> dict[str, Any]:
    values = tuple(row)
    out: dict[str, Any] = {
        "log_href": settings.job_log_href_templ.format(run_name=row.run_name,
                                                       job_id=row.job_id)
    }
    for key, index, convert in plan:
        value = values[index]
        out[key] = convert(value) if convert is not None and value is not None else value
    return out


def job_list(rows: Iterable[Row], settings: Settings,
             fields: Sequence[str] | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    plan = None
    for row in rows:
        if plan is None:  # one plan for all: the rows of one result share their fields
            plan = _job_plan(row._fields)
        data = _job_detail(row, settings, plan)
        if fields is not None and "href" in fields:
            data["href"] = job_href(settings, row.run_name, row.job_id)
        out.append(sliced(data, fields))
    return out


def job_href(settings: Settings, run_name: str, job_id: str) -> list[str]:
    return [f"{settings.address}/runs/{run_name}/jobs/{job_id}/"]


def sliced(obj: dict[str, Any], fields: Sequence[str] | None) -> dict[str, Any]:
    if fields is None:
        return obj
    return {name: obj[name] for name in fields}


# ---- nodes and queues ------------------------------------------------------------------------

def node_detail(node: Node | NodeValues, _seen: frozenset[int] = frozenset()) -> dict[str, Any]:
    """The full node (spec 6.3); vm_host nests the host's full node (null on a cycle)."""
    host = node.vm_host
    seen = _seen | {node.id}
    return {
        "name": node.name,
        "description": node.description,
        "up": node.up,
        "machine_type": node.machine_type,
        "is_vm": bool(node.is_vm),
        "vm_host": node_detail(host, seen) if host is not None and host.id not in seen else None,
        "os_type": node.os_type,
        "os_version": node.os_version,
        "arch": node.arch,
        "locked": bool(node.locked),
        "locked_since": wire_time(node.locked_since),
        "locked_by": node.locked_by,
        "mac_address": node.mac_address,
        "ssh_pub_key": node.ssh_pub_key,
    }


def node_lock_record(node: Node) -> dict[str, Any]:
    """The short record the lock routes answer with (spec 9.3)."""
    return {"name": node.name, "locked": bool(node.locked), "locked_by": node.locked_by,
            "machine_type": node.machine_type, "is_vm": bool(node.is_vm)}


def queue_detail(queue: Queue, now: dt.datetime | None = None) -> dict[str, Any]:
    return {
        "queue": queue.name,
        "paused": queue.is_paused(now),
        "paused_by": queue.paused_by,
        "paused_since": wire_time(queue.paused_since),
        "paused_until": wire_time(queue.paused_until),
    }


def queue_stats(queue: Queue, queued_jobs: int, now: dt.datetime | None = None) -> dict[str, Any]:
    """Not paused: name, count, `paused: false`; paused: the queue object plus the count."""
    if not queue.is_paused(now):
        return {"queue": queue.name, "queued_jobs": queued_jobs, "paused": False}
    return {**queue_detail(queue, now), "queued_jobs": queued_jobs}


# ---- artifacts (new routes: not upstream shapes) ------------------------------------------

def artifacts_href(settings: Settings, run_name: str, job_id: str | None) -> str:
    """The artifacts collection of a job (or, job_id None, of the run), with a trailing '/'."""
    base = f"{settings.address}/runs/{run_name}/"
    return base + (f"jobs/{job_id}/artifacts/" if job_id is not None else "artifacts/")


def artifact_detail(artifact: Artifact, collection_href: str) -> dict[str, Any]:
    return {
        "name": artifact.name,
        "size": artifact.size,
        "sha256": artifact.sha256,
        "content_type": artifact.content_type,
        "content_encoding": artifact.content_encoding,
        "kind": artifact.kind.value,
        "created": wire_time(artifact.created),
        "parse_status": artifact.parse_status.value if artifact.parse_status else None,
        "parse_error": artifact.parse_error,
        "href": collection_href + quote(artifact.name, safe="/"),
    }


def test_case_detail(test: TestCase, job_id: str | None, artifact_name: str,
                     collection_href: str, *, details: bool = False) -> dict[str, Any]:
    """`collection_href`: the artifacts collection the test's artifact belongs to."""
    out = {
        "job_id": job_id,
        "test_id": test.test_id,
        "status": test.status.value,
        "start": wire_time(test.start),
        "stop": wire_time(test.stop),
        "duration": test.duration,
        "worker": test.worker,
        "tags": test.tags or [],
        "message": test.message,
        "details_artifact": collection_href + quote(artifact_name, safe="/"),
    }
    if details:
        out["details"] = test.details or {}
    return out


def timeline_detail(timeline: Timeline, artifact: Artifact, collection_href: str):
    return {"columns": timeline.columns, "rows": timeline.rows,
            "artifact": collection_href + quote(artifact.name, safe="/")}


# ---- events and webhooks ---------------------------------------------------------------------

def event_detail(event) -> dict[str, Any]:
    return {
        "id": event.id,
        "uuid": event.uuid,
        "time": wire_time(event.time),
        "topic": event.topic,
        "type": event.type,
        "subject": event.subject,
        "username": event.username,
        "run": event.run_name,
        "job": event.job_id,
        "data": event.data,
    }


def subscription_detail(sub, settings: Settings, *, secret: bool = False) -> dict[str, Any]:
    """The secret is shown once, when the subscription is created."""
    out = {
        "id": sub.id,
        "href": f"{settings.address}/subscriptions/{sub.id}/",
        "url": sub.url,
        "description": sub.description,
        "types": sub.types,
        "criteria": sub.criteria,
        "verbosity": sub.verbosity.value,
        "compare": sub.compare,
        "enabled": sub.enabled,
        "disabled_reason": sub.disabled_reason,
        "created": wire_time(sub.created),
        "updated": wire_time(sub.updated),
        "last_event_id": sub.last_event_id,
        "failures": sub.failures,
        "failing_since": wire_time(sub.failing_since),
        "last_success": wire_time(sub.last_success),
    }
    if secret:
        out["secret"] = sub.secret
    return out


def delivery_detail(delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "uuid": delivery.uuid,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "created": wire_time(delivery.created),
        "last_attempt": wire_time(delivery.last_attempt),
        "next_attempt": wire_time(delivery.next_attempt),
        "response_status": delivery.response_status,
        "error": delivery.error,
        "delivered": wire_time(delivery.delivered),
        "log": delivery.log or [],
    }


# what the `status` verbosity adds to the event envelope, when the event has it
_STATUS_KEYS = ("status", "old_status", "results", "message")


def webhook_payload(event, verbosity: str, *, subscription_id: int, obj=None,
                    compare=None) -> dict[str, Any]:
    """A webhook body. quiet: the event envelope (type, subject, ids, time); status: plus the
    status, previous status and run counts; verbose: plus the event data and the full
    object (as it was when the delivery was made). `compare` when the subscription asks."""
    out: dict[str, Any] = {"subscription": subscription_id,
                           "event": {k: v for k, v in event_detail(event).items() if k != "data"}}
    if verbosity in ("status", "verbose"):
        data = event.data or {}
        out.update((key, data[key]) for key in _STATUS_KEYS if key in data)
    if verbosity == "verbose":
        out["data"] = event.data
        out["object"] = obj
    if compare is not None:
        out["compare"] = compare
    return out


def broker_state(row, latest: int, configured: set[str]) -> dict[str, Any]:
    """A message broker's cursor row, for GET /events/brokers/."""
    return {
        "name": row.name,
        "protocol": row.name.split(":", 1)[0],
        "configured": row.name in configured,
        "last_event_id": row.last_event_id,
        "lag": max(0, latest - row.last_event_id),
        "published": row.published,
        "failures": row.failures,
        "failures_total": row.failures_total,
        "failing_since": wire_time(row.failing_since),
        "last_error": row.last_error,
        "last_success": wire_time(row.last_success),
        "next_attempt": wire_time(row.next_attempt),
        "held_by": row.owner,
    }
