"""`paddles check-config`: show the effective settings and check what serving needs.

Prints every setting with where its value comes from (environment variable, config file,
derived, default; secrets masked), then checks, one line each: the values are valid, the
database answers, its schema is at this code's migration head, the artifact store takes
a write (a small unique blob is written, read back and deleted), and each message broker of
event_brokers takes a login (its exchange or stream is looked at, not created). Exit 0 when
every check passes, 1 otherwise: run it after editing the configuration and before (re)starting.
"""
from __future__ import annotations

import dataclasses
import logging
import sys
import zoneinfo
from pathlib import Path

from sqlalchemy.engine import make_url

from ..brokers import BrokerUrlError, describe, parse_brokers, probe, redact
from ..db import make_engine, make_session_factory
from ..limits import parse_body_limits
from ..logs import FORMATS
from ..services import health
from ..settings import bind_problem, setting_sources
from ..storage import make_blob_store

SECRETS = ("s3_secret_access_key",)


def register(sub):
    parser = sub.add_parser("check-config", help="show settings and check database, schema "
                                                 "and storage", description=__doc__)
    parser.add_argument("--no-settings", action="store_true",
                        help="print only the checks, not the settings table")
    return parser


def run(args, settings) -> int:
    out = sys.stdout
    if not args.no_settings:
        sources = setting_sources(args.config)
        width = max(len(f.name) for f in dataclasses.fields(settings))
        for field in dataclasses.fields(settings):
            value = _shown(field.name, getattr(settings, field.name))
            print(f"{field.name:<{width}} = {value}  [{sources[field.name]}]", file=out)
        print(file=out)
    results = [_check_values(settings), *_check_database(settings.database_url)]
    if settings.database_read_url:
        results += [(ok, f"replica {name}", detail) for ok, name, detail
                    in _check_database(settings.database_read_url)]
    results.append(_check_storage(settings))
    results += _check_brokers(settings)
    for ok, name, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", file=out)
    failed = sum(not ok for ok, _, _ in results)
    print(f"{len(results) - failed} of {len(results)} checks passed", file=sys.stderr)
    return 1 if failed else 0


def _shown(name: str, value) -> str:
    if name in ("database_url", "database_read_url") and value:
        return make_url(value).render_as_string(hide_password=True)
    if name in SECRETS and value:
        return "***"
    if name == "event_brokers" and value:
        return repr(redact(value))
    return repr(value) if isinstance(value, str) else str(value)


def _check_values(settings):
    problems = []
    if settings.log_format not in FORMATS:
        problems.append(f"log_format must be one of {', '.join(FORMATS)}")
    if not isinstance(logging.getLevelName(settings.log_level.upper()), int):
        problems.append(f"log_level {settings.log_level!r} is not a logging level")
    try:
        zoneinfo.ZoneInfo(settings.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(f"timezone {settings.timezone!r} is unknown")
    bind = bind_problem(str(settings.bind))
    if bind:
        problems.append(bind)
    if settings.artifacts_storage not in ("local", "s3"):
        problems.append("artifacts_storage must be local or s3")
    elif settings.artifacts_storage == "s3" and not settings.s3_bucket:
        problems.append("artifacts_storage s3 needs s3_bucket")
    try:
        make_url(settings.database_url)
    except Exception as exc:
        problems.append(f"database_url: {exc}")
    for name in ("db_pool_size", "max_body_size", "artifacts_max_size", "dispatch_concurrency"):
        if getattr(settings, name) < 1:
            problems.append(f"{name} must be at least 1")
    for name in ("auth_enabled", "auth_anonymous_read", "webhook_allow_private"):
        if not isinstance(getattr(settings, name), bool):
            problems.append(f"{name} must be True or False")
    if settings.response_cache_size < 0:
        problems.append("response_cache_size must be 0 (off) or more")
    for name in ("client_timeout", "db_lock_timeout"):
        if getattr(settings, name) < 0:
            problems.append(f"{name} must be 0 (no limit) or more")
    try:
        parse_body_limits(settings.body_limits)
    except ValueError as exc:
        problems.append(str(exc))
    try:
        parse_brokers(settings.event_brokers)
    except BrokerUrlError as exc:
        problems.append(f"event_brokers: {exc}")
    for name in ("broker_timeout", "broker_lease", "broker_backoff_base", "broker_backoff_max"):
        if getattr(settings, name) <= 0:
            problems.append(f"{name} must be more than 0")
    if settings.broker_lease <= settings.broker_timeout:
        problems.append("broker_lease must be longer than broker_timeout")
    return (not problems, "settings", "; ".join(problems) or "valid")


def _check_database(database_url: str):
    url = make_url(database_url)
    where = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not Path(url.database).exists():  # connecting would create it
        return [(False, "database", f"{where}: the file does not exist (`paddles migrate` "
                                    "creates it)"),
                (False, "migrations", "not checked (no database)")]
    connect_args = {"connect_timeout": 5} if url.get_backend_name() == "postgresql" else {}
    try:
        engine = make_engine(database_url, pool_size=1, max_overflow=0,
                             **({"connect_args": connect_args} if connect_args else {}))
    except Exception as exc:
        return [(False, "database", f"{where}: {_line(exc)}"),
                (False, "migrations", "not checked (no database)")]
    try:
        with make_session_factory(engine)() as session:
            try:
                current = health.schema_revision(session)
            except Exception as exc:
                return [(False, "database", f"{where} unreachable: {_line(exc)}"),
                        (False, "migrations", "not checked (no database)")]
    finally:
        engine.dispose()
    head = health.head_revision()
    db = (True, "database", f"{where} reachable")
    if current == head:
        return [db, (True, "migrations", f"current (revision {head})")]
    return [db, (False, "migrations", f"schema at {current or 'none (empty database)'}, "
                                      f"this code needs {head}: run `paddles migrate`")]


def _check_storage(settings):
    try:
        where = health.probe_blob_store(make_blob_store(settings))
    except Exception as exc:
        return (False, "storage", f"{settings.artifacts_storage}: {_line(exc)}")
    return (True, "storage", f"{settings.artifacts_storage} {where} writable")


def _check_brokers(settings):
    """One line per broker: it answers and takes the login (a URL that does not parse is
    the settings line's failure)."""
    try:
        brokers = parse_brokers(settings.event_brokers)
    except BrokerUrlError:
        return []
    results = []
    for broker in brokers:
        try:
            found = probe(broker, timeout=min(settings.broker_timeout, 5.0),
                          topic_prefix=settings.event_topic_prefix)
        except Exception as exc:
            results.append((False, f"broker {broker.name}", f"unreachable: {describe(exc)}"))
        else:
            results.append((True, f"broker {broker.name}", found))
    return results


def _line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]
