"""A run's jobs rendered for its documents, each job's JSON kept by the job's row version.

Every change to a run or to any of its jobs, heartbeats included, moves the run's version,
and with it the key of its cached documents (paddles/cache.py). So while a run's jobs run,
its document is rarely served from the cache, and rendering every job again is most of a
read: a 100-job teuthology run is 300 KB of JSON, about 8 ms of Python per read. Between
two reads, most of the jobs have not changed.

On PostgreSQL every row version names itself: `xmin`, the transaction that wrote it. Each
UPDATE writes a new version under its own transaction id, whoever sends it (a request, an
admin command, another host), and a streaming replica has the same values. So `(job id,
xmin)` names a job's content exactly, and its rendering is kept in the response cache
under that key, within the same bound. A document's jobs then come from:

1. one narrow SELECT of the jobs' ids and row versions, in the document's order;
2. the full rows of only the jobs whose rendering is not kept;
3. the kept and the new renderings, passed into the document as orjson Fragments.

A job's rendering depends on its row alone (and the process's settings, which do not
change while it runs; a job never moves to another run). xmin is kept through freezing;
it is reused only after 2^32 transactions, long after an unused rendering has been evicted.

SQLite has no row versions; there, and with the cache off, every job is rendered from its
row, as before.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import orjson
from sqlalchemy.orm import Session

from . import serializers
from .cache import ResponseCache
from .services import jobs as job_service
from .settings import Settings


def run_jobs(session: Session, run_id: int, settings: Settings, cache: ResponseCache | None,
             status: str | None = None, *, newest_first: bool = False,
             fields: Sequence[str] | None = None) -> list[Any]:
    """The wire form of the jobs of the run `run_id` (of one status), in a document's order (see
    services.jobs.job_versions): dicts, or Fragments of kept renderings. Jobs cut down to
    some `fields` are rendered each time."""
    if cache is None or not cache.max_bytes or fields is not None or \
            session.get_bind().dialect.name != "postgresql":
        rows = job_service.run_job_rows(session, run_id, status, newest_first=newest_first)
        return serializers.job_list(rows, settings, fields)
    versions = job_service.job_versions(session, run_id, status, newest_first=newest_first)
    keys: list[Hashable] = [("job", job_id, version) for job_id, version in versions]
    kept = cache.get_many(keys)
    missing = [job_id for (job_id, _), body in zip(versions, kept) if body is None]
    rendered: dict[int, bytes] = {}
    if missing:
        rows = job_service.job_rows_by_id(session, missing)
        new: list[tuple[Hashable, bytes]] = []
        for row, job in zip(rows, serializers.job_list(rows, settings)):
            body = rendered[row.id] = orjson.dumps(job)
            new.append((("job", row.id, row.row_version), body))
        cache.put_many(new)
        if len(rendered) < len(missing):  # deleted since the versions were read
            return run_jobs(session, run_id, settings, None, status,
                            newest_first=newest_first)
    return [orjson.Fragment(rendered[job_id] if body is None else body)
            for (job_id, _), body in zip(versions, kept)]
