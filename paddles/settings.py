"""One place that turns the config file and PADDLES_* environment variables into Settings.

Used by the web app, alembic/env.py and the CLI alike. Precedence: environment variable,
then the config file (``config.py``, a Pecan-style Python file), then the built-in default.
"""
from __future__ import annotations

import dataclasses
import os
import runpy
from pathlib import Path
from typing import Any
from collections.abc import Mapping

DEFAULT_LOG_HREF = "http://qa-proxy.ceph.com/teuthology/{run_name}/{job_id}/teuthology.log"


@dataclasses.dataclass(frozen=True)
class Settings:
    database_url: str
    # a streaming replica for the heavy read-only routes (hooks.READ_REPLICA_ROUTES); empty:
    # every query goes to database_url
    database_read_url: str = ""
    # seconds a replica read waits for the replica to replay the writes acknowledged before
    # it, before the primary answers it instead (paddles/replica.py)
    database_read_max_wait: float = 0.2
    data_dir: str = "var"
    address: str = "http://localhost:8080"
    job_log_href_templ: str = DEFAULT_LOG_HREF
    default_latest_runs_count: int = 25
    timezone: str = "UTC"
    # where the server listens (gunicorn's bind): HOST:PORT, [IPv6]:PORT or unix:PATH; the
    # one setting for `paddles serve`, `make run` and gunicorn under supervisord alike
    bind: str = "127.0.0.1:8080"
    max_body_size: int = 16 * 1024 * 1024
    db_pool_size: int = 5
    db_max_overflow: int = 10
    log_level: str = "INFO"
    log_format: str = "text"  # "json": one JSON object per line (paddles/logs.py)
    # artifacts (spec extras 1): per-upload limit, blob backend "local" or "s3"
    artifacts_max_size: int = 2 * 1024 ** 3
    artifacts_storage: str = "local"
    artifacts_dir: str = ""  # local blobs; default <data_dir>/blobs
    artifacts_tmp_dir: str = ""  # upload spool; default <artifacts_dir>/.tmp or <data_dir>/tmp
    s3_endpoint_url: str = ""
    s3_bucket: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    s3_region: str = "us-east-1"
    s3_prefix: str = ""
    # events and webhooks (spec extras 3, docs/events.md)
    event_topic_prefix: str = "org.paddles"
    events_keepalive: float = 15.0  # seconds between SSE keep-alive comments
    events_poll_interval: float = 1.0  # SQLite: how often a stream looks for new events
    events_stream_max_seconds: float = 600.0  # a stream then ends; the client resumes
    events_stream_limit: int = 4  # open streams per process (gunicorn: half its threads)
    webhook_timeout: float = 10.0
    webhook_retry_seconds: float = 86400.0  # retry a delivery for this long, then give up
    webhook_backoff_base: float = 10.0  # first retry after this, doubling each time
    webhook_backoff_max: float = 3600.0
    webhook_disable_failures: int = 20  # consecutive failed attempts ...
    webhook_disable_seconds: float = 3600.0  # ... over at least this long disable a webhook
    dispatch_poll_interval: float = 1.0
    dispatch_concurrency: int = 4
    # message brokers `paddles dispatch` publishes every event to (paddles/brokers/): a
    # comma-separated list of amqp://, mqtt:// and nats:// URLs (docs/events.md)
    event_brokers: str = ""
    broker_timeout: float = 10.0  # seconds to connect, and for each confirmation
    broker_lease: float = 30.0  # a dispatcher's hold on a broker, renewed every 100 messages
    broker_backoff_base: float = 1.0  # a failing broker is retried after this, doubling ...
    broker_backoff_max: float = 30.0  # ... up to this
    # authentication (paddles/auth.py, SECURITY.md): off by default, as upstream
    auth_enabled: bool = False
    auth_anonymous_read: bool = False  # with auth on, the read role's routes need no token
    # webhook targets on loopback, private, link-local or other non-global addresses;
    # allowed by default (a lab's receivers are often internal), refuse them when exposed
    webhook_allow_private: bool = True
    # bytes of rendered GET /runs/NAME/ and job lists kept per process (paddles/cache.py); 0: off
    response_cache_size: int = 64 * 1024 * 1024
    # seconds a client may stay silent mid-request (sending its body or reading the answer)
    # before the read fails with 408 or the write is dropped (docs/faults.md); 0: no limit
    client_timeout: float = 60.0
    # seconds a request's statement waits for a lock (a row another transaction holds, the
    # event-commit lock) before the request fails with 503 + Retry-After; 0: no limit on
    # PostgreSQL (SQLite then keeps its 30 s busy timeout)
    db_lock_timeout: float = 30.0
    # the heartbeat's statement is parsed and planned once per connection (PREPARE), then
    # only run (EXECUTE); turn off behind PgBouncer in transaction mode (pg.Prepared)
    db_prepared_statements: bool = True
    # per-route request body limits, "ROUTE=SIZE,..." over the defaults (paddles/limits.py)
    body_limits: str = ""


