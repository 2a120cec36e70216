"""The request schemas /openapi.json publishes for POST /events/, POST /subscriptions/ and
PUT /subscriptions/ID/ refuse exactly the bodies the server refuses (issue #19), and name the
server's 400 message for each (`x-message`).

The published schemas are judged by jsonschema_rs, an implementation independent of the
server's (Rust, ECMA 262 patterns). What JSON Schema cannot say is the server's alone (its
content checks): a NUL anywhere in `message` or `data`, their integers beyond 64 bits, a
numeric job id whose text is longer than the column. Property tests are bounded like the
fuzz: PADDLES_FUZZ_EXAMPLES raises the number of examples.
"""
from __future__ import annotations

import json
import os

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from paddles import openapi
from paddles.errors import InvalidRequest
from paddles.models.statuses import JOB_STATUS_VALUES, RUN_STATUS_VALUES
from paddles.schemas import events
from paddles.schemas.validation import Validator, missing_messages

MESSAGE, NEW_SUB, SUB = ("post", "/events/"), ("post", "/subscriptions/"), \
    ("put", "/subscriptions/{id}/")
URL = "http://x.test/"
STATUSES = ", ".join(dict.fromkeys(JOB_STATUS_VALUES + RUN_STATUS_VALUES))
CONTENT_CHECKS = ("must not contain NUL characters", "has an integer beyond 64 bits",
                  "job is longer than 32 characters")


def published(document: dict, route: tuple[str, str]) -> dict:
    method, path = route
    return document["paths"][path][method]["requestBody"]["content"]["application/json"][
        "schema"]


def judge(document: dict, route: tuple[str, str]):
    return jsonschema_rs.validator_for(published(document, route))


def test_the_served_schemas_are_the_ones_the_server_checks(app):
    served = app.get("/openapi.json").json
    assert published(served, MESSAGE) == json.loads(json.dumps(events.MESSAGE_SCHEMA))
    assert published(served, NEW_SUB) == json.loads(json.dumps(events.NEW_SUBSCRIPTION_SCHEMA))
    assert published(served, SUB) == json.loads(json.dumps(events.SUBSCRIPTION_SCHEMA))


@pytest.mark.parametrize("schema", [events.MESSAGE_SCHEMA, events.NEW_SUBSCRIPTION_SCHEMA,
                                    events.SUBSCRIPTION_SCHEMA])
def test_every_failure_has_its_message(schema):
    Validator.check_schema(schema)
    assert missing_messages(schema) == []


def test_a_failure_without_message_is_found():
    assert missing_messages({"type": "object", "properties": {
        "a": {"type": "string", "x-message": {"type": "a!"}, "maxLength": 3},
        "b": {"anyOf": [{"type": "string"}], "x-message": "b!"}}}) == [
        "/type", "/properties/a/maxLength"]


