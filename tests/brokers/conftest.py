"""Fixtures for the message brokers: the real RabbitMQ, Mosquitto and NATS (JetStream) of
this machine, a subscriber on each, and unique names per test (exchange, topic prefix,
stream), removed at the end, so parallel runs on the shared brokers stay apart.

A broker that does not answer skips its tests, except when PADDLES_REQUIRE_BROKERS=1 or
PADDLES_REQUIRE_POSTGRES=1 (CI sets both): then they fail.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
import uuid

import pytest

from paddles.settings import load_settings
from tests.events.conftest import FAST, wait_until  # noqa: F401 (re-exported)

REQUIRE = os.environ.get("PADDLES_REQUIRE_BROKERS") == "1" or \
    os.environ.get("PADDLES_REQUIRE_POSTGRES") == "1"
PORTS = {"amqp": 5672, "mqtt": 1883, "nats": 4222}
PROTOCOLS = tuple(PORTS)
QUICK = dict(broker_timeout=2.0, broker_lease=3.0, broker_backoff_base=0.05,
             broker_backoff_max=0.3)


def require_broker(protocol: str) -> None:
    try:
        socket.create_connection(("127.0.0.1", PORTS[protocol]), timeout=2).close()
    except OSError as exc:
        message = f"{protocol} broker on 127.0.0.1:{PORTS[protocol]} unreachable: {exc}"
        if REQUIRE:
            pytest.fail(message + " (required: PADDLES_REQUIRE_BROKERS/POSTGRES=1)")
        pytest.skip(message)


# ---- subscribers ----------------------------------------------------------------------------

class AmqpSubscriber:
    """An exclusive queue bound to the test's exchange with `#`, consumed on a thread."""

    def __init__(self, exchange: str):
        import pika
        self.exchange = exchange
        self.messages: list[dict] = []
        self._stop = threading.Event()
        self._conn = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1"))
        channel = self._conn.channel()
        channel.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)
        queue = channel.queue_declare(queue="", exclusive=True).method.queue
        channel.queue_bind(queue=queue, exchange=exchange, routing_key="#")

        def on_message(ch, method, props, body):
            self.messages.append({"body": json.loads(body), "id": props.message_id,
                                  "key": method.routing_key, "persistent": props.delivery_mode,
                                  "content_type": props.content_type})
            ch.basic_ack(method.delivery_tag)

        channel.basic_consume(queue=queue, on_message_callback=on_message)
        self._channel = channel
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set():
            self._conn.process_data_events(time_limit=0.05)

    def received(self) -> list[dict]:
        return list(self.messages)

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self._channel.exchange_delete(self.exchange)
        self._conn.close()


def _mqtt_subscribe(prefix: str, out, ready) -> None:
    """The MQTT subscriber's own process: it forwards each message, raw, to the test."""
    import paho.mqtt.client as mqtt
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

    def on_connect(c, _u, _f, _rc, _p):
        c.subscribe(f"{prefix}/#", qos=1)

    def on_message(_c, _u, msg):
        props = dict(getattr(msg.properties, "UserProperty", []) or [])
        out.send((msg.payload, props.get("uuid"), msg.topic, msg.qos))

    client.on_connect, client.on_message = on_connect, on_message
    client.on_subscribe = lambda *_: ready.set()
    client.connect("127.0.0.1", 1883)
    client.loop_forever()


class MqttSubscriber:
    """Mosquitto drops what a subscriber has not taken once 1,000 messages wait for it
    (max_queued_messages), so the subscriber reads in a process of its own: in the test's
    process, busy writing events, it fell that far behind on a loaded machine."""

    def __init__(self, prefix: str):
        import multiprocessing
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe(duplex=False)
        ready = ctx.Event()
        self._process = ctx.Process(target=_mqtt_subscribe, args=(prefix, child, ready),
                                    daemon=True)
        self._process.start()
        child.close()
        self.messages: list[dict] = []
        # drained by a thread of its own: the pipe never fills, `messages` stays current
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert ready.wait(30), "no SUBACK from Mosquitto"

    def _read(self) -> None:
        try:
            while True:
                payload, uuid_, topic, qos = self._conn.recv()
                self.messages.append({"body": json.loads(payload), "id": uuid_,
                                      "key": topic, "qos": qos})
        except (EOFError, OSError):
            return

    def received(self) -> list[dict]:
        return list(self.messages)

    def close(self):
        self._process.terminate()
        self._process.join(10)
        self._reader.join(10)
        self._conn.close()


