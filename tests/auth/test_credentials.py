"""Where a token may be, revocation, anonymous read, and what failures look like."""
from __future__ import annotations

import json
import time

import pytest
import webob

from paddles.services import tokens
from tests.auth.conftest import basic, bearer
from tests.factories import job_body, run_name


def test_bearer_auth_token_header_and_basic_password_all_work(auth_app, make_token):
    secret = make_token("reporter", "read", "write")
    run = run_name()
    for i, headers in enumerate((bearer(secret), {"Auth-Token": secret}, basic(secret),
                                 basic(secret, user="any-name-at-all"))):
        auth_app.post(f"/runs/{run}/jobs/", json.dumps(job_body(str(i), name=run)),
                      headers=headers, status=200)
    assert len(auth_app.get(f"/runs/{run}/", headers=basic(secret)).json["jobs"]) == 4


def test_basic_auth_from_a_url_with_user_info(auth_app, make_token):
    """What requests sends for results_server: http://user:TOKEN@host/ (user info)."""
    import requests

    secret = make_token("teuthology", "read")
    prepared = requests.Request("GET", f"http://teuthology:{secret}@paddles.test/runs/").prepare()
    auth_app.get("/runs/", headers={"Authorization": prepared.headers["Authorization"]},
                 status=200)


def test_auth_token_header_wins_over_a_proxys_basic_auth(auth_app, make_token):
    secret = make_token("reader", "read")
    headers = {**basic("the-proxy-password", user="alice"), "Auth-Token": secret}
    auth_app.get("/runs/", headers=headers, status=200)


def test_revoked_token_is_refused_on_the_next_request(auth_app, make_token, session_factory):
    secret = make_token("ci", "read")
    auth_app.get("/runs/", headers=bearer(secret), status=200)
    with session_factory.begin() as session:
        _token, was_live = tokens.revoke_token(session, "ci")
    assert was_live
    resp = auth_app.get("/runs/", headers=bearer(secret), status=401)
    assert resp.json == {"message": "invalid, expired or revoked token"}
    assert 'Bearer realm="paddles", error="invalid_token"' in resp.headers.getall(
        "WWW-Authenticate")


def test_an_open_event_stream_ends_once_its_token_is_revoked(auth_app_for, make_token,
                                                               session_factory):
    """A stream outlives the request that opened it: it looks its token up at each read
    (each event batch or keep-alive) and ends, with a comment, once it is revoked."""
    app = auth_app_for(events_keepalive=0.1, events_stream_max_seconds=30)
    secret = make_token("streamer", "read")
    environ = webob.Request.blank("/events/stream?since=0", headers={
        **bearer(secret), "Accept": "text/event-stream"}).environ
    started: list[str] = []
    body = app.app(environ, lambda status, headers, exc_info=None: started.append(status))
    try:
        chunks = iter(body)
        assert next(chunks).startswith(b"retry: ") and started[0].startswith("200")
        assert next(chunks) == b": keep-alive\n\n"  # still open while the token is good
        with session_factory.begin() as session:
            tokens.revoke_token(session, "streamer")
        began = time.monotonic()
        rest = b"".join(chunks)
    finally:
        body.close()
    assert rest.endswith(b": token revoked or expired; the stream ends\n\n")
    assert time.monotonic() - began < 5  # not its 30 s limit


@pytest.mark.parametrize("headers,message", [
    ({}, "authentication required"),
    ({"Authorization": "Bearer pdl_not-a-real-token"}, "invalid, expired or revoked token"),
    ({"Auth-Token": "nope"}, "invalid, expired or revoked token"),
    ({"Auth-Token": " "}, "empty Auth-Token header"),
    ({"Authorization": "Digest username=x"}, "unsupported Authorization header"),
    ({"Authorization": "Basic !!!not-base64"}, "malformed Basic credentials"),
    ({"Authorization": "Basic dGV1dGhvbG9neQ=="}, "Basic credentials need the token"),
])
def test_missing_or_bad_credentials_are_401(auth_app, headers, message):
    resp = auth_app.get("/runs/", headers=headers, status=401)
    assert resp.content_type == "application/json"
    assert resp.json["message"].startswith(message)
    assert resp.headers["Access-Control-Allow-Origin"] == "*"  # CORS still added
    assert len(resp.headers.getall("WWW-Authenticate")) == 2


def test_head_gets_401_without_body(auth_app):
    resp = auth_app.head(f"/runs/{run_name()}/", status=401)
    assert resp.body == b""


def test_options_preflight_needs_no_token(auth_app):
    resp = auth_app.options("/runs/", status=200)
    assert resp.headers["Access-Control-Allow-Headers"] == "origin, authorization, accept"


def test_anonymous_read_off_by_default(auth_app):
    auth_app.get("/runs/", status=401)
    auth_app.get("/nodes/", status=401)


