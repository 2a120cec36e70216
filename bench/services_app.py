"""Job writes with paddles' own rules and none of its web framework: the ceiling of
`POST /runs/NAME/jobs/` and `PUT /runs/NAME/jobs/ID/` for bench/write_layers.py.

Under gunicorn_config.py, as paddles and the floor app are. The two writes go to paddles'
own direct routes (paddles/direct.py: the body parsed and the job written by
controllers/jobs.py's post_job and put_job, the session opened and committed by
hooks.RequestSessions) on a session factory of its own (settings from the environment:
PADDLES_DATABASE_URL). Nothing is around them: no WSGI middleware (slashes, body limits,
retries, request ids, access log, metrics), no auth, no Pecan, hooks or response cache.
What is left is gunicorn, paddles' rules, SQLAlchemy and psycopg2, and PostgreSQL.
Anything else answers 404 with `{}`."""
from __future__ import annotations

from paddles.db import make_engine, make_session_factory
from paddles.direct import DirectRoutes
from paddles.hooks import RequestSessions
from paddles.settings import Settings, load_settings


def _not_found(environ, start_response):
    start_response("404 Not Found", [("Content-Type", "application/json"),
                                     ("Content-Length", "2")])
    return [b"{}"]


def make_application(settings: Settings):
    """The WSGI app on `settings`' database (its own engine and session factory)."""
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size,
                         max_overflow=settings.db_max_overflow,
                         prepared_statements=settings.db_prepared_statements)
    sessions = make_session_factory(engine, topic_prefix=settings.event_topic_prefix)
    direct = DirectRoutes(_not_found, RequestSessions(sessions), settings)

    def application(environ, start_response):
        # the one wire rule the direct routes need: no trailing slash (WireMiddleware's)
        environ["PATH_INFO"] = environ.get("PATH_INFO", "").rstrip("/")
        return direct(environ, start_response)
    application.engine = engine
    return application


application = make_application(load_settings())  # gunicorn's: settings from the environment
