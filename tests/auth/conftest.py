"""An app with authentication on (both databases), and tokens made through the service."""
from __future__ import annotations

import base64
import dataclasses

import pytest
import webtest

from paddles.app import make_app
from paddles.services import tokens


@pytest.fixture
def make_token(session_factory):
    """make_token("name", "read", "write", owner=None) -> the secret (committed)."""

    def make(name: str, *roles: str, owner: str | None = None) -> str:
        with session_factory.begin() as session:
            _token, secret = tokens.create_token(session, name, roles, owner)
        return secret

    return make


@pytest.fixture
def auth_app_for(settings, session_factory, tmp_path):
    """auth_app_for(auth_anonymous_read=True, ...) -> a webtest app with auth on."""

    def build(**overrides) -> webtest.TestApp:
        auth_settings = dataclasses.replace(settings, auth_enabled=True,
                                            data_dir=str(tmp_path / "data"), **overrides)
        return webtest.TestApp(make_app(auth_settings, session_factory=session_factory))

    return build


@pytest.fixture
def auth_app(auth_app_for):
    return auth_app_for()


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def basic(secret: str, user: str = "teuthology") -> dict:
    raw = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}
