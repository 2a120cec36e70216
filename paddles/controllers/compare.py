"""/runs/NAME/compare/: the run against a baseline (spec extras 3, "Comparison")."""
from __future__ import annotations

from pecan import expose

from .. import openapi, schemas
from ..openapi import RUN, _ok, _op, _q
from ..services import compare as compare_service
from .base import Resource


class CompareController(Resource):
    def __init__(self, settings, run_name):
        super().__init__(settings)
        self._run_name = run_name

    @expose("json")
    def get_all(self, **_):
        baseline = self._params().get("baseline") or None
        if baseline is not None:
            baseline = schemas.check_string("baseline", baseline, 512)
        return compare_service.compare_runs(self._db(), self._run_name, baseline)


def _openapi_paths() -> dict:
    entries = {"type": "array", "items": {"type": "object"}}
    categories = {"type": "object", "properties": {
        c: entries for c in compare_service.CATEGORIES}}
    counts = {"type": "object", "properties": {
        c: {"type": "integer"} for c in compare_service.CATEGORIES}}
    return {"/runs/{name}/compare/": {"get": _op(
        "regressions, fixes, new failures, still failing, added and removed jobs (matched by "
        "description) and test cases (by test_id) against a baseline run; by default the "
        "most recent earlier finished run with the same suite, branch and machine type",
        params=[RUN, _q("baseline", "the run to compare with")],
        ok=_ok({"type": "object", "properties": {
            "run": {"type": "string"}, "baseline": {"type": ["string", "null"]},
            "counts": {"type": "object", "properties": {"jobs": counts, "tests": counts}},
            "jobs": categories, "tests": categories}}),
        errors=(400, 404))}}


openapi.EXTRA_PATHS.append(_openapi_paths)
openapi.document.cache_clear()
