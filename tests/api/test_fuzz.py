"""Fuzz every operation of /openapi.json against the app, on SQLite and PostgreSQL.

For each operation, schemathesis' phases: the document's examples, coverage (boundary and
invalid values for every parameter and body property: wrong types, missing keys, odd
strings), then random requests, sent to the WSGI app in process. No answer may be a 500 (nor
another 5xx the document does not declare), and status, content type and body must be the
ones the document declares. Bounded: PADDLES_FUZZ_EXAMPLES random examples per operation
(default 3, derandomized so CI sees the same cases every run); raise it to fuzz longer,
e.g. `PADDLES_FUZZ_EXAMPLES=200 pytest tests/api/test_fuzz.py`, and set PADDLES_FUZZ_SEED
to draw other cases (or replay a run).
"""
from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, seed, settings as hyp_settings
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.pytest._test_builder import build_operation_test
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

from paddles import notify, openapi
from paddles.app import make_app
from paddles.db import make_session_factory
from paddles.settings import load_settings
from tests.conftest import _wipe

MAX_EXAMPLES = int(os.environ.get("PADDLES_FUZZ_EXAMPLES") or 3)
SEED = os.environ.get("PADDLES_FUZZ_SEED")


@schemathesis.check
def no_server_error(ctx, response, case):
    """No 500 ever; another 5xx only where the document declares it (503 from /ready, a
    short lock_many, the /errors/unavailable/ pseudo-route)."""
    code = response.status_code
    declared = case.operation.definition.raw.get("responses", {})
    if code >= 500 and (code == 500 or str(code) not in declared):
        raise AssertionError(f"{case.method} {case.formatted_path} -> {code}: "
                             f"{response.text[:500]}")
    return None


CHECKS = [no_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
RUN = "teuthology-2024-01-15_20:00:03-rados-main-distro-default-smithi"

SCHEMA = schemathesis.openapi.from_dict(openapi.document())
OPERATIONS = {op.label: op for op in
              (result.ok() for result in SCHEMA.get_all_operations())}


@pytest.fixture(scope="module")
def fuzz_app(database_url, engine, tmp_path_factory):
    """One app and one seeded database for every operation of a backend (state piles up, as
    on a real server); emptied when the module is done."""
    settings = load_settings(environ={}, database_url=database_url,
                             address="http://paddles.test",
                             data_dir=str(tmp_path_factory.mktemp("fuzz")),
                             events_stream_max_seconds=0.05, events_poll_interval=0.01,
                             events_keepalive=0.05)
    app = make_app(settings, session_factory=make_session_factory(engine))
    _seed(app)
    yield app
    _wipe(engine)
    # the event stream's LISTEN thread would outlive the throwaway database
    notify.forget(engine.url.render_as_string(hide_password=False))


def _seed(app) -> None:
    """A run with jobs, a node, a queue and an artifact, so some generated requests find
    something (most path values are random and answer 404)."""
    import webtest

    client = webtest.TestApp(app)
    client.post_json(f"/runs/{RUN}/jobs/", {"job_id": "1", "status": "queued",
                                            "queue": "smithi", "targets": {
                                                "u@smithi001.front.sepia.ceph.com": "k"}})
    client.post_json(f"/runs/{RUN}/jobs/", {"job_id": "2", "status": "pass", "success": True})
    client.post_json("/queue/", {"queue": "smithi"})
    client.put(f"/runs/{RUN}/jobs/1/artifacts/teuthology.log", b"hello\n")


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_fuzz(fuzz_app, label):
    """schemathesis' phases for one operation: the document's examples, coverage (boundary
    and invalid values for every parameter and body property), then random fuzzing."""
    def check(case):
        case.call_and_validate(app=fuzz_app, checks=CHECKS)

    test = build_operation_test(
        config=SCHEMA.config, operation=OPERATIONS[label], test_func=check, given_kwargs={},
        feedback=FeedbackSources(),
        explicit_settings=hyp_settings(
            max_examples=MAX_EXAMPLES, deadline=None, database=None,
            derandomize=SEED is None, suppress_health_check=list(HealthCheck)))
    if SEED is not None:
        test = seed(int(SEED))(test)
    test()
