"""Webhook subscriptions and their deliveries: all the state `paddles dispatch` works from.

The dispatch worker (paddles/dispatch.py) repeats three short transactions:
1. `fan_out`: for each enabled subscription, the events after its cursor are matched against
   its types and criteria, and a delivery row (with the exact body to send) is inserted for
   each match; the cursor moves on in the same transaction, up to a settled horizon
   (events.latest_event_id), so a cursor never skips an event.
2. `claim_deliveries`: due pending deliveries are leased (attempts + 1, next_attempt = now +
   lease), FOR UPDATE SKIP LOCKED on PostgreSQL so several workers take different rows.
3. after the HTTP attempt, `record_attempt` marks it delivered, or schedules the retry
   (exponential backoff), gives up after the retry window, and disables a subscription that
   keeps failing.
A worker killed mid-attempt leaves its leased rows pending: they are due again when the lease
ends, and are sent again (at-least-once; receivers dedupe on X-Paddles-Delivery).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import ipaddress
import secrets
import socket
import uuid
from typing import Any
from collections.abc import Mapping
from urllib.parse import urlsplit

import orjson
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from .. import serializers
from ..errors import InvalidRequest, NotFound
from ..models import Delivery, DeliveryStatus, Event, Node, Run, Subscription, Verbosity, utcnow
from ..settings import Settings
from . import compare as compare_service
from . import events as event_service
from . import jobs as job_service
from . import outbox
from .common import fetch_one

FAN_OUT_BATCH = 500
LOG_ENTRIES = 20  # attempts kept in a delivery's log


class SubscriptionNotFound(NotFound):
    pass


# ---- subscriptions ------------------------------------------------------------------------

class TargetRefused(InvalidRequest):
    pass


def check_target(url: str) -> None:
    """Refuse a URL whose host is, or resolves to, an address that is not global: loopback,
    private (RFC 1918, ULA), link-local (cloud metadata at 169.254.169.254), CGNAT, reserved,
    multicast or unspecified. The guard behind `webhook_allow_private = False`."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, ValueError, UnicodeError):
        raise TargetRefused(f"url host {host} does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None:
            address = mapped
        if not address.is_global or address.is_multicast:
            raise TargetRefused(f"url host {host} is a non-public address ({address}); "
                                "webhooks to private networks are not allowed here")


def create_subscription(session: Session, fields: Mapping[str, Any], *,
                        allow_private: bool = True) -> Subscription:
    """A new subscription sees the events after the newest one when it is created."""
    if not allow_private:
        check_target(fields["url"])
    now = utcnow()
    sub = Subscription(url=fields["url"], description=fields.get("description"),
                       types=fields.get("types") or ["*"], criteria=fields.get("criteria") or {},
                       verbosity=Verbosity(fields.get("verbosity") or "status"),
                       compare=bool(fields.get("compare", False)),
                       secret=fields.get("secret") or secrets.token_hex(32),
                       enabled=fields.get("enabled", True), created=now, updated=now,
                       last_event_id=event_service.latest_event_id(session), failures=0)
    session.add(sub)
    session.flush()
    return sub


def get_subscription(session: Session, sub_id: int, *, for_update: bool = False) -> Subscription:
    return fetch_one(session, select(Subscription).where(Subscription.id == sub_id),
                     for_update=for_update, missing=SubscriptionNotFound("subscription not found"))


def list_subscriptions(session: Session) -> list[Subscription]:
    return list(session.scalars(select(Subscription).order_by(Subscription.id)))


def update_subscription(session: Session, sub_id: int, fields: Mapping[str, Any], *,
                        allow_private: bool = True) -> Subscription:
    """Change the given keys. Enabling a disabled subscription clears its failure record; it
    then resumes from its cursor (events meanwhile are delivered, none lost)."""
    if not allow_private and "url" in fields:
        check_target(fields["url"])
    sub = get_subscription(session, sub_id, for_update=True)
    for key, value in fields.items():
        if key == "verbosity":
            value = Verbosity(value)
        setattr(sub, key, value)
    if fields.get("enabled"):
        sub.disabled_reason = None
        sub.failures = 0
        sub.failing_since = None
    elif fields.get("enabled") is False and "disabled_reason" not in fields:
        sub.disabled_reason = "disabled by request"
    sub.updated = utcnow()
    return sub


def delete_subscription(session: Session, sub_id: int) -> None:
    session.delete(get_subscription(session, sub_id))


def list_deliveries(session: Session, sub_id: int, *, status: str | None = None,
                    before: int | None = None, limit: int = 100) -> list[Delivery]:
    """Newest first; `before` (a delivery id) pages back."""
    get_subscription(session, sub_id)
    stmt = select(Delivery).where(Delivery.subscription_id == sub_id)
    if status is not None:
        stmt = stmt.where(Delivery.status == DeliveryStatus(status))
    if before is not None:
        stmt = stmt.where(Delivery.id < before)
    return list(session.scalars(stmt.order_by(Delivery.id.desc()).limit(limit)))


# ---- matching ----------------------------------------------------------------------------

def _globs(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def status_matches(wanted: str, status: str | None) -> bool:
    """`fail` matches a job's `fail` and a run's `finished fail`; `finished fail` only the run."""
    if status is None:
        return False
    return wanted == status or (status.startswith("finished ") and wanted == status[9:])


def matches(sub: Subscription, event: Event) -> bool:
    """The subscription's types and criteria (LAVA notify criteria) against one event."""
    if not event_service.type_matches(event.type, sub.types or ["*"]):
        return False
    data = event.data or {}
    criteria = sub.criteria or {}
    if "status" in criteria and not any(status_matches(w, data.get("status"))
                                        for w in _globs(criteria["status"])):
        return False
    if "run" in criteria and not (event.run_name is not None and any(
            fnmatch.fnmatchcase(event.run_name, g) for g in _globs(criteria["run"]))):
        return False
    for key in ("suite", "branch", "user", "machine_type"):
        if key in criteria:
            value = data.get(key)
            if value is None or not any(fnmatch.fnmatchcase(str(value), g)
                                        for g in _globs(criteria[key])):
                return False
    return True


# ---- fan-out -----------------------------------------------------------------------------

COMPARED_STATUSES = ("finished pass", "finished fail", "finished dead")


def fan_out(session: Session, settings: Settings, *, batch: int = FAN_OUT_BATCH) -> int:
    """Turn new events into deliveries for every enabled subscription; the count made."""
    # another worker fans out the subscriptions it holds
    subs = list(session.scalars(outbox.skip_locked(
        session, select(Subscription).where(Subscription.enabled).order_by(Subscription.id))))
    if not subs:
        return 0
    start = min(sub.last_event_id for sub in subs)
    events, upto = outbox.events_after(session, start, limit=batch)
    if upto <= start:
        return 0
    payloads = PayloadCache(session, settings)
    rows = []
    for sub in subs:
        for event in events:
            if sub.last_event_id < event.id <= upto and matches(sub, event):
                rows.append({"uuid": str(uuid.uuid4()), "subscription_id": sub.id,
                             "event_id": event.id, "event_type": event.type,
                             "status": DeliveryStatus.PENDING,
                             "body": payloads.body(sub, event), "attempts": 0,
                             "created": utcnow(), "next_attempt": utcnow(), "log": []})
        sub.last_event_id = max(sub.last_event_id, upto)
    if rows:
        session.execute(insert(Delivery), rows)
    return len(rows)


class PayloadCache:
    """Builds webhook bodies; the object and comparison of an event are looked up once."""

    def __init__(self, session: Session, settings: Settings):
        self.session = session
        self.settings = settings
        self._objects: dict[int, Any] = {}
        self._compares: dict[int, Any] = {}

    def body(self, sub: Subscription, event: Event) -> str:
        verbose = sub.verbosity == Verbosity.VERBOSE
        obj = self.object(event) if verbose else None
        compare = self.compare(event) if sub.compare else None
        payload = serializers.webhook_payload(event, sub.verbosity.value, subscription_id=sub.id,
                                              obj=obj, compare=compare)
        return orjson.dumps(payload).decode()

    def object(self, event: Event):
        """The full object the event is about, as it is now (None once it is gone)."""
        if event.id not in self._objects:
            self._objects[event.id] = _current_object(self.session, self.settings, event)
        return self._objects[event.id]

    def compare(self, event: Event):
        """The comparison, for a run that has just finished."""
        if event.type != "run.status" or (event.data or {}).get("status") \
                not in COMPARED_STATUSES:
            return None
        if event.id not in self._compares:
            try:
                self._compares[event.id] = compare_service.compare_runs(self.session,
                                                                        event.run_name)
            except NotFound:
                self._compares[event.id] = None
        return self._compares[event.id]


def _current_object(session: Session, settings: Settings, event: Event):
    kind = event.type.split(".", 1)[0]
    try:
        if kind == "run" and event.type != "run.deleted":
            run = session.scalar(select(Run).where(Run.name == event.run_name))
            return serializers.run_summary(run, settings) if run is not None else None
        if kind == "job" and event.type != "job.deleted":
            return serializers.job_detail(
                job_service.read_job(session, event.run_name, event.job_id), settings)
        if kind == "node" and event.type != "node.deleted":
            node = session.scalar(select(Node).where(Node.name == event.data.get("name")))
            return serializers.node_detail(node) if node is not None else None
    except NotFound:
        return None
    return None


# ---- claiming and recording attempts ------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Claimed:
    id: int
    uuid: str
    event_id: int
    event_type: str
    body: str
    url: str
    secret: str
    attempt: int


def claim_deliveries(session: Session, *, limit: int, lease: float,
                     now: dt.datetime | None = None) -> list[Claimed]:
    """Lease up to `limit` due deliveries of enabled subscriptions, oldest due first."""
    now = now or utcnow()
    stmt = (select(Delivery, Subscription.url, Subscription.secret)
            .join(Subscription, Subscription.id == Delivery.subscription_id)
            .where(Delivery.status == DeliveryStatus.PENDING, Delivery.next_attempt <= now,
                   Subscription.enabled)
            .order_by(Delivery.next_attempt, Delivery.id).limit(limit))
    claimed = []
    for delivery, url, secret in session.execute(outbox.skip_locked(session, stmt,
                                                                    of=Delivery)):
        delivery.attempts += 1
        delivery.last_attempt = now
        delivery.next_attempt = outbox.lease_end(now, lease)
        claimed.append(Claimed(delivery.id, delivery.uuid, delivery.event_id,
                               delivery.event_type, delivery.body, url, secret,
                               delivery.attempts))
    return claimed


def backoff(settings: Settings, attempt: int) -> float:
    """Seconds before retry number `attempt` (1, 2, ...): doubling, capped, 0-10 % jitter."""
    return outbox.backoff(settings.webhook_backoff_base, settings.webhook_backoff_max, attempt)


def record_attempt(session: Session, settings: Settings, claimed: Claimed, *,
                   status_code: int | None, error: str | None, elapsed_ms: float,
                   now: dt.datetime | None = None) -> str:
    """Store an attempt's outcome; returns the delivery's status afterwards."""
    now = now or utcnow()
    delivery = fetch_one(session, select(Delivery).where(Delivery.id == claimed.id),
                         for_update=True)
    if delivery is None:
        return "gone"  # its event was purged, or its subscription deleted
    sub = get_subscription(session, delivery.subscription_id, for_update=True)
    ok = error is None and status_code is not None and 200 <= status_code < 300
    entry = {"attempt": claimed.attempt, "time": serializers.wire_time(now),
             "status": status_code, "error": error, "ms": round(elapsed_ms, 1)}
    delivery.log = [*(delivery.log or []), entry][-LOG_ENTRIES:]
    delivery.response_status = status_code
    delivery.error = error
    if delivery.status != DeliveryStatus.PENDING:
        return delivery.status.value  # another worker's attempt already settled it
    if ok:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered = now
        delivery.next_attempt = None
        sub.failures = 0
        sub.failing_since = None
        sub.last_success = now
        return delivery.status.value
    sub.failures = (sub.failures or 0) + 1
    sub.failing_since = sub.failing_since or now
    age = (now - delivery.created).total_seconds()
    if age >= settings.webhook_retry_seconds:
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt = None
    else:
        delivery.next_attempt = now + dt.timedelta(seconds=backoff(settings, delivery.attempts))
    if sub.enabled and sub.failures >= settings.webhook_disable_failures and \
            (now - sub.failing_since).total_seconds() >= settings.webhook_disable_seconds:
        sub.enabled = False
        what = error or f"HTTP {status_code}"
        sub.disabled_reason = (f"disabled at {serializers.wire_time(now)} after {sub.failures} "
                               f"consecutive failed deliveries since "
                               f"{serializers.wire_time(sub.failing_since)}; last: {what}")
        sub.updated = now
    return delivery.status.value


def next_due(session: Session) -> dt.datetime | None:
    """When the earliest pending delivery of an enabled subscription is due."""
    return session.scalar(select(func.min(Delivery.next_attempt))
                          .join(Subscription, Subscription.id == Delivery.subscription_id)
                          .where(Delivery.status == DeliveryStatus.PENDING,
                                 Subscription.enabled))


def pending_fan_out(session: Session) -> bool:
    """True when some enabled subscription's cursor is behind the newest event."""
    top = event_service.newest_event_id(session)
    return session.scalar(select(func.count()).select_from(Subscription)
                          .where(Subscription.enabled, Subscription.last_event_id < top)) > 0

