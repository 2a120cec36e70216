"""Authentication: API tokens checked in a WSGI layer before Pecan routes the request.

Off unless `auth_enabled` (PADDLES_AUTH_ENABLED=1); then make_app puts AuthMiddleware
between WireMiddleware (slashes collapsed, OPTIONS answered, CORS added) and Pecan.

A token is accepted in any of three places, first found wins:
1. `Auth-Token: <secret>`;
2. `Authorization: Bearer <secret>`;
3. `Authorization: Basic ...` with the secret as the password and any user name, which is
   what requests sends for teuthology's `results_server: http://user:SECRET@host/`.
(The Auth-Token header comes first so that a proxy's own basic auth can sit in front.)

The role a request needs is decided by RULES, the access policy of the route table
(paddles/routes.py), keyed by HTTP method and route template (as routes.route_template
finds it). Answers: 401 (no, malformed, unknown, expired or revoked credentials, with
WWW-Authenticate) and 403 (a valid token without the role), both `{"message": ...}`.
The token is looked up on every request (one indexed SELECT on the primary database), so
a revocation holds from the next request on; an open event stream looks it up again at
each read (controllers/events.EventStream).
"""
from __future__ import annotations

import base64
import binascii
import logging

from sqlalchemy.exc import DBAPIError

from . import routes
from .middleware import PRINCIPAL_KEY
from .responses import database_error_response, error_response
from .services import tokens
from .routes import PUBLIC, RULES, Rule, required_role, rule_for  # noqa: F401 (the policy)
from .services.tokens import READ

log = logging.getLogger(__name__)

REALM = 'realm="paddles"'


class BadCredentials(Exception):
    pass


def presented_secret(environ) -> str | None:
    """The token a request carries, or None; BadCredentials when a header is malformed."""
    header = environ.get("HTTP_AUTH_TOKEN")
    if header is not None:
        if not header.strip():
            raise BadCredentials("empty Auth-Token header")
        return header.strip()
    authorization = environ.get("HTTP_AUTHORIZATION")
    if authorization is None:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise BadCredentials("malformed Basic credentials") from None
        _user, colon, password = decoded.partition(":")
        if not colon or not password:
            raise BadCredentials("Basic credentials need the token as the password")
        return password
    raise BadCredentials("unsupported Authorization header: use Bearer or Basic")


def _challenge(error: str | None = None) -> list[tuple[str, str]]:
    bearer = f"Bearer {REALM}" + (f', error="{error}"' if error else "")
    return [("WWW-Authenticate", bearer), ("WWW-Authenticate", f"Basic {REALM}")]


class AuthMiddleware:
    """Lets a request through to the app only when its credentials allow its route."""

    def __init__(self, app, session_factory, *, anonymous_read: bool = False):
        self.app = app
        self.session_factory = session_factory
        self.anonymous_read = anonymous_read

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        route = routes.route_template(environ.get("PATH_INFO") or "/")
        role = required_role(method, route)
        if role == PUBLIC:
            return self.app(environ, start_response)
        anonymous_ok = self.anonymous_read and role == READ
        try:
            secret = presented_secret(environ)
        except BadCredentials as exc:
            return self._deny(environ, start_response, 401, str(exc), _challenge("invalid_request"))
        if secret is None:
            if anonymous_ok:
                return self.app(environ, start_response)
            return self._deny(environ, start_response, 401, "authentication required: send an "
                              "API token (Authorization: Bearer, Auth-Token, or as the basic-auth "
                              "password)", _challenge())
        try:
            with self.session_factory() as session:
                principal = tokens.authenticate(session, secret)
        except DBAPIError as exc:
            return database_error_response(exc)(environ, start_response)
        if principal is None:
            return self._deny(environ, start_response, 401,
                              "invalid, expired or revoked token", _challenge("invalid_token"))
        if not (principal.has(role) or anonymous_ok):
            return self._deny(environ, start_response, 403,
                              f"token {principal.name} lacks the {role} role needed for "
                              f"{method} {route}", [])
        environ[PRINCIPAL_KEY] = principal
        return self.app(environ, start_response)

    @staticmethod
    def _deny(environ, start_response, status: int, message: str, headers):
        log.warning("%d %s %s from %s: %s", status, environ.get("REQUEST_METHOD"),
                    environ.get("PATH_INFO"), environ.get("REMOTE_ADDR"), message)
        response = error_response(status, message)
        for key, value in headers:
            response.headers.add(key, value)
        return response(environ, start_response)


def principal_of(environ) -> tokens.Principal | None:
    """The request's token (None: auth off, or an anonymous read)."""
    return environ.get(PRINCIPAL_KEY)


# ---- OpenAPI ------------------------------------------------------------------------------

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "Authorization: Bearer <API token>"},
    "authToken": {"type": "apiKey", "in": "header", "name": "Auth-Token",
                  "description": "the API token in its own header"},
    "basic": {"type": "http", "scheme": "basic",
              "description": "any user name, the API token as the password (teuthology's "
                             "results_server: http://user:TOKEN@host/)"},
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}


def describe_security(doc: dict) -> None:
    """Add the security schemes, each operation's role (`x-paddles-role`, from RULES) and
    its 401/403 answers to the OpenAPI document."""
    doc["components"]["securitySchemes"] = SECURITY_SCHEMES
    doc["security"] = [{name: []} for name in SECURITY_SCHEMES]
    doc["info"]["description"] += (
        " Authentication is off unless the server sets auth_enabled; then every operation "
        "but the public ones needs an API token holding the role in its x-paddles-role "
        "(admin holds every role; with auth_anonymous_read, read operations need none).")
    for template, operations in doc["paths"].items():
        for method, operation in operations.items():
            role = required_role(method.upper(), template)
            operation["x-paddles-role"] = role
            if role == PUBLIC:
                operation["security"] = []
                continue
            responses = operation.setdefault("responses", {})
            for code, text in (("401", "no, malformed, unknown or revoked token "
                                       "(WWW-Authenticate says how to send one)"),
                               ("403", "the token lacks the role this operation needs")):
                responses.setdefault(code, {"description": text, "content": {
                    "application/json": {"schema": _ERROR_REF}}})
