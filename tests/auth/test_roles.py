"""The 401/403/200 matrix: each role against each route class, on both databases."""
from __future__ import annotations

import json

import pytest

from paddles import auth, metrics, openapi
from paddles.services import tokens
from tests.auth.conftest import bearer
from tests.factories import job_body, run_name

RUN = run_name()
NODE = "smithi001.front.sepia.ceph.com"

# route class -> (role it needs, method, path, body, success status)
ROUTES = {
    "health": ("public", "GET", "/health", None, 200),
    "runs": ("read", "GET", "/runs/", None, 200),
    "export": ("read", "GET", "/exports/runs.csv", None, 200),
    "nodes": ("read", "GET", f"/nodes/{NODE}/", None, 200),
    "queue peek": ("read", "POST", "/queue/pop_queue/", {"queue": "smithi"}, 200),
    "report job": ("write", "POST", f"/runs/{RUN}/jobs/", job_body("2", name=RUN), 200),
    "update job": ("write", "PUT", f"/runs/{RUN}/jobs/1/", {"status": "running"}, 200),
    "artifact": ("write", "PUT", f"/runs/{RUN}/jobs/1/artifacts/teuthology.log",
                 b"INFO:teuthology.run:pass\n", 201),
    "message event": ("write", "POST", "/events/", {"message": "osd.3 thrashed"}, 201),
    "queue": ("write", "POST", "/queue/", {"queue": "mira"}, 200),
    "node create": ("lock", "POST", "/nodes/", {"name": "smithi002.front.sepia.ceph.com"}, 200),
    "node lock": ("lock", "PUT", f"/nodes/{NODE}/lock/",
                  {"locked": True, "locked_by": "alice@lab", "description": "debug"}, 200),
    "unlock_many": ("lock", "POST", "/nodes/unlock_many/",
                    {"names": [], "locked_by": "alice@lab"}, 200),
    "run delete": ("admin", "DELETE", f"/runs/{RUN}/", None, 200),
    "node delete": ("admin", "DELETE", f"/nodes/{NODE}/", None, 200),
    "subscriptions": ("admin", "GET", "/subscriptions/", None, 200),
}
TOKENS = {  # label -> roles; None: no credentials at all
    "none": None, "read": ("read",), "write": ("write",), "lock": ("lock",),
    "admin": ("admin",), "teuthology": ("read", "write", "lock"),
}


def _expected(token: str, route_class: str) -> int:
    role, *_, success = ROUTES[route_class]
    if role == "public":
        return success
    roles = TOKENS[token]
    if roles is None:
        return 401
    return success if "admin" in roles or role in roles else 403


def _call(app, route_class: str, headers: dict, status):
    _role, method, path, body, _ = ROUTES[route_class]
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    return app.request(path, method=method, body=body or b"", headers=headers, status=status,
                       expect_errors=True)


@pytest.mark.parametrize("route_class", list(ROUTES))
@pytest.mark.parametrize("token", list(TOKENS))
def test_role_matrix(auth_app, make_token, token, route_class):
    path = ROUTES[route_class][2]
    if RUN in path or NODE in path or route_class == "queue peek":  # what the route needs
        admin = bearer(make_token("setup", "admin"))
        auth_app.post(f"/runs/{RUN}/jobs/", json.dumps(job_body("1", name=RUN)), headers=admin)
        auth_app.post("/nodes/", json.dumps({"name": NODE, "machine_type": "smithi"}),
                      headers=admin)
        auth_app.post("/queue/", json.dumps({"queue": "smithi"}), headers=admin)
    headers = {} if TOKENS[token] is None else bearer(make_token(token, *TOKENS[token]))
    expected = _expected(token, route_class)
    resp = _call(auth_app, route_class, headers, expected)
    if expected >= 400:
        assert resp.content_type == "application/json"
        assert resp.json["message"]
    if expected == 401:
        assert resp.headers.getall("WWW-Authenticate") == ['Bearer realm="paddles"',
                                                           'Basic realm="paddles"']
    if expected == 403:
        role = ROUTES[route_class][0]
        assert resp.json["message"].startswith(f"token {token} lacks the {role} role")
        assert "WWW-Authenticate" not in resp.headers
    # the documented role of the route is the one the table gives it
    assert ROUTES[route_class][0] == auth.required_role(
        ROUTES[route_class][1], metrics.route_template(ROUTES[route_class][2]))