def test_anonymous_read_on(auth_app_for, make_token):
    app = auth_app_for(auth_anonymous_read=True)
    run = run_name()
    app.get("/runs/", status=200)
    app.get("/nodes/", status=200)
    app.post("/queue/stats/", json.dumps({"queue": "none"}), status=400)  # a read, by POST
    # writes still need a token, and the right one
    app.post(f"/runs/{run}/jobs/", json.dumps(job_body("1", name=run)), status=401)
    lock_only = make_token("locker", "lock")
    app.post(f"/runs/{run}/jobs/", json.dumps(job_body("1", name=run)),
             headers=bearer(lock_only), status=403)
    # a token without the read role reads anyway (anyone may), a bad one is still refused
    app.get("/runs/", headers=bearer(lock_only), status=200)
    app.get("/runs/", headers=bearer("pdl_wrong"), status=401)
    app.get("/subscriptions/", status=401)  # admin-only reads are not anonymous


def test_secret_is_stored_only_as_its_hash(make_token, session_factory):
    secret = make_token("hashed", "read")
    with session_factory() as session:
        (token,) = tokens.list_tokens(session, live_only=True)
    assert secret.startswith("pdl_") and len(secret) == 47
    assert token.secret_sha256 == tokens.digest(secret) and secret not in repr(vars(token))
    assert token.prefix == secret[:12]


def test_token_rules(session_factory):
    with session_factory.begin() as session:
        token, _ = tokens.create_token(session, "multi", ["lock", "read", "read"], "bob@lab")
        assert token.roles == ["read", "lock"]
        for name, roles, message in (("x", ["root"], "unknown role 'root'"),
                                     ("x", [], "at least one role"),
                                     ("bad name", ["read"], "a token name"),
                                     ("multi", ["read"], "already exists")):
            with pytest.raises(Exception, match=message):
                tokens.create_token(session, name, roles)


def test_settings_from_environment_and_config_file(tmp_path):
    from paddles.settings import load_settings

    off = load_settings(environ={})
    assert (off.auth_enabled, off.auth_anonymous_read, off.webhook_allow_private) == \
        (False, False, True)
    on = load_settings(environ={"PADDLES_AUTH_ENABLED": "yes", "PADDLES_AUTH_ANONYMOUS_READ": "1",
                                "PADDLES_WEBHOOK_ALLOW_PRIVATE": "off"})
    assert (on.auth_enabled, on.auth_anonymous_read, on.webhook_allow_private) == \
        (True, True, False)
    with pytest.raises(ValueError, match="PADDLES_AUTH_ENABLED='maybe' is not a valid boolean"):
        load_settings(environ={"PADDLES_AUTH_ENABLED": "maybe"})
    config = tmp_path / "config.py"
    config.write_text('paddles = {"auth_enabled": True, "auth_anonymous_read": True}\n')
    from_file = load_settings(config, environ={})
    assert from_file.auth_enabled and from_file.auth_anonymous_read


def test_access_log_names_the_token_never_the_secret(auth_app, make_token, caplog):
    import logging

    secret = make_token("reporter", "read")
    with caplog.at_level(logging.INFO):
        auth_app.get("/runs/", headers=bearer(secret), status=200)
        auth_app.get("/runs/", headers=bearer(secret + "x"), status=401)
    access = [r for r in caplog.records if r.name == "paddles.access"]
    assert access[0].getMessage().endswith(" token=reporter")
    assert access[0].fields["token"] == "reporter" and "token" not in access[1].fields
    refused = [r for r in caplog.records if r.name == "paddles.auth"]
    assert [r.levelname for r in refused] == ["WARNING"]
    assert "invalid, expired or revoked token" in refused[0].getMessage()
    assert not [r for r in caplog.records if secret[4:] in r.getMessage()]


def test_database_down_is_503_not_500(settings):
    """The token lookup needs the database: while it is unreachable, a clear 503."""
    import dataclasses

    import webtest

    from paddles.app import make_app
    from paddles.db import make_engine, make_session_factory

    engine = make_engine("postgresql+psycopg2://postgres@127.0.0.1:1/paddles",
                         pool_size=1, max_overflow=0)
    try:
        app = webtest.TestApp(make_app(dataclasses.replace(settings, auth_enabled=True),
                                       session_factory=make_session_factory(engine)))
        resp = app.get("/runs/", headers=bearer("pdl_anything"), status=503)
        assert resp.json == {"message": "database unavailable; please retry"}
        assert resp.headers["Retry-After"] == "5"
        app.get("/health", status=200)  # public routes never look a token up
    finally:
        engine.dispose()


def test_refusals_are_counted_in_metrics(auth_app):
    def count() -> float:
        text = auth_app.get("/metrics", status=200).text
        line = 'paddles_http_requests_total{method="GET",route="/runs/",status="401"}'
        return sum(float(row.split()[-1]) for row in text.splitlines() if row.startswith(line))

    before = count()
    auth_app.get("/runs/", status=401)
    assert count() == before + 1
