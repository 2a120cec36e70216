"""The route table (paddles/routes.py) is consistent, and every template is found again
from a path of its own."""
from __future__ import annotations

import re

import pytest

from paddles import limits, openapi, routes


def _example_path(template: str) -> str:
    return re.sub(r"\{\w+\}", "x-1", template.replace("{path}", "dir/a b.log"))


@pytest.mark.parametrize("route", [r for r in routes.TABLE if r.documented],
                         ids=lambda r: r.template)
def test_each_documented_route_is_found_from_its_paths(route):
    path = _example_path(route.template)
    assert routes.route_template(path) == route.template
    assert routes.route_template(path.rstrip("/")) == route.template
    assert routes.route_of(path) is route


def test_templates_are_unique_and_documented_in_table_order():
    templates = [r.template for r in routes.TABLE]
    assert len(templates) == len(set(templates))
    assert list(openapi.document()["paths"]) == [r.template for r in routes.TABLE
                                                if r.documented]


def test_flags_fit_the_operations():
    for route in routes.TABLE:
        if route.body_limit is not None:
            assert route.body_limit in limits.DEFAULT_SIZES or route.body_limit == "artifact"
            assert {"post", "put"} & set(route.operations), route.template
        if route.streamed:
            assert route.body_limit == "artifact"
        if route.conditional or (route.replica and route.documented):
            assert "get" in route.operations, route.template


def test_undocumented_and_unknown_paths():
    assert routes.route_template("/runs/suite/rados/branch/main") == routes.RUN_FILTER_CHAIN
    assert routes.route_template("/runs/suite/rados/branch/main/") == routes.RUN_FILTER_CHAIN
    assert routes.route_of("/runs/suite/rados/branch/main").replica
    for path in ("/no/such", "//", "runs/x", "/runs/x/extra", "/exports/zzz",
                 "/nodes/a/lock/x"):
        assert routes.route_template(path) == routes.UNMATCHED, path
        assert routes.route_of(path) is None
    assert routes.route_template("") == routes.route_template("/") == "/"


def test_streamed_routes_are_the_artifact_uploads():
    assert routes.is_streamed("/runs/r/artifacts")
    assert routes.is_streamed("/runs/r/jobs/1/artifacts/logs/teuthology.log")
    assert not routes.is_streamed("/runs/r/jobs/1")
    assert not routes.is_streamed("/runs/r/artifactsx")
