"""/runs/NAME/compare/: the run against a baseline (spec extras 3, "Comparison")."""
from __future__ import annotations

from pecan import expose

from ..schemas.common import check_string
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
            baseline = check_string("baseline", baseline, 512)
        return compare_service.compare_runs(self._db(), self._run_name, baseline)