class NatsSubscriber:
    """Reads the stream from its start each time (an ordered consumer), and deletes it at
    the end."""

    def __init__(self, stream: str, subjects: str):
        self.stream = stream
        self.subjects = subjects
        self._cache: list[dict] = []

    def _run(self, coroutine_fn):
        import nats

        async def main():
            nc = await nats.connect("nats://127.0.0.1:4222")
            try:
                return await coroutine_fn(nc.jetstream())
            finally:
                await nc.close()
        return asyncio.run(main())

    def count(self) -> int:
        import nats.js.errors

        async def count(js):
            try:
                return (await js.stream_info(self.stream)).state.messages
            except nats.js.errors.NotFoundError:
                return 0
        return self._run(count)

    def received(self) -> list[dict]:
        total = self.count()
        if total == len(self._cache):
            return list(self._cache)

        async def read(js):
            out = []
            sub = await js.subscribe(self.subjects, ordered_consumer=True, stream=self.stream)
            for _ in range(total):
                msg = await sub.next_msg(timeout=10)
                out.append({"body": json.loads(msg.data),
                            "id": (msg.headers or {}).get("Nats-Msg-Id"),
                            "key": msg.subject})
            await sub.unsubscribe()
            return out
        self._cache = self._run(read)
        return list(self._cache)

    def close(self):
        import nats.js.errors

        async def delete(js):
            try:
                await js.delete_stream(self.stream)
            except nats.js.errors.NotFoundError:
                pass
        self._run(delete)


class Target:
    """One broker for one test: its URL (through `port` when given), the topic prefix the
    test's paddles writes under, and a subscriber started before any event."""

    def __init__(self, protocol: str):
        self.protocol = protocol
        tag = uuid.uuid4().hex[:10]
        self.name = f"paddles-test-{tag}"
        self.prefix = f"t{tag}.paddles"  # unique subjects: NATS streams may not overlap
        self.port = PORTS[protocol]
        if protocol == "amqp":
            self.subscriber = AmqpSubscriber(self.name)
        elif protocol == "mqtt":
            self.subscriber = MqttSubscriber(self.name)
        else:
            self.subscriber = NatsSubscriber(self.name, f"{self.prefix}.>")

    def url(self, port: int | None = None, **params) -> str:
        port = port or self.port
        query = "&".join(f"{k}={v}" for k, v in params.items())
        if self.protocol == "amqp":
            return f"amqp://guest:guest@127.0.0.1:{port}/?exchange={self.name}" + \
                (f"&{query}" if query else "")
        if self.protocol == "mqtt":
            return f"mqtt://127.0.0.1:{port}/{self.name}" + (f"?{query}" if query else "")
        return f"nats://127.0.0.1:{port}?stream={self.name}" + (f"&{query}" if query else "")

    def key(self, event_type: str) -> str:
        """Where an event of this type is published (routing key, topic, subject)."""
        kind, _, rest = event_type.partition(".")
        dotted = f"{self.prefix}.{kind}" + (f".{rest}" if rest else "")
        return f"{self.name}/" + dotted.replace(".", "/") if self.protocol == "mqtt" else dotted

    def received(self) -> list[dict]:
        return self.subscriber.received()

    def count(self) -> int:
        sub = self.subscriber
        return sub.count() if isinstance(sub, NatsSubscriber) else len(sub.messages)

    def close(self):
        self.subscriber.close()


@pytest.fixture(params=PROTOCOLS)
def target(request):
    require_broker(request.param)
    t = Target(request.param)
    yield t
    t.close()


def broker_settings(database_url, tmp_path, target: Target, url: str | None = None, **extra):
    return load_settings(environ={}, database_url=database_url, address="http://paddles.test",
                         data_dir=str(tmp_path / "data"), event_topic_prefix=target.prefix,
                         event_brokers=url or target.url(), **{**FAST, **QUICK, **extra})


def ids_in_order(messages: list[dict]) -> list[int]:
    """The event ids as they first arrived (a message sent again is a duplicate)."""
    seen, out = set(), []
    for m in messages:
        if m["body"]["id"] not in seen:
            seen.add(m["body"]["id"])
            out.append(m["body"]["id"])
    return out


def settle(target: Target, count: int, timeout: float = 60.0) -> list[dict]:
    """The messages, once at least `count` distinct events arrived (or the time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        got = target.received()
        if len({m["body"]["id"] for m in got}) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.1)