def _concrete(template: str) -> str:
    return (template.replace("{name}", RUN).replace("{job_id}", "1")
            .replace("{node}", "smithi001").replace("{path}", "teuthology.log")
            .replace("{id}", "1").replace("{value}", "main").replace("{start}", "2024-01-01")
            .replace("{end}", "2024-01-02"))


def _operations():
    for template, ops in openapi.document()["paths"].items():
        for method in ops:
            yield method.upper(), template


def test_every_documented_route_has_an_explicit_rule():
    missing = [(m, t) for m, t in _operations() if auth.rule_for(m, t) is None]
    assert missing == []


def test_every_documented_route_is_enforced(auth_app):
    """No credentials: every route but the public ones is a 401, before any routing."""
    for method, template in _operations():
        path = _concrete(template)
        expected = 200 if auth.required_role(method, template) == auth.PUBLIC else 401
        resp = auth_app.request(path, method=method, body=b"{}", expect_errors=True)
        if expected == 401:
            assert resp.status_int == 401, (method, path, resp.status, resp.body[:200])
        else:
            assert resp.status_int != 401, (method, path)


@pytest.mark.parametrize("method,route,role", [
    ("GET", "/runs/{name}/jobs/{job_id}/", "read"),
    ("HEAD", "/runs/{name}/", "read"),
    ("PUT", "/runs/{name}/jobs/{job_id}/", "write"),
    ("PUT", "/runs/{name}/jobs/{job_id}/artifacts/{path}", "write"),
    ("POST", "/events/", "write"),
    ("PUT", "/queue/", "write"),
    ("POST", "/queue/pop_queue/", "read"),
    ("POST", "/nodes/lock_many/", "lock"),
    ("PUT", "/nodes/{node}/lock/", "lock"),
    ("DELETE", "/nodes/{node}/", "admin"),
    ("DELETE", "/runs/{name}/jobs/{job_id}/artifacts/{path}", "admin"),
    ("GET", "/subscriptions/", "admin"),
    ("GET", "/metrics/", "public"),
    ("POST", "/errors/invalid/", "public"),
    ("GET", "/openapi.json", "public"),
    ("PATCH", "/runs/{name}/", "admin"),  # no rule: fail closed
    ("POST", "unmatched", "admin"),
    ("GET", "unmatched", "read"),
])
def test_rules_table(method, route, role):
    assert auth.required_role(method, route) == role


def test_admin_implies_every_role_and_others_are_independent():
    admin = tokens.Principal("a", frozenset({"admin"}))
    assert all(admin.has(role) for role in tokens.ROLES)
    writer = tokens.Principal("w", frozenset({"write"}))
    assert writer.has("write") and not writer.has("read") and not writer.has("lock")


def test_auth_off_by_default_needs_no_token(app):
    app.post(f"/runs/{RUN}/jobs/", json.dumps(job_body("1", name=RUN)), status=200)
    app.delete(f"/runs/{RUN}/", status=200)


def test_openapi_describes_security():
    from openapi_spec_validator import validate

    doc = openapi.document()
    validate(doc)
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "authToken", "basic"}
    assert doc["components"]["securitySchemes"]["authToken"] == {
        "type": "apiKey", "in": "header", "name": "Auth-Token",
        "description": "the API token in its own header"}
    for method, template in _operations():
        op = doc["paths"][template][method.lower()]
        role = auth.required_role(method, template)
        assert op["x-paddles-role"] == role
        if role == auth.PUBLIC:
            assert op["security"] == [] and "401" not in op["responses"]
        else:
            assert {"401", "403"} <= set(op["responses"]), (method, template)


def test_openapi_json_is_public(auth_app):
    doc = auth_app.get("/openapi.json", status=200).json
    assert doc["paths"]["/runs/"]["post"]["x-paddles-role"] == "write"
