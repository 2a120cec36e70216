"""The dispatch worker behind `paddles dispatch`: webhooks, and the message brokers of
`event_brokers` (each on a thread of its own: paddles/brokers/worker.py).

Every piece of state is in the database (services/webhooks.py): the worker can be killed at
any moment and restarted, and several can run side by side. Each round: fan new events out
into deliveries, lease the due ones, POST them concurrently, record each outcome as it
comes. Between rounds it sleeps until woken by a PostgreSQL NOTIFY (new events), until the
next retry is due, or for the poll interval (SQLite).

A request is signed with the subscription's secret: `X-Paddles-Signature: sha256=<hex>` is
the HMAC-SHA256 of the raw body; `X-Paddles-Timestamp` is the Unix time of the attempt and
`X-Paddles-Timestamp-Signature: sha256=<hex>` the HMAC of "<timestamp>.<body>", for receivers
that want to refuse replays. `X-Paddles-Delivery` (a uuid) is the same on every attempt of a
delivery: receivers dedupe on it.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import logging
import os
import signal
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from urllib.parse import unquote, urlsplit

from sqlalchemy.exc import DBAPIError

from . import __version__, notify
from .brokers import parse_brokers
from .brokers.worker import BrokerWorker
from .db import begin_write, make_engine, make_session_factory
from .models import utcnow
from .services import webhooks
from .services.webhooks import Claimed
from .settings import Settings

log = logging.getLogger(__name__)

RESPONSE_READ_LIMIT = 64 * 1024  # bytes of a receiver's answer read (and dropped)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send(claimed: Claimed, timeout: float,
         allow_private: bool = True) -> tuple[int | None, str | None, float]:
    """POST one delivery: (HTTP status or None, error text or None, milliseconds).

    With allow_private False the target is checked again here, as its DNS may have changed
    since the subscription was made (a name re-pointed between this check and the connect
    is the remaining window; SECURITY.md)."""
    if not allow_private:
        try:
            webhooks.check_target(claimed.url)
        except webhooks.TargetRefused as exc:
            return None, f"refused: {exc.message}", 0.0
    body = claimed.body.encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"paddles-webhook/{__version__}",
        "X-Paddles-Event": claimed.event_type,
        "X-Paddles-Event-Id": str(claimed.event_id),
        "X-Paddles-Delivery": claimed.uuid,
        "X-Paddles-Attempt": str(claimed.attempt),
        "X-Paddles-Timestamp": stamp,
        "X-Paddles-Signature": sign(claimed.secret, body),
        "X-Paddles-Timestamp-Signature": sign(claimed.secret, stamp.encode() + b"." + body),
    }
    url = urlsplit(claimed.url)
    if url.username is not None:
        credentials = f"{unquote(url.username)}:{unquote(url.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    connection_class = (http.client.HTTPSConnection if url.scheme == "https"
                        else http.client.HTTPConnection)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    started = time.perf_counter()
    conn = connection_class(url.hostname, url.port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read(RESPONSE_READ_LIMIT)
        return resp.status, None, (time.perf_counter() - started) * 1000
    except TimeoutError:
        return None, f"timed out after {timeout:g} s", (time.perf_counter() - started) * 1000
    except (OSError, http.client.HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500], (time.perf_counter() - started) * 1000
    finally:
        conn.close()


class Dispatcher:
    """Webhooks on the calling thread (run_forever), each message broker on its own."""

    def __init__(self, settings: Settings, *, concurrency: int | None = None):
        self.settings = settings
        self.concurrency = max(1, concurrency or settings.dispatch_concurrency)
        self.engine = make_engine(settings.database_url, pool_size=2, max_overflow=2)
        self.sessions = make_session_factory(self.engine,
                                             topic_prefix=settings.event_topic_prefix)
        self.waker = notify.get_waker(self.engine, settings.dispatch_poll_interval)
        self.lease = 2 * settings.webhook_timeout + 1  # an attempt in flight keeps its row
        self.stopping = threading.Event()
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="paddles-webhook")
        # who holds a broker's lease: this process, on this host
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.brokers = [BrokerWorker(broker, settings, self.sessions, self.waker,
                                     owner=self.owner, stopping=self.stopping)
                        for broker in parse_brokers(settings.event_brokers)]
        self._threads: list[threading.Thread] = []
        for worker in self.brokers:  # from now on, every event reaches every broker
            try:
                worker.ensure_cursor()
            except DBAPIError as exc:  # made by the worker's first round instead
                log.warning("broker %s: cursor not made yet: %s", worker.broker.name, exc)

    def stop(self) -> None:
        self.stopping.set()
        self.waker.stop()

    def close(self) -> None:
        for thread in self._threads:
            thread.join()
        for worker in self.brokers:
            worker.close()
        self._pool.shutdown(wait=True)
        self.engine.dispose()

    def start_brokers(self, *, once: bool = False) -> None:
        """Publish to each broker on a thread of its own (with `once`: here, until each is
        caught up or failing)."""
        if once:
            for worker in self.brokers:
                worker.run_forever(once=True)
            return
        for worker in self.brokers:
            thread = threading.Thread(target=worker.run_forever, daemon=True,
                                      name=f"paddles-broker-{worker.broker.protocol}")
            thread.start()
            self._threads.append(thread)

    def step(self) -> int:
        """One round; how many deliveries were made or attempted."""
        with self.sessions.begin() as session:
            begin_write(session)
            made = webhooks.fan_out(session, self.settings)
        with self.sessions.begin() as session:
            begin_write(session)
            claimed = webhooks.claim_deliveries(session, limit=self.concurrency * 4,
                                                lease=self.lease)
        futures = {self._pool.submit(send, c, self.settings.webhook_timeout,
                                     self.settings.webhook_allow_private): c
                   for c in claimed}
        for future in as_completed(futures):
            item = futures[future]
            status, error, ms = future.result()
            with self.sessions.begin() as session:
                begin_write(session)
                outcome = webhooks.record_attempt(session, self.settings, item,
                                                  status_code=status, error=error,
                                                  elapsed_ms=ms)
            log.info("delivery %s (event %s %s) attempt %s to %s: %s -> %s", item.id,
                     item.event_id, item.event_type, item.attempt, item.url,
                     error or status, outcome)
        return made + len(claimed)

    def idle_timeout(self) -> float:
        """Seconds until the next retry is due (capped by the poll interval on SQLite)."""
        with self.sessions() as session:
            if webhooks.pending_fan_out(session):
                return 0.0
            due = webhooks.next_due(session)
        if due is None:
            return 60.0
        return max(0.0, (due - utcnow()).total_seconds())

    def run_forever(self, *, once: bool = False) -> None:
        self.start_brokers(once=once)
        failing = False
        while not self.stopping.is_set():
            version = self.waker.version()
            try:
                busy = self.step()
                wait = 0.0 if busy else self.idle_timeout()
                if failing:
                    log.info("database reachable again")
                failing = False
            except DBAPIError as exc:  # database down, schema not migrated yet...
                if not failing:
                    log.error("dispatch round failed: %s", exc)
                failing = True
                wait = 2.0
            if once and not failing and wait > 0:
                return
            if wait > 0:
                self.waker.wait(version, wait)


def run_dispatcher(settings: Settings, *, once: bool = False,
                   concurrency: int | None = None) -> None:
    dispatcher = Dispatcher(settings, concurrency=concurrency)

    def _stop(signum, _frame):
        log.info("signal %s: finishing the attempts in flight, then stopping", signum)
        dispatcher.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    started = dt.datetime.now(dt.UTC)
    log.info("paddles dispatch started (%d concurrent attempts, listening: %s, brokers: %s)",
             dispatcher.concurrency, dispatcher.waker.listening,
             ", ".join(w.broker.name for w in dispatcher.brokers) or "none")
    try:
        dispatcher.run_forever(once=once)
    finally:
        dispatcher.close()
        log.info("paddles dispatch stopped after %s", dt.datetime.now(dt.UTC) - started)
