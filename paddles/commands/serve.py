"""`paddles serve`: run the API with gunicorn and gunicorn_config.py (migrating first).

It listens where the `bind` setting says: $PADDLES_BIND (HOST:PORT, [IPv6]:PORT or
unix:PATH), else `bind` in config.py, else 127.0.0.1:8080; --host and --port override it.
"""
from __future__ import annotations

import logging
import os
import sys

from .. import __version__, migrations, resources
from ..settings import bind_problem, bind_url, redact_url

log = logging.getLogger("paddles.serve")


def register(sub):
    parser = sub.add_parser("serve", help="serve the API (gunicorn)", description=__doc__)
    parser.add_argument("--host", help="listen on this address (the host part of the bind "
                                       "setting, $PADDLES_BIND)")
    parser.add_argument("--port", type=int, help="listen on this port (the port part of the "
                                                 "bind setting)")
    parser.add_argument("--no-migrate", action="store_true",
                        help="do not upgrade the schema before serving")
    return parser


def run(args, settings) -> int:
    bind = _bind(settings.bind, args.host, args.port)
    problem = bind_problem(bind)
    if problem:
        raise ValueError(problem)
    database = redact_url(settings.database_url)
    if args.no_migrate:
        log.info("paddles %s: database %s (not migrated: --no-migrate)", __version__, database)
    else:
        migrations.upgrade(settings.database_url)
        log.info("paddles %s: database %s, schema at %s", __version__, database,
                 migrations.head_revision(settings.database_url))
    config = resources.path("gunicorn_config.py")
    log.info("serving on %s (gunicorn, %s; set PADDLES_BIND to change)", bind_url(bind), config)
    env = dict(os.environ, PADDLES_DATABASE_URL=settings.database_url, PADDLES_BIND=bind)
    argv = [sys.executable, "-m", "gunicorn", "-c", str(config), "paddles.wsgi:application"]
    os.execve(sys.executable, argv, env)
    return 0


def _bind(bind: str, host: str | None, port: int | None) -> str:
    """The bind setting with --host/--port put in (HOST:PORT binds only)."""
    if not (host or port):
        return bind
    if bind.startswith(("unix:", "fd://")):
        bind = "127.0.0.1:8080"
    current_host, _, current_port = bind.rpartition(":")
    return f"{host or current_host}:{port or current_port}"
