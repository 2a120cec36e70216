"""/runs/NAME/jobs/, /runs/NAME/jobs/ID/ and /jobs/."""
from __future__ import annotations

from pecan import expose, request

from .. import rendered_jobs, serializers
from ..cache import cached_run_id_json
from ..schemas.common import check_name, parse_day, parse_fields, parse_paging
from ..schemas.runs import parse_job_body, parse_run_name
from ..services import jobs as job_service
from .artifacts import ArtifactsController, TestsController, TimelineController
from .base import Resource, child


# The two writes teuthology sends most, also served by paddles/direct.py without Pecan's
# dispatch: each is one function, which the controller method and the direct route call.

def post_job(db, settings, run_name: str, body: bytes) -> dict:
    """POST /runs/NAME/jobs/: a new job; its job_id."""
    fields = parse_job_body(body, timezone=settings.timezone, allow_empty=False)
    if fields.get("job_id") == "":
        del fields["job_id"]
    if fields.get("job_id") is not None:
        check_name("job_id", fields["job_id"], None)
    job = job_service.create_job(db, parse_run_name(run_name), fields, settings.timezone)
    return {"job_id": job.job_id}


def put_job(db, settings, run_name: str, job_id: str, body: bytes) -> dict:
    """PUT /runs/NAME/jobs/ID/: a job report or heartbeat."""
    fields = parse_job_body(body, timezone=settings.timezone)
    job_service.update_job(db, run_name, job_id, fields)
    return {}


class JobsController(Resource):
    def __init__(self, settings, run_name):
        super().__init__(settings)
        self._run_name = run_name

    @expose("json")
    def get_all(self, **_):
        params = self._params()
        fields = parse_fields(params.get("fields"), serializers.JOB_FIELD_NAMES)
        status = params.get("status")
        db = self._db()
        variant = ("jobs", status, None if fields is None else tuple(fields))
        return cached_run_id_json(
            request, db, self._run_name, variant,
            lambda run_id: rendered_jobs.run_jobs(db, run_id, self._settings,
                                                  request.response_cache, status,
                                                  newest_first=True, fields=fields),
            missing="associated run was not found")

    @expose("json")
    def post(self, **_):
        return post_job(self._db(), self._settings, self._run_name, self._body())

    @expose()
    def _lookup(self, job_id, *remainder):
        return JobController(self._settings, self._run_name, job_id), list(remainder)


class JobController(Resource):
    artifacts = child(lambda job: ArtifactsController(job._settings, job._run_name,
                                                      job._job_id))
    tests = child(lambda job: TestsController(job._settings, job._run_name, job._job_id))
    timeline = child(lambda job: TimelineController(job._settings, job._run_name,
                                                    job._job_id))

    def __init__(self, settings, run_name, job_id):
        super().__init__(settings)
        self._run_name = run_name
        self._job_id = job_id

    @expose("json")
    def get(self, **_):
        return serializers.job_detail(
            job_service.read_job(self._db(), self._run_name, self._job_id), self._settings)

    @expose("json")
    def put(self, **_):
        return put_job(self._db(), self._settings, self._run_name, self._job_id, self._body())

    @expose("json")
    def delete(self, **_):
        job_service.delete_job(self._db(), self._run_name, self._job_id)
        return {}


class RecentJobsController(Resource):
    """/jobs/: recent jobs across all runs."""

    @expose("json")
    def get_all(self, **_):
        params = self._params()
        limit, offset = parse_paging(params, 10)
        query = {key: params[key] for key in ("description", "status", "sha1", "branch", "user")
                 if params.get(key)}
        for key in ("posted_after", "posted_before"):
            if params.get(key):
                query[key] = parse_day(params[key])
        rows = job_service.list_recent_jobs(self._db(), query, limit=limit, offset=offset)
        return serializers.job_list(rows, self._settings)
