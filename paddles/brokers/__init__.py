"""Message brokers that `paddles dispatch` publishes every event to (`event_brokers`).

`PADDLES_EVENT_BROKERS` is a comma-separated list of broker URLs; each gets every event
(or those whose type matches its `types` globs), in event-id order, at least once:

- `amqp://USER:PASS@HOST:5672/VHOST?exchange=NAME` (or `amqps://`): RabbitMQ and other AMQP
  0-9-1 brokers (amqp.py);
- `mqtt://USER:PASS@HOST:1883/PREFIX?version=5` (or `mqtts://`): MQTT 5 or 3.1.1 (mqtt.py);
- `nats://USER:PASS@HOST:4222?stream=NAME`: NATS with JetStream (jetstream.py).

Every URL may add `types=GLOB` (repeated: `types=job.*&types=run.status`), the globs
webhook subscriptions use. A broker is known by its URL with the password masked (its
`name`): the database keeps its cursor under that name (services/brokers.py), and metrics
and logs show it.

This module parses the URLs and makes the messages (what a consumer receives is the same
for every protocol: the event as `GET /events/` shows it, as JSON, keyed by its topic and
type); one module per protocol publishes them; worker.py is the loop `paddles dispatch`
runs for each broker.
"""
from __future__ import annotations

from .base import (Broker, BrokerUrlError, Message, PublishFailed, describe, message_for,
                   parse_broker, parse_brokers, redact, routing_key)

__all__ = ["Broker", "BrokerUrlError", "Message", "PublishFailed", "describe", "make_publisher",
           "message_for", "parse_broker", "parse_brokers", "probe", "redact", "routing_key"]


def make_publisher(broker: Broker, *, timeout: float, topic_prefix: str):
    """The publisher of the broker's protocol (its client library is imported here)."""
    if broker.protocol == "amqp":
        from .amqp import AmqpPublisher
        return AmqpPublisher(broker, timeout=timeout)
    if broker.protocol == "mqtt":
        from .mqtt import MqttPublisher
        return MqttPublisher(broker, timeout=timeout)
    from .jetstream import JetStreamPublisher
    return JetStreamPublisher(broker, timeout=timeout, topic_prefix=topic_prefix)


def probe(broker: Broker, *, timeout: float, topic_prefix: str) -> str:
    """Connect (and log in) to the broker and close again: what was found, or an exception."""
    publisher = make_publisher(broker, timeout=timeout, topic_prefix=topic_prefix)
    try:
        return publisher.probe()
    finally:
        publisher.close()