# (route, body, the server's message): every one refused by the published schema too
REFUSED = [
    (MESSAGE, {}, "could not find required key: 'message'"),
    (MESSAGE, {"message": None}, "could not find required key: 'message'"),
    (MESSAGE, {"message": "x", "zeta": 1, "extra": 2}, "unknown key: extra"),
    (MESSAGE, {"message": "x", "topic": "a..b"},
     "topic must be dot-separated words (letters, digits, _ and -)"),
    (MESSAGE, {"message": "x", "topic": "osd\n"},
     "topic must be dot-separated words (letters, digits, _ and -)"),
    (MESSAGE, {"message": "x", "topic": 7}, "topic must be a string"),
    (MESSAGE, {"message": "x", "topic": "a\x00"}, "topic must not contain NUL characters"),
    (MESSAGE, {"message": "x", "topic": "t" * 129}, "topic is longer than 128 characters"),
    (MESSAGE, {"message": "x", "data": [1]}, "data must be an object"),
    (MESSAGE, {"message": "x", "data": {"run": "r"}}, "data must not repeat message, run or job"),
    (MESSAGE, {"message": "x", "job": "1"}, "job needs run"),
    (MESSAGE, {"message": "x", "job": "1", "run": None}, "job needs run"),
    (MESSAGE, {"message": "x", "run": "r" * 513}, "run is longer than 512 characters"),
    (MESSAGE, {"message": "x", "run": ["r"]}, "run must be a string"),
    (MESSAGE, {"message": "x", "run": "r", "job": True}, "job must be a string"),
    (MESSAGE, {"message": "x", "run": "r", "job": "j" * 33}, "job is longer than 32 characters"),
    (MESSAGE, {"message": "x", "username": "u" * 129}, "username is longer than 128 characters"),
    (NEW_SUB, {}, "could not find required key: 'url'"),
    (NEW_SUB, {"url": ""}, "could not find required key: 'url'"),
    (SUB, {"url": None}, "could not find required key: 'url'"),
    (NEW_SUB, {"url": 5}, "url must be a string"),
    (NEW_SUB, {"url": "ftp://x/"}, "url must be an http:// or https:// URL"),
    (NEW_SUB, {"url": "http://x\n"}, "url must be an http:// or https:// URL"),
    (NEW_SUB, {"url": "http://x\x1c/"}, "url must be an http:// or https:// URL"),
    (NEW_SUB, {"url": "http://x/\x00"}, "url must not contain NUL characters"),
    (NEW_SUB, {"url": "http://" + "x" * 2042}, "url is longer than 2048 characters"),
    (NEW_SUB, {"url": URL, "recipients": [], "alerts": 1}, "unknown key: alerts"),
    (NEW_SUB, {"url": URL, "description": True}, "description must be a string"),
    (NEW_SUB, {"url": URL, "types": []},
     "types must be a non-empty list of event types or globs"),
    (NEW_SUB, {"url": URL, "types": ["job.%", 5]},
     "types must be a non-empty list of event types or globs"),
    (NEW_SUB, {"url": URL, "types": ["job.%"]}, "type must be an event type or a glob such as job.*"),
    (SUB, {"types": ["job.* run.*"]}, "type must be an event type or a glob such as job.*"),
    (NEW_SUB, {"url": URL, "criteria": 1}, "criteria must be an object"),
    (NEW_SUB, {"url": URL, "criteria": {"status": ["passed"]}},
     "criteria.status values must be job or run statuses: " + STATUSES),
    (NEW_SUB, {"url": URL, "criteria": {"status": ["passed", 3]}},
     "criteria.status must be a string or a list of strings"),
    (NEW_SUB, {"url": URL, "criteria": {"suite": "rados", "colour": "red"}},
     "unknown criteria key: colour (known: status, run, suite, branch, user, machine_type)"),
    (NEW_SUB, {"url": URL, "criteria": {"suite": 3, "colour": "red"}},
     "criteria.suite must be a string or a list of strings"),
    (NEW_SUB, {"url": URL, "criteria": {"run": []}},
     "criteria.run must be a string or a list of strings"),
    (NEW_SUB, {"url": URL, "criteria": {"branch": [""]}},
     "criteria.branch must be a string or a list of strings"),
    (NEW_SUB, {"url": URL, "verbosity": "loud"}, "verbosity must be one of quiet, status, verbose"),
    (SUB, {"compare": "yes"}, "compare must be a boolean"),
    (SUB, {"enabled": None}, "enabled must be a boolean"),
    (NEW_SUB, {"url": URL, "secret": "short"}, "secret must be at least 16 characters"),
    (NEW_SUB, {"url": URL, "secret": "s" * 257}, "secret is longer than 256 characters"),
    (NEW_SUB, {"url": URL, "secret": None}, "secret must be a string"),
]
# refused by the server's content checks alone: the published schema cannot say them
CONTENT_REFUSED = [
    (MESSAGE, {"message": {"k": "\x00"}}, "message must not contain NUL characters"),
    (MESSAGE, {"message": {"\x00": 1}}, "message must not contain NUL characters"),
    (MESSAGE, {"message": 2**64}, "message has an integer beyond 64 bits"),
    (MESSAGE, {"message": "x", "data": {"n": [-2**63 - 1]}}, "data has an integer beyond 64 bits"),
    (MESSAGE, {"message": "x", "run": "r", "job": 10**32}, "job is longer than 32 characters"),
]
ACCEPTED = [
    (MESSAGE, {"message": 0}),
    (MESSAGE, {"message": {"step": "thrash"}, "topic": "osd.thrash", "run": "r", "job": "7",
               "username": "me", "data": {"n": 2**64 - 1}}),
    (MESSAGE, {"message": [], "topic": None, "run": None, "job": None, "data": None}),
    (MESSAGE, {"message": "x", "run": "r", "job": 7.5}),
    (NEW_SUB, {"url": "https://ci.example.com/hooks?a=1", "types": [" job.* , run.status", ""],
               "criteria": {"status": "fail", "suite": ["rados", "rbd"], "run": "*-smithi"},
               "verbosity": "quiet", "compare": True, "enabled": False, "secret": "s" * 16,
               "description": 12}),
    (NEW_SUB, {"url": URL, "criteria": None, "description": None}),
    (NEW_SUB, {"url": URL, "criteria": 0}),
    (SUB, {}),
    (SUB, {"criteria": [], "types": ["*"]}),
]


