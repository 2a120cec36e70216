"""Prometheus metrics: what the request middleware counts, and what a scrape reads from the DB.

Counted in the process that serves the request (middleware.RequestObserver calls `observe`):
requests by method, route template and status, and their latency. The route label is the
template of the matched route (`/runs/{name}/jobs/{job_id}/`), never the raw path, so the
number of series stays bounded whatever clients send. The database pool gauges follow the
pool's checkout/checkin events.

Under gunicorn, gunicorn_config.py sets PROMETHEUS_MULTIPROC_DIR before any worker exists:
prometheus-client then keeps every worker's values in files there and a scrape, whichever
worker answers it, merges them all. Without it (tests, a single process) the values live in
the process's default registry.

The event backlog, webhook failures and each message broker's published count, lag and
failures are read from the database at scrape time, so the separate `paddles dispatch`
process exports nothing itself.
"""
from __future__ import annotations

import logging
import os

from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter,
                               Gauge, Histogram, disable_created_metrics, generate_latest)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from . import routes

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
disable_created_metrics()  # no `_created` twin of every series

REQUESTS = Counter("paddles_http_requests", "HTTP requests answered",
                   ["method", "route", "status"])
LATENCY = Histogram("paddles_http_request_duration_seconds",
                    "Time from the request's arrival to the end of its response body",
                    ["method", "route"],
                    buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
# livesum: the sum over the live worker processes (a dead worker's connections are gone)
POOL_IN_USE = Gauge("paddles_db_pool_connections_in_use",
                    "Database connections checked out of the pool now",
                    multiprocess_mode="livesum")
POOL_CAPACITY = Gauge("paddles_db_pool_capacity",
                      "Connections the pools may open (pool_size + max_overflow)",
                      multiprocess_mode="livesum")

CONTENT_TYPE = CONTENT_TYPE_LATEST
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"))
UNMATCHED = routes.UNMATCHED
# seconds a scrape's database queries may take (PostgreSQL statement_timeout)
SCRAPE_QUERY_TIMEOUT_MS = 2000


# (method, route template, status) -> its counter and histogram series; bounded as the labels
_SERIES: dict[tuple[str, str, int], tuple] = {}


def observe(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in METHODS else "other"
    series = _SERIES.get((method, route, status))
    if series is None:  # labels() checks and converts its values, under a lock: once
        series = _SERIES[method, route, status] = (REQUESTS.labels(method, route, str(status)),
                                                   LATENCY.labels(method, route))
    series[0].inc()
    series[1].observe(seconds)


# where the replica routes were read (paddles/replica.py): the replica, or the primary
# because the replica was behind the client's writes, unreachable, or no standby
REPLICA_READS = Counter("paddles_replica_reads", "Reads of the replica routes, by the "
                        "database that served them (database_read_url)", ["served_by"])


def replica_read(served_by: str) -> None:
    REPLICA_READS.labels(served_by).inc()


# ---- route templates --------------------------------------------------------------------

# The route label is the request's template in the route table (paddles/routes.py).
route_template = routes.route_template
RUN_FILTER_CHAIN = routes.RUN_FILTER_CHAIN


# ---- database pool ----------------------------------------------------------------------

def instrument_engine(engine, capacity: int) -> None:
    """Follow the engine's pool in the pool gauges (once per engine)."""
    if getattr(engine, "_paddles_metrics", False):
        return
    engine._paddles_metrics = True
    counted_in: set[int] = set()

    def on_checkout(*_):
        # capacity is counted by the process that uses the pool: with gunicorn's preload the
        # engine is made in the master, which never connects
        if os.getpid() not in counted_in:
            counted_in.add(os.getpid())
            POOL_CAPACITY.inc(capacity)
        POOL_IN_USE.inc()

    event.listen(engine, "checkout", on_checkout)
    event.listen(engine, "checkin", lambda *_: POOL_IN_USE.dec())
    # a detached connection (the events LISTEN thread keeps one) leaves the pool for good
    event.listen(engine, "detach", lambda *_: POOL_IN_USE.dec())


# ---- scrape -----------------------------------------------------------------------------

class DatabaseCollector:
    """What the dispatch worker's state in the database says, read at scrape time."""

    def __init__(self, session: Session):
        self.session = session

    def collect(self):
        from .models import BrokerCursor, Delivery, Event, Subscription

        up = GaugeMetricFamily("paddles_database_up",
                               "1 if the scrape could read the database, else 0")
        try:
            session = self.session
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text(f"SET LOCAL statement_timeout = {SCRAPE_QUERY_TIMEOUT_MS}"))
            latest = session.scalar(select(func.max(Event.id))) or 0
            subs = session.execute(
                select(Subscription.enabled, func.count(), func.min(Subscription.last_event_id),
                       func.coalesce(func.sum(Subscription.failures), 0))
                .group_by(Subscription.enabled)).all()
            cursor = min((row[2] for row in subs if row[0]), default=latest)
            backlog = session.scalar(select(func.count()).select_from(Event)
                                     .where(Event.id > cursor)) if cursor < latest else 0
            deliveries = dict(session.execute(
                select(Delivery.status, func.count()).group_by(Delivery.status)).all())
            brokers = session.execute(
                select(BrokerCursor.name, BrokerCursor.last_event_id, BrokerCursor.published,
                       BrokerCursor.failures, BrokerCursor.failures_total)
                .order_by(BrokerCursor.name)).all()
        except Exception as exc:  # a scrape never fails: it says the database is down
            log.warning("metrics: database not readable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("paddles_events_latest_id", "Id of the newest event",
                                value=latest)
        yield GaugeMetricFamily(
            "paddles_events_backlog",
            "Events not yet fanned out to the enabled webhook subscription furthest behind",
            value=backlog)
        by_state = GaugeMetricFamily("paddles_webhook_subscriptions",
                                     "Webhook subscriptions", labels=["state"])
        counts = {bool(row[0]): row[1] for row in subs}
        by_state.add_metric(["enabled"], counts.get(True, 0))
        by_state.add_metric(["disabled"], counts.get(False, 0))
        yield by_state
        failing = sum(int(row[3] or 0) for row in subs if row[0])
        yield GaugeMetricFamily(
            "paddles_webhook_consecutive_failures",
            "Failed attempts since the last success, summed over enabled subscriptions",
            value=failing)
        gauge = GaugeMetricFamily("paddles_webhook_deliveries",
                                  "Webhook deliveries by status (failed: given up)",
                                  labels=["status"])
        for status in ("pending", "delivered", "failed"):
            value = sum(n for s, n in deliveries.items() if getattr(s, "value", s) == status)
            gauge.add_metric([status], value)
        yield gauge
        yield from _broker_metrics(brokers, latest)


def _broker_metrics(brokers, latest: int):
    """Per message broker (event_brokers; the label is its URL, password masked)."""
    published = CounterMetricFamily("paddles_broker_published",
                                    "Messages the broker has confirmed", labels=["broker"])
    lag = GaugeMetricFamily("paddles_broker_lag",
                            "Newest event id minus the broker's cursor (the last event it "
                            "confirmed)", labels=["broker"])
    failures = CounterMetricFamily("paddles_broker_failures",
                                   "Failed publish attempts (connection refused or lost, no "
                                   "confirmation in time, refused by the broker)",
                                   labels=["broker"])
    failing = GaugeMetricFamily("paddles_broker_consecutive_failures",
                                "Failed attempts since the broker's last success",
                                labels=["broker"])
    for name, cursor, sent, in_a_row, total in brokers:
        published.add_metric([name], sent)
        lag.add_metric([name], max(0, latest - cursor))
        failures.add_metric([name], total)
        failing.add_metric([name], in_a_row)
    yield from (published, lag, failures, failing)


class WorkerFiles:
    """Every worker's values, merged from the files in PROMETHEUS_MULTIPROC_DIR.

    prometheus-client's own MultiProcessCollector reads every `*.db` file it globs. A worker
    that has just started (after a SIGHUP, say) creates its file empty and sizes it a moment
    later; a scrape between the two failed with struct.error, a 500. A file shorter than its
    8-byte header holds no value yet, so it is left out of this scrape. Files that vanish
    after the glob (a dead worker's live gauges) are skipped by `merge` itself."""

    def __init__(self, path: str):
        self.path = path

    def collect(self):
        from prometheus_client.multiprocess import MultiProcessCollector

        files = []
        for entry in os.scandir(self.path):
            try:
                if entry.name.endswith(".db") and entry.stat().st_size >= 8:
                    files.append(entry.path)
            except FileNotFoundError:
                continue
        return MultiProcessCollector.merge(files, accumulate=True)


def render(session: Session) -> bytes:
    """The Prometheus text exposition: the request metrics of every worker, then the DB's."""
    if path := os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        registry.register(WorkerFiles(path))
        served = generate_latest(registry)
    else:
        served = generate_latest(REGISTRY)
    database = CollectorRegistry()
    database.register(DatabaseCollector(session))
    return served + generate_latest(database)
