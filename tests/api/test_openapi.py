"""/openapi.json is a valid OpenAPI 3.1 document, and every route it lists is served."""
from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

from paddles import openapi

SAMPLES = {"name": "teuthology-2024-01-15_20:00:03-rados-main-distro-default-smithi",
           "job_id": "1", "value": "main", "start": "2024-01-01", "end": "2024-01-31",
           "node": "smithi001.front.sepia.ceph.com", "queue": "smithi",
           "path": "logs/teuthology.log", "id": "1"}


def test_document_is_valid_openapi_31(app):
    doc = app.get("/openapi.json").json
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def _documented():
    for path, ops in openapi.document()["paths"].items():
        for method in ops:
            yield method, path


@pytest.mark.parametrize("method,path", sorted(_documented()))
def test_every_documented_route_is_routed(app, method, path):
    url = re.sub(r"\{(\w+)\}", lambda m: SAMPLES[m.group(1)], path)
    if "text/event-stream" in str(openapi.document()["paths"][path][method]["responses"]):
        method = "head"  # a stream's GET ends only at its time limit; HEAD routes the same
    resp = app.request(url, method=method.upper(), body=b"{}", expect_errors=True)
    assert resp.status_int != 405, resp.body
    if resp.status_int == 404:  # a missing resource, never a missing route
        assert resp.json["message"] != "resource was not found" or path.startswith("/errors/")