def _ask(app, route, body):
    method, path = route
    if "{id}" in path:
        created = app.post("/subscriptions/", json.dumps({"url": URL}), status=201).json
        path = path.replace("{id}", str(created["id"]))
    return app.request(path, method=method.upper(), body=json.dumps(body).encode(),
                       expect_errors=True)


@pytest.mark.parametrize("route, body, message", REFUSED)
def test_refused_by_server_and_schema_alike(app, route, body, message):
    resp = _ask(app, route, body)
    assert (resp.status_int, resp.json) == (400, {"message": message})
    assert not judge(app.get("/openapi.json").json, route).is_valid(body)


@pytest.mark.parametrize("route, body, message", CONTENT_REFUSED)
def test_refused_by_the_content_checks_only(app, route, body, message):
    resp = _ask(app, route, body)
    assert (resp.status_int, resp.json) == (400, {"message": message})
    assert judge(app.get("/openapi.json").json, route).is_valid(body)


@pytest.mark.parametrize("route, body", ACCEPTED)
def test_accepted_by_server_and_schema_alike(app, route, body):
    resp = _ask(app, route, body)
    assert resp.status_int in (200, 201), resp.body
    assert judge(app.get("/openapi.json").json, route).is_valid(body)


# ---- properties: generated bodies, judged by the schema and by the server's parser -------

EXAMPLES = int(os.environ.get("PADDLES_FUZZ_EXAMPLES") or 0) * 25 or 300
PROPERTY = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# values near the rules: good and bad strings, types, statuses, globs, URLs
WORDS = st.sampled_from([
    "", " ", "a", "osd.thrash", "a..b", "a\n", "\x00", "x" * 129, "r" * 513, "s" * 16,
    "s" * 257, "job.*", "run.status", "job.%", " job.* , run.*", "job.* run.*", ",", "\x1c",
    "\ufeff", "http://x/", "https://h.test/p?q=1", "ftp://x/", "http://x\n", "http://a b",
    "fail", "dead", "finished fail", "passed", "quiet", "status", "loud", "message", "run",
    "job"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=False, allow_infinity=False), WORDS,
                    st.text(max_size=4))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(WORDS, st.sampled_from(
        ["status", "suite", "branch", "colour", "n"])), inner, max_size=3)), max_leaves=6)


GLOBS = st.lists(st.sampled_from(["rados", "*-smithi", "", "x" * 513, "\x00", 3]), max_size=2)
CRITERIA = st.dictionaries(
    st.sampled_from(["status", "run", "suite", "branch", "user", "machine_type", "colour"]),
    st.one_of(st.sampled_from(["fail", "finished dead", "passed", "rados", ""]), GLOBS),
    max_size=3)
