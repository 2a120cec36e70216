"""/events/ (replay, message events), /events/stream (Server-Sent Events), /events/brokers
(message brokers' state), /subscriptions/."""
from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlencode

import orjson
from pecan import expose, request, response
from sqlalchemy.exc import DBAPIError
from webob import Response

from .. import notify, serializers
from ..brokers import BrokerUrlError, parse_brokers
from ..db import make_session_factory
from ..errors import Unavailable
from ..auth import principal_of
from ..schemas.events import (parse_delivery_query, parse_event_query, parse_message_body,
                              parse_subscription_body, parse_subscription_id)
from ..services import brokers as broker_service
from ..services import events as event_service
from ..services import tokens as token_service
from ..services import webhooks as webhook_service
from .base import Resource, StreamedResponse, child

log = logging.getLogger(__name__)

STREAM_BATCH = 500  # events read per query while a stream catches up
RETRY_MS = 2000  # how long an EventSource waits before it reconnects


class EventsController(Resource):
    def __init__(self, settings):
        super().__init__(settings)
        self.stream = EventStreamController(settings)
        self.brokers = EventBrokersController(settings)

    @expose("json")
    def get_all(self, **_):
        query = parse_event_query(self._params())
        since = query["since"] or 0
        events, cursor = event_service.list_events(
            self._db(), since=since, types=query["types"], run_name=query["run_name"],
            job_id=query["job_id"], limit=query["limit"])
        return {"events": [serializers.event_detail(e) for e in events], "next": cursor,
                "next_href": self._next_href(query, cursor)}

    def _next_href(self, query, cursor: int) -> str:
        params = [("since", cursor)] + [("type", t) for t in query["types"]]
        params += [(k, query[n]) for k, n in (("run", "run_name"), ("job", "job_id"))
                   if query[n] is not None]
        params.append(("limit", query["limit"]))
        return f"{self._settings.address}/events/?{urlencode(params)}"

    @expose("json")
    def post(self, **_):
        fields = parse_message_body(self._body())
        event = event_service.post_message(self._db(), **fields)
        response.status = 201
        return serializers.event_detail(event)


class EventBrokersController(Resource):
    """Where each message broker of event_brokers is: cursor, lag, published, failures."""

    @expose("json")
    def get_all(self, **_):
        rows, latest = broker_service.list_brokers(self._db())
        try:
            configured = {b.name for b in parse_brokers(self._settings.event_brokers)}
        except BrokerUrlError:  # check-config says what is wrong with it
            configured = set()
        return {"latest_event_id": latest,
                "brokers": [serializers.broker_state(row, latest, configured) for row in rows]}


# ---- Server-Sent Events ---------------------------------------------------------------------