def boolean(text: str) -> bool:
    """An environment variable's on/off value."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean")


boolean.__name__ = "boolean (1/0, true/false, yes/no, on/off)"

# setting name -> (environment variable, converter): every field of Settings, as
# PADDLES_<NAME>, converted by its declared type
_CONVERTERS = {"str": str, "int": int, "float": float, "bool": boolean}
_ENV = {field.name: (f"PADDLES_{field.name.upper()}", _CONVERTERS[str(field.type)])
        for field in dataclasses.fields(Settings)}


def _from_config_file(path: Path) -> dict[str, Any]:
    """Read the settings a Pecan-style config.py defines (``server``, ``sqlalchemy``,
    ``paddles``)."""
    ns = runpy.run_path(str(path))
    found: dict[str, Any] = {}
    server = ns.get("server") or {}  # upstream's shape; paddles = {"bind": ...} wins over it
    if "host" in server or "port" in server:
        host, port = Settings.bind.rsplit(":", 1)
        found["bind"] = f"{server.get('host') or host}:{server.get('port') or port}"
    url = (ns.get("sqlalchemy") or {}).get("url")
    if url:
        found["database_url"] = url
    read_url = (ns.get("sqlalchemy") or {}).get("read_url")
    if read_url:
        found["database_read_url"] = read_url
    for key, value in (ns.get("paddles") or {}).items():
        if key in _ENV:
            found[key] = value
    for group in ("artifacts", "s3"):  # artifacts = {"max_size": ...}, s3 = {"bucket": ...}
        for key, value in (ns.get(group) or {}).items():
            if f"{group}_{key}" in _ENV:
                found[f"{group}_{key}"] = value
    for key in ("address", "job_log_href_templ", "default_latest_runs_count"):
        if key in ns:
            found[key] = ns[key]
    return found


def config_path(environ: Mapping[str, str] | None = None) -> Path | None:
    environ = os.environ if environ is None else environ
    if environ.get("PADDLES_CONFIG"):
        return Path(environ["PADDLES_CONFIG"])
    local = Path("config.py")
    return local if local.exists() else None


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None,
                  **overrides: Any) -> Settings:
    values, _ = _gather(path, environ, overrides)
    return Settings(**values)


def setting_sources(path: str | Path | None = None,
                    environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Where each setting's value comes from: `env PADDLES_X`, `file config.py`, `derived
    (...)` or `default` (`paddles check-config` prints it)."""
    _, sources = _gather(path, environ, {})
    return {field.name: sources.get(field.name, "default")
            for field in dataclasses.fields(Settings)}


# variables earlier versions read; set, they are an error rather than silently ignored
_REPLACED = {"PADDLES_SERVER_HOST": "PADDLES_BIND=HOST:PORT",
             "PADDLES_SERVER_PORT": "PADDLES_BIND=HOST:PORT"}


def _gather(path, environ, overrides) -> tuple[dict[str, Any], dict[str, str]]:
    environ = os.environ if environ is None else environ
    for var, instead in _REPLACED.items():
        if environ.get(var):
            raise ValueError(f"{var} is no longer read: set {instead}")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    cfg = Path(path) if path else config_path(environ)
    if cfg is not None:
        if not cfg.exists():
            raise FileNotFoundError(f"config file {cfg} does not exist")
        found = _from_config_file(cfg)
        values.update(found)
        sources.update(dict.fromkeys(found, f"file {cfg}"))
    for key, (var, convert) in _ENV.items():
        if environ.get(var):
            try:
                values[key] = convert(environ[var])
            except ValueError:
                raise ValueError(f"{var}={environ[var]!r} is not a valid "
                                 f"{convert.__name__}") from None
            sources[key] = f"env {var}"
    values.update(overrides)
    sources.update(dict.fromkeys(overrides, "argument"))
    if "db_pool_size" not in values:
        # one connection per request a worker can serve at once (gunicorn threads), and
        # one for its NOTIFY thread (pg.run_pooled_soon): a connection beyond the pool's
        # size is closed when given back, and its successor prepares its statements again
        values["db_pool_size"] = max(1, int(environ.get("PADDLES_THREADS") or 1)) + 1
        sources["db_pool_size"] = "derived (PADDLES_THREADS)"
    data_dir = values.get("data_dir", Settings.data_dir)
    if not values.get("database_url"):
        values["database_url"] = default_database_url(data_dir)
        sources["database_url"] = "derived (SQLite in data_dir)"
    return values, sources


def bind_problem(bind: str) -> str | None:
    """What is wrong with a bind address (gunicorn's HOST:PORT, [IPv6]:PORT, unix:PATH or
    fd://N), or None."""
    if bind.startswith("unix:") and len(bind) > 5:
        return None
    if bind.startswith("fd://") and bind[5:].isdigit():
        return None
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        return f"bind {bind!r} is not HOST:PORT, [IPv6]:PORT or unix:PATH"
    return None


def bind_url(bind: str) -> str:
    """The address a person can open, for start-up messages."""
    return bind if bind.startswith(("unix:", "fd://")) else f"http://{bind}/"


def redact_url(url: str) -> str:
    """A database URL fit for a log line: the password masked."""
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)


def default_database_url(data_dir: str) -> str:
    return "sqlite:///" + str(Path(data_dir).absolute() / "paddles.db")
