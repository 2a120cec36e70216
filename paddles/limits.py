"""Request body size limits per route: small for the JSON routes, large for artifact uploads.

A route is named by its OpenAPI template (`/runs/{name}/jobs/`, as routes.route_template
finds it). WireMiddleware answers 413 `{"message"}` before reading a byte when the declared
Content-Length is over the route's limit; a JSON body sent chunked is read up to the limit
and one byte more, then answered 413 if longer (middleware.read_unsized_body); an upload sent
chunked is cut off at the limit by the spooler (paddles/streams.py), which takes its limit
from here too.

Configure with `body_limits` (env PADDLES_BODY_LIMITS), a comma-separated list of
`ROUTE=SIZE` overriding the defaults below, SIZE in bytes or with a K, M or G suffix
(powers of 1024), e.g. `/runs/{name}/jobs/=4M,/events/=256K`. Routes not listed get
`max_body_size`, which also caps the defaults; the artifact upload routes get
`artifacts_max_size`.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from . import routes

KIB, MIB = 1024, 1024 ** 2

# Each route names its limit in the route table (paddles/routes.py, `body_limit`).
# Teuthology's job documents carry the whole job config (overrides, tasks, roles): usually
# a few hundred KiB, but a 2.4 MB one (40,000 override keys) is on record, and teuthology
# loses a job's results when it gets a 413. Upstream paddles has no limit: jobs and runs get
# the max_body_size (16 MiB), the largest body read into memory. Everything else is a
# handful of fields.
DEFAULT_SIZES: dict[str, int] = {
    "json": 64 * KIB,  # a handful of fields
    "job": 16 * MIB,  # a job document, or a run (/runs/)
    "names": 1 * MIB,  # a list of node names (unlock_many)
    "events": 1 * MIB,  # a message event
}
DEFAULT_BODY_LIMITS: dict[str, int] = {
    route.template: DEFAULT_SIZES[route.body_limit] for route in routes.TABLE
    if route.body_limit in DEFAULT_SIZES}
ARTIFACT_ROUTES = frozenset(route.template for route in routes.TABLE
                            if route.body_limit == "artifact")
_SIZE = re.compile(r"\s*(\d+)\s*([kmg]?)i?b?\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": KIB, "m": MIB, "g": 1024 ** 3}


def parse_size(text: str | int) -> int:
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    match = _SIZE.fullmatch(str(text))
    if match is None:
        raise ValueError(f"{text!r} is not a size (bytes, or a number with K, M or G)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def parse_body_limits(value: str | Mapping[str, str | int] | None) -> dict[str, int]:
    """`ROUTE=SIZE,...` (or a mapping, from config.py) -> {route template: bytes}."""
    if not value:
        return {}
    if isinstance(value, Mapping):
        items = list(value.items())
    else:
        items = []
        for part in str(value).split(","):
            if part.strip():
                route, eq, size = part.partition("=")
                if not eq:
                    raise ValueError(f"body_limits: {part.strip()!r} is not ROUTE=SIZE")
                items.append((route.strip(), size))
    known = _known_routes()
    out: dict[str, int] = {}
    for route, size in items:
        if route not in known:
            raise ValueError(f"body_limits: {route!r} is not a route of /openapi.json")
        out[route] = parse_size(size)
    return out


def _known_routes() -> set[str]:
    return {route.template for route in routes.TABLE if route.documented}


class BodyLimits:
    """The largest request body each route accepts, from the settings."""

    def __init__(self, settings):
        self.default = settings.max_body_size  # also caps the defaults of JSON routes
        self.table = {**{route: min(size, self.default)
                         for route, size in DEFAULT_BODY_LIMITS.items()},
                      **dict.fromkeys(ARTIFACT_ROUTES, settings.artifacts_max_size),
                      **parse_body_limits(settings.body_limits)}

    def for_path(self, path: str) -> tuple[str, int]:
        """(route template, limit in bytes) for a request path."""
        route = routes.route_template(path)
        return route, self.table.get(route, self.default)
