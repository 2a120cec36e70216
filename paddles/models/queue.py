"""Queues for paddles-as-queue (spec 11): a name and its pause state."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCTime, utcnow


class Queue(Base):
    __tablename__ = "queues"

    # Jobs name their queue in jobs.queue (no foreign key: a job may name a queue never made).
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    paused_by: Mapped[str | None] = mapped_column(String(64))
    paused_since: Mapped[UTCTime | None]
    paused_until: Mapped[UTCTime | None]

    def is_paused(self, now: dt.datetime | None = None) -> bool:
        """`paused` is derived: a pause lasts until paused_until, inclusive (spec 6.4)."""
        return self.paused_until is not None and (now or utcnow()) <= self.paused_until

    def __repr__(self) -> str:
        return f"<Queue {self.name!r}>"
