"""gunicorn settings for paddles: `gunicorn -c gunicorn_config.py paddles.wsgi:application`.

Everything can be set from the environment, which supervisord_paddles.conf does.
Graceful reload: SIGHUP to the master (`supervisorctl signal HUP paddles`) starts new workers
with the new code and configuration and retires the old ones after their requests; with
PADDLES_PRELOAD=1 the code is loaded once in the master, so a code upgrade then needs a
restart (`supervisorctl restart paddles`), not a HUP. docs/deploy.md has the procedure.
"""
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

from paddles.settings import load_settings

# The one bind setting, as `paddles serve` and the app read it: $PADDLES_BIND, else `bind` (or
# upstream's server host/port) in config.py, else 127.0.0.1:8080.
bind = load_settings().bind
# CPUs + 1 (at most 9), not gunicorn's 2 x CPUs + 1, which is for sync workers that serve
# one request each: a gthread worker serves PADDLES_THREADS at once, and more processes than
# that on few cores cost context switches and cache (on 2 vCPUs, 3 workers served heartbeats
# 1.2x faster than 5; docs/performance.md, Round 6).
workers = int(os.environ.get("PADDLES_WORKERS", min(multiprocessing.cpu_count() + 1, 9)))
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
# a worker silent this long is killed and replaced (an event stream writes keep-alives)
timeout = int(os.environ.get("PADDLES_TIMEOUT", 60))
# on SIGTERM/SIGHUP, requests in flight get this long to finish
graceful_timeout = int(os.environ.get("PADDLES_GRACEFUL_TIMEOUT", 30))
keepalive = int(os.environ.get("PADDLES_KEEPALIVE", 5))
# recycle a worker after this many requests (0: never), staggered by the jitter
max_requests = int(os.environ.get("PADDLES_MAX_REQUESTS", 0))
max_requests_jitter = max(0, max_requests // 10)
# PADDLES_PRELOAD=1 imports the app once in the master (faster worker start, shared memory
# pages). The database engine is then created before the fork: post_fork below makes each
# worker drop the pooled connections it inherited (never used by two processes).
preload_app = os.environ.get("PADDLES_PRELOAD", "0").lower() in ("1", "true", "yes", "on")
# paddles logs every request itself (logger paddles.access: route, status, duration,
# request id; PADDLES_LOG_FORMAT=json for JSON lines), so gunicorn's own access log is off
# unless PADDLES_ACCESS_LOG names a file or "-" (stderr).
accesslog = os.environ.get("PADDLES_ACCESS_LOG") or None
errorlog = os.environ.get("PADDLES_ERROR_LOG", "-")
loglevel = os.environ.get("PADDLES_LOG_LEVEL", "info").lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'
proc_name = "paddles"
# gunicorn 25+ opens a control socket for gunicornc at one path per user ($HOME/.gunicorn/
# gunicorn.ctl): two paddles masters on one host (two instances, a test beside a server) would
# take it from each other. supervisord manages paddles, so it is off unless
# PADDLES_CONTROL_SOCKET names a path for it.
if os.environ.get("PADDLES_CONTROL_SOCKET"):
    control_socket = os.environ["PADDLES_CONTROL_SOCKET"]
control_socket_disable = not os.environ.get("PADDLES_CONTROL_SOCKET")

# /metrics under gunicorn: each worker writes its values to files in PROMETHEUS_MULTIPROC_DIR
# and a scrape (whichever worker answers) merges them. It must be set before prometheus-client
# is imported anywhere, so it is set here, when gunicorn reads this file. Without an
# operator's choice, a private directory is made per master and removed when it exits.
METRICS_DIR_VAR = "PROMETHEUS_MULTIPROC_DIR"
_OWNED_VAR = "PADDLES_METRICS_DIR_OWNED"
if not os.environ.get(METRICS_DIR_VAR):
    os.environ[METRICS_DIR_VAR] = tempfile.mkdtemp(prefix="paddles-metrics-")
    os.environ[_OWNED_VAR] = "1"


def on_starting(server):
    """A fresh metrics directory at start: a previous master's files would be summed in."""
    path = Path(os.environ[METRICS_DIR_VAR])
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def on_exit(server):
    if os.environ.get(_OWNED_VAR) == "1":
        shutil.rmtree(os.environ[METRICS_DIR_VAR], ignore_errors=True)


def post_fork(server, worker):
    """With preload_app, the engine exists before the fork: forget the parent's pool."""
    if preload_app:
        from paddles import db
        db.after_fork()


def child_exit(server, worker):
    """A worker is gone (exited, killed, recycled): its gauges leave the live sums."""
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)


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
