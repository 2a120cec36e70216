"""gunicorn settings for paddles: `gunicorn -c gunicorn_config.py paddles.wsgi:application`.

Everything can be set from the environment, which supervisord_paddles.conf does.
"""
import multiprocessing
import os

bind = os.environ.get("PADDLES_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("PADDLES_WORKERS", min(multiprocessing.cpu_count() * 2 + 1, 9)))
threads = int(os.environ.get("PADDLES_THREADS", 1))
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
