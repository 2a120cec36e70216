"""AMQP 0-9-1 (RabbitMQ) with pika: a durable topic exchange, persistent messages, publisher
confirms.

The exchange (`?exchange=`, default `paddles`) is declared durable, of type topic, when the
connection opens (a no-op when it exists with those properties; an error naming the
difference otherwise). The routing key is the event's topic and type
(`org.paddles.job.status`), so consumers bind queues with patterns such as
`org.paddles.job.*` or `org.paddles.#`. Each message is persistent (delivery mode 2), has
content type application/json, the event's uuid as `message_id`, its type as `type` and its
time as `timestamp`. The channel is in confirm mode: `basic_publish` returns once the broker
has confirmed the message (for a persistent message routed to a durable queue, once it is
on disk), and raises if the broker refused it.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from urllib.parse import quote, urlencode

import pika
import pika.exceptions

from .base import Broker, Message, PublishFailed, describe

# pika logs every failed connection attempt at ERROR, with tracebacks, each retry; the
# dispatcher says it once per outage (worker.py), and check-config on its line
logging.getLogger("pika").setLevel(logging.CRITICAL)


class AmqpPublisher:
    def __init__(self, broker: Broker, *, timeout: float):
        self.broker = broker
        self.exchange = broker.options["exchange"]
        self.timeout = timeout
        self._connection = None
        self._channel = None

    def parameters(self) -> pika.URLParameters:
        b = self.broker
        auth = ""
        if b.username is not None:
            auth = quote(b.username, safe="") + (f":{quote(b.password, safe='')}"
                                                 if b.password is not None else "") + "@"
        host = f"[{b.host}]" if ":" in b.host else b.host
        url = f"{b.scheme}://{auth}{host}:{b.port}/{quote(b.path or '/', safe='')}"
        if b.extra:
            url += "?" + urlencode(b.extra)
        params = pika.URLParameters(url)
        # one attempt per round (paddles dispatch retries with back-off), bounded waits
        params.connection_attempts = 1
        params.socket_timeout = self.timeout
        params.stack_timeout = self.timeout
        params.blocked_connection_timeout = self.timeout
        return params

    def _open(self):
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self.close()
        self._connection = pika.BlockingConnection(self.parameters())
        channel = self._connection.channel()
        channel.exchange_declare(exchange=self.exchange, exchange_type="topic", durable=True)
        channel.confirm_delivery()
        self._channel = channel
        return channel

    def publish(self, messages: Sequence[Message]) -> None:
        done = 0
        try:
            channel = self._open()
            for message in messages:
                channel.basic_publish(
                    self.exchange, message.key, message.body,
                    properties=pika.BasicProperties(
                        content_type="application/json", delivery_mode=2,
                        message_id=message.uuid, type=message.type, app_id="paddles",
                        timestamp=int(message.time.timestamp())))
                done += 1
        except (pika.exceptions.AMQPError, OSError, ValueError) as exc:
            self.close()
            raise PublishFailed(done, describe(exc)) from exc

    def probe(self) -> str:
        """Log in; say whether the exchange exists (passively: a check declares nothing)."""
        connection = pika.BlockingConnection(self.parameters())
        try:
            channel = connection.channel()
            try:
                channel.exchange_declare(exchange=self.exchange, passive=True)
                found = f"exchange {self.exchange} exists"
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 404:
                    raise
                found = f"exchange {self.exchange} not there yet (paddles dispatch declares it)"
            return f"reachable, logged in to vhost {self.parameters().virtual_host}; {found}"
        finally:
            if connection.is_open:
                connection.close()

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception:  # already broken: nothing left to close cleanly
                pass
