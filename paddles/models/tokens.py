"""API tokens: who may call the HTTP API, and with which roles (paddles/auth.py).

Only the sha256 of a token's secret is stored; the secret itself is shown once, when the
token is created (`paddles token create`).
"""
from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, JSONValue, UTCTime, utcnow


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    # hex sha256 of the whole secret ("pdl_..."); the only lookup key
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # the first characters of the secret, to tell tokens apart in listings and logs
    prefix: Mapped[str] = mapped_column(String(16))
    roles: Mapped[JSONValue]  # list of role names, e.g. ["read", "write"]
    # a token with an owner may only lock and unlock nodes as that locked_by value
    owner: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[UTCTime] = mapped_column(default=utcnow)
    expires: Mapped[UTCTime | None]  # refused from then on; None: until revoked
    revoked: Mapped[UTCTime | None]
