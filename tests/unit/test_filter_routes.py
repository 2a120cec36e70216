"""Every /runs/<filter>/... path is named as a filter route (metrics label, replica
routing, body limit), as Pecan dispatches it; the filter names come from filters.FILTERS."""
from __future__ import annotations

import pytest

from paddles import filters, hooks, routes
from paddles.commands import export

CHAIN = routes.RUN_FILTER_CHAIN


@pytest.mark.parametrize("path", [
    "/runs/date/2024-01-15/branch/main/",            # a chain that starts with date
    "/runs/date/today/status/running",
    "/runs/branch/main/date/from/2024-01-01/to/2024-01-31/",  # a range ending a chain
    "/runs/branch/main/date/from/2024-01-01/",
    "/runs/branch/main/suite/",                      # the index of a chain
    "/runs/user/artifacts/suite/rados/",             # a user named "artifacts"
    "/runs/branch/jobs/suite/tests/",                # branch "jobs", suite "tests"
    "/runs/flavors/default/flavor/crimson/",
])
def test_chains_are_the_chain_route(path):
    assert routes.route_template(path) == CHAIN
    assert hooks.reads_from_replica("GET", path)


@pytest.mark.parametrize("path,template", [
    ("/runs/branch/jobs/", "/runs/branch/{value}/"),  # not the jobs of a run "branch"
    ("/runs/date/2024-01-15/", "/runs/date/{value}/"),
    ("/runs/date/from/2024-01-01/to/2024-01-31/", "/runs/date/from/{start}/to/{end}/"),
    ("/runs/queued/", "/runs/queued/"),
    ("/runs/flavors/", "/runs/flavors/"),
    ("/runs/a-run/jobs/1/", "/runs/{name}/jobs/{job_id}/"),
    ("/runs/a-run/artifacts/x/y.log", "/runs/{name}/artifacts/{path}"),
])
def test_filter_values_never_take_run_routes(path, template):
    assert routes.route_template(path) == template


def test_filter_names_come_from_the_filter_table():
    assert set(filters.TOP_LEVEL.values()) == set(filters.FILTERS)
    assert routes.RUN_FILTERS == tuple(filters.TOP_LEVEL)
    assert {f"/runs/{name}/" for name in filters.TOP_LEVEL} <= set(routes.BY_TEMPLATE)
    assert filters.QUERY_FILTERS == tuple(n for n in filters.FILTERS if n != "date")
    parser = export.register(__import__("argparse").ArgumentParser().add_subparsers())
    runs = parser._subparsers._group_actions[0].choices["runs"]
    options = {a.dest for a in runs._actions}
    assert set(filters.QUERY_FILTERS) | set(filters.QUERY_BOUNDS) <= options
