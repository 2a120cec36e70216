"""Where each message broker of `event_brokers` is in the event outbox.

One row per broker (keyed by its URL with the password masked): the id of the last event
it has confirmed (the cursor), what has been published, the failure record, and the lease
that lets one `paddles dispatch` at a time publish to it (services/brokers.py).
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCTime, utcnow
from .events import EventId


class BrokerCursor(Base):
    __tablename__ = "broker_cursors"

    id: Mapped[int] = mapped_column(primary_key=True)
    # the broker URL, password masked: amqp://paddles@mq.lab:5672/ci?exchange=paddles
    name: Mapped[str] = mapped_column(String(1024), unique=True)
    # events up to this id have been confirmed by the broker (or did not match its types)
    last_event_id: Mapped[int] = mapped_column(EventId, default=0)
    published: Mapped[int] = mapped_column(BigInteger, default=0)  # messages confirmed
    failures: Mapped[int] = mapped_column(Integer, default=0)  # in a row (drives back-off)
    failures_total: Mapped[int] = mapped_column(BigInteger, default=0)
    failing_since: Mapped[UTCTime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_success: Mapped[UTCTime | None]
    # when it may be worked on next: while a dispatcher holds it, when that lease ends;
    # after a failure, when the retry is due
    next_attempt: Mapped[UTCTime] = mapped_column(default=utcnow)
    owner: Mapped[str | None] = mapped_column(String(255))  # the dispatcher holding the lease
    created: Mapped[UTCTime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<BrokerCursor {self.name} at {self.last_event_id}>"
