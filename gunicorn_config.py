"""gunicorn settings for paddles: `gunicorn -c gunicorn_config.py paddles.wsgi:application`.

Everything can be set from the environment, which supervisord_paddles.conf does.
"""
import multiprocessing
import os

bind = os.environ.get("PADDLES_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("PADDLES_WORKERS", min(multiprocessing.cpu_count() * 2 + 1, 9)))
# gthread: each worker serves PADDLES_THREADS requests at once. An event stream
# (GET /events/stream, Server-Sent Events) holds its thread while it is open, which would take
# a whole sync worker; under gthread the app keeps at most half of a worker's threads for
# streams (PADDLES_EVENTS_STREAM_LIMIT; more get a 503 and Retry-After), ends each stream after
# PADDLES_EVENTS_STREAM_MAX_SECONDS (the client resumes with Last-Event-ID), so ordinary
# requests always find a thread. See docs/events.md.
worker_class = os.environ.get("PADDLES_WORKER_CLASS", "gthread")
threads = int(os.environ.get("PADDLES_THREADS", 8))
# the app reads these (after fork): pool size per worker, streams per worker
os.environ.setdefault("PADDLES_THREADS", str(threads))
os.environ.setdefault("PADDLES_EVENTS_STREAM_LIMIT", str(max(1, threads // 2)))
timeout = int(os.environ.get("PADDLES_TIMEOUT", 60))
graceful_timeout = int(os.environ.get("PADDLES_GRACEFUL_TIMEOUT", 30))
keepalive = 5
# The app (and its database engine) is built after fork, once per worker.
preload_app = False
accesslog = os.environ.get("PADDLES_ACCESS_LOG", "-")
errorlog = os.environ.get("PADDLES_ERROR_LOG", "-")
loglevel = os.environ.get("PADDLES_LOG_LEVEL", "info").lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'
proc_name = "paddles"


def post_worker_init(worker):
    """On SIGTERM, end this worker's event streams at once (clients reconnect elsewhere with
    Last-Event-ID) instead of holding the graceful shutdown for graceful_timeout."""
    import signal

    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        from paddles import notify
        notify.shut_down()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)
