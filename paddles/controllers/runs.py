"""/runs/, /runs/<filter chain>/, /runs/queued/ and /runs/NAME/."""
from __future__ import annotations

from pecan import expose, request

from .. import filters, rendered_jobs, rendered_runs, serializers
from ..cache import cached_run_json
from ..schemas.common import parse_day, parse_fields, parse_paging
from ..schemas.runs import parse_run_body
from ..services import runs as run_service
from .artifacts import ArtifactsController, TestsController
from .base import Resource, child
from .compare import CompareController
from .jobs import JobsController


class RunsController(Resource):
    @expose("json")
    def get_all(self, **_):
        params = self._params()
        fields = parse_fields(params.get("fields"), serializers.RUN_SUMMARY_KEYS)
        limit, offset = parse_paging(params, self._settings.default_latest_runs_count)
        runs = run_service.list_runs(self._db(), limit=limit, offset=offset)
        return rendered_runs.summaries(runs, self._settings, request.response_cache, fields)

    @expose("json")
    def post(self, **_):
        name = parse_run_body(self._body())
        run_service.create_run(self._db(), name, self._settings.timezone)
        return {}

    @expose()
    def _lookup(self, name, *remainder):
        if name in filters.RESERVED:
            return RunFilterController(self._settings, [name, *remainder]), []
        return RunController(self._settings, name), list(remainder)

    def _route_samples(self):
        day = "{2024-01-15}"
        chains = [s for name in filters.TOP_LEVEL
                  for s in ((name,), (name, day if name == "date" else "{}"))]
        return [("{}",), ("queued",), *chains, ("date", "from", day, "to", day)]


class RunFilterController(Resource):
    """Every filter chain, value index, date range and /runs/queued/: one mechanism."""

    def __init__(self, settings, segments):
        super().__init__(settings)
        self._chain = filters.parse_chain(segments)

    @expose("json")
    def get_all(self, **_):
        chain, db = self._chain, self._db()
        if chain.queued:
            runs = run_service.list_queued_runs(db)
        elif chain.empty:
            runs = []
        elif chain.index is not None:
            return run_service.list_values(db, chain)
        elif chain.date_range is not None:
            runs = run_service.list_filtered_runs(db, chain, limit=None)
        else:
            params = self._params()
            limit, offset = parse_paging(params,
                                                 self._settings.default_latest_runs_count)
            since = None
            if chain.last != "date" and params.get("since"):
                since = parse_day(params["since"])
            runs = run_service.list_filtered_runs(db, chain, limit=limit, offset=offset,
                                                  since=since)
        return rendered_runs.summaries(runs, self._settings, request.response_cache)


class RunController(Resource):
    jobs = child(lambda run: JobsController(run._settings, run._name))
    artifacts = child(lambda run: ArtifactsController(run._settings, run._name))
    tests = child(lambda run: TestsController(run._settings, run._name))
    compare = child(lambda run: CompareController(run._settings, run._name))

    def __init__(self, settings, name):
        super().__init__(settings)
        self._name = name

    @expose("json")
    def get(self, **_):
        db, settings = self._db(), self._settings
        return cached_run_json(request, db, self._name, ("run",), lambda run: serializers
                               .run_detail(run, rendered_jobs.run_jobs(
                                   db, run.id, settings, request.response_cache), settings))

    @expose("json")
    def delete(self, **_):
        run_service.delete_run(self._db(), self._name)
        return {}
