"""Events (the transactional outbox), webhook subscriptions and their deliveries.

An event row is written in the same transaction as the change it describes
(services/events.py). Event ids only grow, and in commit order: readers replay with
`id > since` and never skip one (see services/events.flush_events for how).
"""
from __future__ import annotations

import enum

from sqlalchemy import (BigInteger, Boolean, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, JSONValue, UTCTime, str_enum, utcnow

# 64-bit ids on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the (auto-incrementing) rowid.
EventId = BigInteger().with_variant(Integer, "sqlite")


class Verbosity(str, enum.Enum):
    """How much a webhook payload says (LAVA's notify verbosity)."""

    QUIET = "quiet"  # type and subject
    STATUS = "status"  # plus status and counts
    VERBOSE = "verbose"  # plus the event data and the full object


class DeliveryStatus(str, enum.Enum):
    PENDING = "pending"  # waiting for its (next) attempt, or in flight
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"  # retried for the whole retry window: given up


VERBOSITY_VALUES = tuple(v.value for v in Verbosity)
DELIVERY_STATUS_VALUES = tuple(s.value for s in DeliveryStatus)
# every event type services/events.py records, in the order the OpenAPI document lists them
EVENT_TYPES = ("run.created", "run.status", "run.deleted", "job.created", "job.updated",
               "job.status", "job.deleted", "node.created", "node.locked", "node.unlocked",
               "node.updated", "node.deleted", "artifact.created", "artifact.updated",
               "artifact.deleted", "message")


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_run_name_id", "run_name", "id"),
        Index("ix_events_time", "time"),
        # AUTOINCREMENT: SQLite never hands out an id again, even after the newest rows are
        # purged (without it, max(rowid) + 1 could repeat an id a client has already seen).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36))
    time: Mapped[UTCTime] = mapped_column(default=utcnow)
    topic: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text)  # the resource's path: runs/NAME/jobs/ID
    username: Mapped[str | None] = mapped_column(String(128))
    # what replay filters on (`run=`); kept as text, the run may be gone
    run_name: Mapped[str | None] = mapped_column(String(512))
    job_id: Mapped[str | None] = mapped_column(String(32))
    data: Mapped[JSONValue]

    def __repr__(self) -> str:
        return f"<Event {self.id} {self.type} {self.subject}>"


class Subscription(Base):
    """A webhook: LAVA's notify block (criteria, verbosity, recipient, compare) as a row."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(Text)
    types: Mapped[JSONValue]  # globs on the event type: ["job.*", "run.status"]
    criteria: Mapped[JSONValue]  # {"status": [...], "suite": "rados", "run": "*-smithi"}
    verbosity: Mapped[Verbosity] = mapped_column(str_enum(Verbosity, "verbosity"))
    compare: Mapped[bool] = mapped_column(Boolean, default=False)
    secret: Mapped[str] = mapped_column(String(256))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created: Mapped[UTCTime] = mapped_column(default=utcnow)
    updated: Mapped[UTCTime] = mapped_column(default=utcnow)
    # fan-out cursor: events up to this id have been matched against the subscription
    last_event_id: Mapped[int] = mapped_column(EventId, default=0)
    # consecutive failed attempts, and since when (reset by a success)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[UTCTime | None]
    last_success: Mapped[UTCTime | None]


class Delivery(Base):
    """One event for one subscription: attempted until a 2xx or the retry window ends."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id"),
        Index("ix_deliveries_status_next_attempt", "status", "next_attempt"),
        Index("ix_deliveries_event_id", "event_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36))
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(EventId, ForeignKey("events.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[DeliveryStatus] = mapped_column(str_enum(DeliveryStatus, "delivery_status"),
                                                   default=DeliveryStatus.PENDING)
    body: Mapped[str] = mapped_column(Text)  # the JSON sent, the same bytes on every attempt
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[UTCTime] = mapped_column(default=utcnow)
    # when the next attempt is due; while an attempt is in flight, when its lease ends
    next_attempt: Mapped[UTCTime | None]
    last_attempt: Mapped[UTCTime | None]
    response_status: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    delivered: Mapped[UTCTime | None]
    log: Mapped[JSONValue]  # the latest attempts: [{time, status, error, ms}]