class _StreamSlots:
    """At most `limit` open streams per process, so streams never take every thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self.open = 0

    def take(self, limit: int) -> bool:
        with self._lock:
            if limit > 0 and self.open >= limit:
                return False
            self.open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.open -= 1


SLOTS = _StreamSlots()


class EventStreamController(Resource):
    # EventSource sends `Accept: text/event-stream`; errors are JSON; curl sends */*
    @expose(content_type="text/event-stream")
    @expose(content_type="application/json")
    @expose()
    def get_all(self, **_):
        settings = self._settings
        query = parse_event_query(self._params(),
                                          last_event_id=request.headers.get("Last-Event-ID"))
        db = self._db()
        if query["since"] is None:  # live only: from the newest event on
            query["since"] = event_service.latest_event_id(db)
        resp = StreamedResponse(status=200, content_type=None, charset=None)
        resp.content_length = None  # sent chunked, as it comes
        resp.headers.update({"Content-Type": "text/event-stream; charset=utf-8",
                             "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        if request.method == "HEAD":
            resp.app_iter = []
            return resp
        if not SLOTS.take(settings.events_stream_limit):
            raise Unavailable("too many open event streams; retry later, or replay with "
                              "GET /events/?since=ID", headers={"Retry-After": "5"})
        try:
            engine = db.get_bind()
            waker = notify.get_waker(engine, settings.events_poll_interval)
            principal = principal_of(request.environ)
            resp.app_iter = EventStream(make_session_factory(engine), waker, query, settings,
                                        token=None if principal is None else principal.name)
        except BaseException:
            SLOTS.give_back()
            raise
        return resp


class EventStream:
    """The WSGI body of one stream. `close()` (called by the server when the client goes or
    the stream ends) gives the slot back, even when the body was never iterated.

    `token`: the name of the API token that opened it (auth on). The stream ends at its
    next read once that token is revoked or expired: a revocation holds for a stream as it
    does from the next request on."""

    def __init__(self, sessions, waker, query, settings, *, token: str | None = None):
        self._sessions = sessions
        self._waker = waker
        self._query = query
        self._settings = settings
        self._token = token
        self._closed = False
        self._gen = self._generate()

    def __iter__(self):
        return self._gen

    def close(self):
        if not self._closed:
            self._closed = True
            self._gen.close()
            SLOTS.give_back()

    def _generate(self):
        query, settings, waker = self._query, self._settings, self._waker
        last = query["since"]
        keepalive = settings.events_keepalive
        deadline = time.monotonic() + settings.events_stream_max_seconds
        yield f"retry: {RETRY_MS}\n: paddles events after id {last}\n\n".encode()
        next_ping = time.monotonic() + keepalive
        while True:
            version = waker.version()
            try:
                with self._sessions() as session:
                    revoked = self._token is not None and not token_service.is_live(
                        session, self._token)
                    if not revoked:
                        events, cursor = event_service.list_events(
                            session, since=last, types=query["types"],
                            run_name=query["run_name"], job_id=query["job_id"],
                            limit=STREAM_BATCH)
            except DBAPIError as exc:  # the database went away (restart, failover): end the
                # stream cleanly; the client resumes with Last-Event-ID, and nothing is lost
                log.warning("event stream ended, database error: %s",
                            str(exc.orig or exc).strip().split("\n", 1)[0])
                yield b": database unavailable; reconnect with Last-Event-ID\n\n"
                return
            if revoked:
                yield b": token revoked or expired; the stream ends\n\n"
                return
            last = cursor
            if events:
                yield b"".join(_frame(event) for event in events)
                next_ping = time.monotonic() + keepalive
                if len(events) >= STREAM_BATCH:
                    continue  # catching up: read on before waiting
            now = time.monotonic()
            if now >= deadline:
                yield b": time limit reached; reconnect with Last-Event-ID\n\n"
                return
            if notify.shutting_down():
                yield b": server stopping; reconnect with Last-Event-ID\n\n"
                return
            if now >= next_ping:
                yield b": keep-alive\n\n"
                next_ping = now + keepalive
            waker.wait(version, min(next_ping, deadline) - now)


def _frame(event) -> bytes:
    return b"id: %d\ndata: %s\n\n" % (event.id, orjson.dumps(serializers.event_detail(event)))


# ---- webhook subscriptions -----------------------------------------------------------------

class SubscriptionsController(Resource):
    @expose("json")
    def get_all(self, **_):
        return [serializers.subscription_detail(s, self._settings)
                for s in webhook_service.list_subscriptions(self._db())]

    @expose("json")
    def post(self, **_):
        fields = parse_subscription_body(self._body(), partial=False)
        sub = webhook_service.create_subscription(
            self._db(), fields, allow_private=self._settings.webhook_allow_private)
        response.status = 201
        response.headers["Location"] = f"{self._settings.address}/subscriptions/{sub.id}/"
        return serializers.subscription_detail(sub, self._settings, secret=True)

    @expose()
    def _lookup(self, sub_id, *remainder):
        return SubscriptionController(self._settings, sub_id), list(remainder)


class SubscriptionController(Resource):
    deliveries = child(lambda sub: DeliveriesController(sub._settings, sub._raw_id))

    def __init__(self, settings, sub_id: str):
        super().__init__(settings)
        self._raw_id = sub_id

    @property
    def _id(self) -> int:
        return parse_subscription_id(self._raw_id)

    @expose("json")
    def get(self, **_):
        return serializers.subscription_detail(
            webhook_service.get_subscription(self._db(), self._id), self._settings)

    @expose("json")
    def put(self, **_):
        sub_id = self._id
        fields = parse_subscription_body(self._body(), partial=True)
        sub = webhook_service.update_subscription(
            self._db(), sub_id, fields, allow_private=self._settings.webhook_allow_private)
        return serializers.subscription_detail(sub, self._settings)

    @expose()
    def delete(self, **_):
        webhook_service.delete_subscription(self._db(), self._id)
        return Response(status=204)


class DeliveriesController(Resource):
    def __init__(self, settings, sub_id: str):
        super().__init__(settings)
        self._raw_id = sub_id

    @expose("json")
    def get_all(self, **_):
        sub_id = parse_subscription_id(self._raw_id)
        query = parse_delivery_query(self._params())
        return [serializers.delivery_detail(d)
                for d in webhook_service.list_deliveries(self._db(), sub_id, **query)]
