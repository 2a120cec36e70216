"""webhook_allow_private = False: no subscription (or delivery) to a non-public address."""
from __future__ import annotations

import http.server
import json
import threading

import pytest

from paddles.dispatch import send
from paddles.services.webhooks import Claimed
from tests.auth.conftest import bearer


@pytest.fixture
def guarded(auth_app_for, make_token):
    app = auth_app_for(webhook_allow_private=False)
    return app, bearer(make_token("admin", "admin"))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://localhost/hook", "http://[::1]/hook",
    "http://10.1.2.3/hook", "http://192.168.0.10/hook", "http://172.16.5.5/hook",
    "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/hook",
    "http://0.0.0.0/hook", "http://[::ffff:127.0.0.1]/hook", "http://[fd00::1]/hook",
    "http://224.0.0.1/hook",
])
def test_private_targets_are_refused(guarded, url):
    app, admin = guarded
    resp = app.post("/subscriptions/", json.dumps({"url": url}), headers=admin, status=400)
    assert "non-public address" in resp.json["message"]
    assert app.get("/subscriptions/", headers=admin).json == []


def test_public_target_is_accepted_and_cannot_be_moved_inside(guarded):
    app, admin = guarded
    sub = app.post("/subscriptions/", json.dumps({"url": "http://93.184.216.34/hook"}),
                   headers=admin, status=201).json
    app.put(f"/subscriptions/{sub['id']}/", json.dumps({"url": "http://127.0.0.1/x"}),
            headers=admin, status=400)
    assert app.get(f"/subscriptions/{sub['id']}/", headers=admin).json["url"] == \
        "http://93.184.216.34/hook"


def test_unresolvable_host_is_refused(guarded):
    app, admin = guarded
    resp = app.post("/subscriptions/", json.dumps({"url": "http://no-such-host.invalid/h"}),
                    headers=admin, status=400)
    assert resp.json["message"] == "url host no-such-host.invalid does not resolve"


def test_default_allows_private_targets(app):
    app.post("/subscriptions/", json.dumps({"url": "http://127.0.0.1:9/hook"}), status=201)


def test_dispatch_checks_again_before_sending():
    """A subscription made while private targets were allowed is not delivered to once
    they are not (and a DNS name re-pointed at a private address is caught the same way)."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        claimed = Claimed(1, "u", 1, "message", "{}", f"http://127.0.0.1:{server.server_port}/h",
                          "s" * 16, 1)
        status, error, _ms = send(claimed, 5, allow_private=False)
        assert status is None and error.startswith("refused: url host 127.0.0.1 is a non-public")
        assert hits == []
        assert send(claimed, 5)[0] == 204 and hits == ["/h"]
    finally:
        server.shutdown()
        server.server_close()
