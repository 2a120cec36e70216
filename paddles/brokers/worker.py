"""The loop `paddles dispatch` runs for each broker of `event_brokers`, on a thread of its own
(a broker that is down never holds up another, nor the webhooks).

Each round: if the broker's cursor is behind the newest event and it is due
(services/brokers.py), lease it, read the next BATCH events, and publish the matching ones
in id order, CHUNK at a time; after each chunk the cursor moves to the last confirmed event
and the lease is renewed. A failure (connection refused or lost, no confirmation in time, a
refusal) leaves the cursor after the last confirmed event and retries after a back-off
(broker_backoff_base doubling up to broker_backoff_max), for as long as it takes, while the
server goes on recording events. Caught up, it sleeps until a new event (PostgreSQL NOTIFY)
or the poll interval (SQLite).
"""
from __future__ import annotations

import logging
import threading

from sqlalchemy.exc import DBAPIError

from ..db import begin_write
from ..services import brokers as broker_service
from ..settings import Settings
from . import Broker, PublishFailed, describe, make_publisher, message_for

log = logging.getLogger(__name__)

BATCH = 1000  # events read per claim
CHUNK = 100  # messages published between two cursor moves


class BrokerWorker:
    def __init__(self, broker: Broker, settings: Settings, sessions, waker, *, owner: str,
                 stopping: threading.Event):
        self.broker = broker
        self.settings = settings
        self.sessions = sessions
        self.waker = waker
        self.owner = owner
        self.stopping = stopping
        self.lease = settings.broker_lease
        self.publisher = make_publisher(broker, timeout=settings.broker_timeout,
                                        topic_prefix=settings.event_topic_prefix)
        self._failing = False
        self._ensured = False

    def ensure_cursor(self) -> None:
        """Make the broker's cursor row (at the newest event) if it has none yet."""
        with self.sessions.begin() as session:
            begin_write(session)
            broker_service.ensure_cursor(session, self.broker.name)
        self._ensured = True

    def step(self) -> float | None:
        """One batch if one is due: seconds to wait before the next (0: at once; None:
        until a new event)."""
        if not self._ensured:
            self.ensure_cursor()
        with self.sessions() as session:
            wait = broker_service.due(session, self.broker.name)
        if wait is None or wait > 0:
            return wait
        with self.sessions.begin() as session:
            begin_write(session)
            claim = broker_service.claim_broker(session, self.broker.name, owner=self.owner,
                                                lease=self.lease, batch=BATCH)
            messages = [] if claim is None else [message_for(e) for e in claim.events
                                                 if self.broker.wants(e.type)]
        if claim is None:  # another dispatcher took it first
            return min(self.lease, self.settings.dispatch_poll_interval)
        position, unrecorded = claim.cursor, 0
        for start in range(0, len(messages), CHUNK):
            chunk = messages[start:start + CHUNK]
            try:
                self.publisher.publish(chunk)
            except PublishFailed as exc:
                confirmed = chunk[:exc.done]
                if confirmed:
                    position = confirmed[-1].event_id
                return self._failed(position, unrecorded + len(confirmed), exc.reason)
            except Exception as exc:  # a client library's surprise: retried like the rest
                log.exception("broker %s: publishing failed", self.broker.name)
                self.publisher.close()
                return self._failed(position, unrecorded, describe(exc))
            position = chunk[-1].event_id
            unrecorded += len(chunk)
            if start + CHUNK < len(messages):  # more to come: move the cursor, keep the lease
                if not self._record(position, unrecorded, lease=self.lease):
                    return 0.0
                unrecorded = 0
        self._record(claim.upto, unrecorded, lease=None)
        if self._failing:
            log.info("broker %s: publishing again", self.broker.name)
            self._failing = False
        log.debug("broker %s: %d events published, cursor at %d", self.broker.name,
                  len(messages), claim.upto)
        return 0.0

    def _record(self, position: int, published: int, *, lease: float | None) -> bool:
        with self.sessions.begin() as session:
            begin_write(session)
            held = broker_service.record_progress(session, self.broker.name, owner=self.owner,
                                                  position=position, published=published,
                                                  lease=lease)
        if not held:
            log.warning("broker %s: lease lost (this dispatcher stalled past %g s); another "
                        "dispatcher goes on from event %d", self.broker.name, self.lease,
                        position)
        return held

    def _failed(self, position: int, published: int, reason: str) -> float:
        with self.sessions.begin() as session:
            begin_write(session)
            delay = broker_service.record_failure(
                session, self.broker.name, owner=self.owner, position=position,
                published=published, error=reason,
                backoff_base=self.settings.broker_backoff_base,
                backoff_max=self.settings.broker_backoff_max)
        if delay is None:
            return 0.0
        level = logging.INFO if self._failing else logging.WARNING  # once per outage
        log.log(level, "broker %s: %s; retrying from event %d in %.1f s", self.broker.name,
                reason, position + 1, delay)
        self._failing = True
        return delay

    def run_forever(self, *, once: bool = False) -> None:
        db_failing = False
        while not self.stopping.is_set():
            version = self.waker.version()
            try:
                wait = self.step()
                db_failing = False
            except DBAPIError as exc:  # database down: the cursor is safe, try again
                if not db_failing:
                    log.error("broker %s: database error: %s", self.broker.name, exc)
                db_failing = True
                wait = 2.0
            if once and (wait is None or wait > 0):
                return
            if wait is None:
                wait = 60.0  # the waker's own limit (poll interval, LISTEN re-check) applies
            if wait > 0:
                self.waker.wait(version, wait)

    def close(self) -> None:
        self.publisher.close()