# each key: values that pass, and values near its rules
GOOD = {
    "message": st.one_of(st.just("m"), st.dictionaries(st.text(max_size=3), SCALARS,
                                                       max_size=2)),
    "topic": st.sampled_from(["osd.thrash", "a", None]), "run": st.sampled_from(["r", None]),
    "job": st.one_of(st.sampled_from(["7", None]), st.integers(-10**6, 10**6)),
    "username": st.sampled_from(["me", None]),
    "data": st.one_of(st.none(), st.dictionaries(st.sampled_from(["n", "k"]), SCALARS,
                                                 max_size=2)),
    "url": st.sampled_from([URL, "https://h.test/p?q=1"]),
    "description": st.one_of(st.none(), st.text(max_size=5), st.integers()),
    "types": st.lists(st.sampled_from(["*", "job.*", " run.status , job.*"]), min_size=1,
                      max_size=2),
    "criteria": st.one_of(st.none(), st.dictionaries(
        st.sampled_from(["status", "run", "suite"]), st.sampled_from(["fail", "dead"]),
        max_size=2)),
    "verbosity": st.sampled_from(["quiet", "status", "verbose"]),
    "compare": st.booleans(), "enabled": st.booleans(), "secret": st.just("s" * 16),
}
GLOBS = st.lists(st.sampled_from(["rados", "*-smithi", "", "x" * 513, "\x00", 3]), max_size=2)
NEAR = {
    "message": st.dictionaries(WORDS, SCALARS, max_size=2), "topic": WORDS,
    "run": st.sampled_from(["r" * 513, ""]), "job": st.one_of(
        st.sampled_from(["j" * 33, "\x00"]), st.integers(-10**40, 10**40)),
    "username": WORDS, "data": st.dictionaries(WORDS, SCALARS, max_size=2),
    "url": st.sampled_from(["ftp://x/", "http://x\n", "", "http://a b", "http://" + "x" * 2042]),
    "description": WORDS, "types": st.lists(WORDS, max_size=3),
    "criteria": st.dictionaries(
        st.sampled_from(["status", "run", "suite", "branch", "user", "machine_type", "colour"]),
        st.one_of(st.sampled_from(["fail", "finished dead", "passed", "rados", ""]), GLOBS),
        max_size=3),
    "verbosity": st.sampled_from(["loud", None]), "compare": SCALARS, "enabled": SCALARS,
    "secret": st.sampled_from(["s" * 15, "s" * 257, "\x00" * 20]),
}


def _body(keys, rare):
    """Bodies of `keys`, the first (the required one) mostly there, the others each half the
    time; now and then a key of `rare` (which the schema does not know)."""
    def build(first, others, odd, extra):
        body = {} if first is _ABSENT else {keys[0]: first}
        body.update(others)
        if odd == 7:
            body[rare[0]] = extra
        return body

    def near(key):
        return st.one_of(GOOD[key], GOOD[key], GOOD[key], NEAR[key], VALUES)
    return st.builds(build, st.one_of(GOOD[keys[0]], near(keys[0]), st.just(_ABSENT)),
                     st.fixed_dictionaries({}, optional={key: near(key) for key in keys[1:]}),
                     st.integers(0, 9), VALUES)


_ABSENT = object()


def _agree(document, route, parse, body) -> None:
    """The schema refuses a body: so does the server. The schema takes it: so does the
    server, unless one of its content checks refuses it."""
    valid = judge(document, route).is_valid(body)
    try:
        parse(json.dumps(body).encode())
    except InvalidRequest as refused:
        assert not valid or any(check in refused.message for check in CONTENT_CHECKS), \
            (body, refused.message)
    else:
        assert valid, body


@PROPERTY
@given(_body(["message", "topic", "data", "run", "job", "username"], ["extra"]))
def test_message_bodies_judged_alike(body):
    _agree(openapi.document(), MESSAGE, events.parse_message_body, body)


@PROPERTY
@given(_body(["url", "description", "types", "criteria", "verbosity", "compare", "enabled",
              "secret"], ["recipients"]), st.booleans())
def test_subscription_bodies_judged_alike(body, partial):
    _agree(openapi.document(), SUB if partial else NEW_SUB,
           lambda raw: events.parse_subscription_body(raw, partial=partial), body)
