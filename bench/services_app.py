"""Job writes with paddles' own rules and none of its web framework: the ceiling of
`POST /runs/NAME/jobs/` and `PUT /runs/NAME/jobs/ID/` for bench/write_layers.py.

Under gunicorn_config.py, as paddles and the floor app are. `POST /runs/NAME/jobs/` parses
the body as the controller does (schemas.runs.parse_job_body), creates the job with
services.jobs.create_job on a session of paddles' own factory (settings from the
environment: PADDLES_DATABASE_URL), commits as DBSessionHook does, and answers
`{"job_id": ...}`; `PUT /runs/NAME/jobs/ID/` does the same with services.jobs.update_job
and answers `{}`. There is no WSGI middleware, no Pecan routing, hooks or renderer, no
response cache, no auth, no metrics and no access log: what is left is gunicorn, paddles'
rules, SQLAlchemy and psycopg2, and PostgreSQL. Anything else answers 404; an error
becomes a bare 500, as nothing here maps it (the benchmark counts them)."""
from __future__ import annotations

import orjson

from paddles.db import make_engine, make_session_factory
from paddles.schemas.runs import parse_job_body
from paddles.services import jobs
from paddles.settings import Settings, load_settings

_JSON = [("Content-Type", "application/json")]


def make_application(settings: Settings):
    """The WSGI app on `settings`' database (its own engine and session factory)."""
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size,
                         max_overflow=settings.db_max_overflow,
                         prepared_statements=settings.db_prepared_statements)
    sessions = make_session_factory(engine, topic_prefix=settings.event_topic_prefix)

    def application(environ, start_response):
        parts = environ.get("PATH_INFO", "").strip("/").split("/")
        method = environ["REQUEST_METHOD"]
        if len(parts) < 3 or parts[0] != "runs" or parts[2] != "jobs" \
                or (method, len(parts)) not in (("POST", 3), ("PUT", 4)):
            start_response("404 Not Found", _JSON + [("Content-Length", "2")])
            return [b"{}"]
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        session = sessions()
        try:
            if method == "POST":
                fields = parse_job_body(body, timezone=settings.timezone, allow_empty=False)
                job = jobs.create_job(session, parts[1], fields, settings.timezone)
                answer = {"job_id": job.job_id}
            else:
                fields = parse_job_body(body, timezone=settings.timezone)
                jobs.update_job(session, parts[1], parts[3], fields)
                answer = {}
            if session.in_transaction():
                session.commit()
        finally:
            session.close()
        out = orjson.dumps(answer)
        start_response("200 OK", _JSON + [("Content-Length", str(len(out)))])
        return [out]
    application.engine = engine
    return application


application = make_application(load_settings())  # gunicorn's: settings from the environment
